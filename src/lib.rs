//! The `kubiya` binary's library: the HTTP layer of the agent server (routes, extractors,
//! wire encoders, error mapping), configuration, telemetry, start-up and the CLI. The actors
//! and the domain live in the `kubiya-actors` crate; this crate turns HTTP into their
//! messages and their events back into HTTP.

pub mod auth;
pub mod boundary;
pub mod cli;
pub mod config;
pub mod error;
pub mod execution_setup;
pub mod execution_stream;
pub mod extract;
pub mod http_server;
pub mod identity;
pub mod mcp_client_cli;
pub mod mcp_http;
pub mod memory;
pub mod metrics;
pub mod middleware;
pub mod provider_setup;
pub mod resumable;
pub mod routes;
pub mod session_budget;
pub mod stalled_client;
pub mod startup;
pub mod state;
pub mod streaming;
pub mod telemetry;
pub mod tenancy_setup;
pub mod tenant;
pub mod turn;
pub mod wire;
pub mod workflow_cli;
