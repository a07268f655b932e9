//! The actor system and the domain of the Kubiya agent server.
//!
//! This crate knows nothing about HTTP: the `kubiya` binary's HTTP layer validates requests
//! into the domain types defined here and talks to the actors through typed messages. Each
//! concept lives in its own module:
//!
//! - [`provider`]: the LLM vendors we speak to, their presets (base URL, key variable,
//!   default model) and, later, the `LlmProvider` actor with its protocol adapters.
//! - [`workflow`]: the workflow DSL's model and validation, the runners (the local one, a
//!   tokio DAG scheduler with sandboxed steps, and the Kubiya platform one) and the
//!   `ExecutionWatcher` actor that drives them and fans their events out.
//! - [`mcp`]: the Model Context Protocol: the `McpSupervisor` actor that runs the configured
//!   stdio MCP servers and calls their tools, and the stdio server `kubiya mcp server` runs.
//! - [`limits`]: per-tenant request rates and concurrent streams, counted in this process or,
//!   across replicas, in Redis through the shared [`redis_connection`].

pub mod composer;
pub mod hold;
pub mod limits;
pub mod mcp;
pub mod provider;
pub mod redis_connection;
pub mod session;
pub mod tools;
pub mod workflow;
