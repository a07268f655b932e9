//! Black-box tests of the HTTP surface. One binary with a module per area keeps link time
//! down; `helpers` starts the app in-process on port 0 or the real `kubiya` binary.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests (and their helpers) fail by panicking"
)]

mod helpers;
#[path = "../support/mock_upstream.rs"]
mod mock_upstream;
#[path = "../support/redis_server.rs"]
mod redis_server;
#[path = "../support/sse.rs"]
mod sse;

mod approval;
mod backpressure;
mod boundary;
mod browser;
mod chat;
mod clients;
mod compose;
mod compose_filter;
mod config;
mod console;
mod contract;
mod errors;
mod escape;
mod executions;
mod memory;
mod model_steps;
mod original_examples;
mod platform;
mod probes;
mod readme;
mod replicas;
mod responses;
mod session_workflows;
mod shutdown;
mod tenants;
mod ui_chat;
