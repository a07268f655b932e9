//! Executions: the `ExecutionWatcher` actor ([`watcher`]) answers the [`messages`] (or an
//! [`error`]), starts workflow runs on a runner,
//! keeps each one's [`state`] (status, steps, numbered event log, subscribers) and fans
//! events out, tracing each run (`spans`). With Redis configured, executions are [`shared`]
//! between replicas: the watcher writes the ones it runs through a `publisher` and reads
//! the others through a `follower`.

pub mod error;
mod follower;
pub mod messages;
mod publisher;
pub mod shared;
mod spans;
pub mod state;
pub mod watcher;
