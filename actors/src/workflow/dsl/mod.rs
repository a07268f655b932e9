//! The workflow language: the serde [`model`] of the workflow JSON (and YAML) the original
//! SDK produces, its [`validate`]ion (every problem at once, with JSON paths, as
//! [`error::ValidationError`]s; raw type checks first, in `shape`) and normalisation, the
//! `${VAR}` [`template`]s and the step dependency [`graph`]. Pure data and functions: nothing
//! here runs anything, and it imports neither the runners nor the executions.

pub mod error;
pub mod graph;
pub mod model;
mod shape;
pub mod template;
pub mod validate;

#[cfg(test)]
mod validate_tests;
