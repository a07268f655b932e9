//! The actor system and the domain of the Kubiya agent server.
//!
//! This crate knows nothing about HTTP: the `kubiya` binary's HTTP layer validates requests
//! into the domain types defined here and talks to the actors through typed messages. Each
//! concept lives in its own module:
//!
//! - [`provider`]: the LLM vendors we speak to, their presets (base URL, key variable,
//!   default model) and, later, the `LlmProvider` actor with its protocol adapters.
//! - [`workflow`]: the workflow DSL's model and validation, and the local runner (a tokio DAG
//!   scheduler with sandboxed steps) that the execution actor drives.
//! - [`limits`]: per-tenant request rates and concurrent streams, counted in this process or,
//!   across replicas, in Redis through the shared [`redis_connection`].
//!
//! Workflow execution (the `ExecutionWatcher` actor), sessions, the composer and the MCP
//! supervisor join as their own modules when their actors arrive.

pub mod composer;
pub mod hold;
pub mod limits;
pub mod provider;
pub mod redis_connection;
pub mod session;
pub mod tools;
pub mod workflow;
