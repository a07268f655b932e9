//! Executions: the `ExecutionWatcher` actor ([`watcher`]), the server's one registry of
//! executions whoever starts them, answers the [`messages`] (or an [`error`]), starts
//! workflow runs on a runner, keeps each one's [`state`] (status, steps, numbered event log,
//! subscribers) and fans events out, tracing each run (`spans`); callers that are not actors
//! follow one through a [`feed`]. With Redis configured, executions are [`shared`] between
//! replicas: the watcher writes the ones it runs through a `publisher` and reads the others
//! through a `follower`.

pub mod error;
pub mod feed;
mod follower;
pub mod messages;
mod publisher;
pub mod shared;
mod spans;
pub mod state;
pub mod watcher;
