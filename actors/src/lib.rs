//! The actor system and the domain of the Kubiya agent server.
//!
//! This crate knows nothing about HTTP: the `kubiya` binary's HTTP layer validates requests
//! into the domain types defined here and talks to the actors through typed messages. Each
//! concept lives in its own module:
//!
//! - [`session`]: the per-request `Session` actor that runs a chat turn or a compose (the
//!   agent loop, or the refinement loop), the events it emits, and the session stores.
//! - [`composer`]: the `Composer` actor that builds each model request: system prompt,
//!   history, and the tool catalog.
//! - [`tools`]: the built-in workflow tools: their one catalog (the model, our MCP server and
//!   the offline planner use it), reading a workflow out of a call, and the validation
//!   report.
//! - [`provider`]: the LLM vendors (presets), the wire protocols' codecs, and the
//!   `LlmProvider` actors that call them with retries, fallbacks and cancellation.
//! - [`workflow`]: in three rooms, the language ([`workflow::dsl`]: model, validation,
//!   templates, graph), the runners ([`workflow::run`]: the local one, a tokio DAG scheduler
//!   with sandboxed steps, and the Kubiya platform one) and the executions
//!   ([`workflow::execution`]: the `ExecutionWatcher` actor that drives the runners and fans
//!   their events out, shared between replicas through Redis when one is configured).
//! - [`mcp`]: the Model Context Protocol: the `McpSupervisor` actor that runs the configured
//!   stdio MCP servers and calls their tools, and the stdio server `kubiya mcp server` runs.
//! - [`limits`]: per-tenant request rates and concurrent streams, counted in this process or,
//!   across replicas, in Redis.
//! - [`turn_log`]: each chat's turn in progress as the chunks it streamed, kept while it
//!   runs so a client can resume it on any replica.
//! - [`kept`]: small documents kept for a while per tenant (the Responses API's responses
//!   and output items), in this process or in Redis.
//! - [`hold`]: what is held for a turn or a stream (leases, permits) and how it is let go.
//! - [`per_thread`]: an actor started on each thread that uses it, so a turn stays on its
//!   worker.
//!
//! Below the domain, knowing none of it:
//!
//! - [`store`]: the one Redis connection a replica shares, key escaping, the clock entries
//!   are stamped with, and the store error every store returns.
//! - [`framing`]: Server-Sent Events and newline-delimited JSON cut out of response bodies
//!   that arrive in chunks, for the providers' codecs and the platform runner.
//!
//! Turns, model calls, tool calls, executions and steps open spans with the target
//! [`TRACE`]; the binary exports them as OpenTelemetry traces when a collector is configured.

pub mod composer;
pub mod framing;
pub mod hold;
pub mod kept;
pub mod limits;
pub mod mcp;
pub mod per_thread;
pub mod provider;
pub mod session;
pub mod store;
pub mod tools;
pub mod turn_log;
pub mod workflow;

/// The `tracing` target of the spans that become OpenTelemetry traces (GenAI semantic
/// conventions for model and tool calls). Log output leaves them out; with no collector
/// configured nothing enables them, so they cost a disabled-callsite check.
pub const TRACE: &str = "kubiya::trace";
