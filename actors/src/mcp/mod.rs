//! The Model Context Protocol, in both roles the agent server plays.
//!
//! **Supervisor (client).** [`McpSupervisor`] is the shared actor that owns every stdio MCP
//! server named in the configuration ([`McpServerConfig`], the desktop hosts' `mcpServers`
//! shape). Each server gets a child task ([`child`]) that spawns it in its own process group
//! ([`process`]), negotiates the protocol era, lists its tools, watches it and restarts it with
//! capped backoff; [`connection`] is the JSON-RPC client over its stdio; [`catalog`] namespaces
//! tools as `server__tool` and renders results for the model. The agent loop sends
//! [`ListTools`] for the catalog and [`CallTool`] to run one, and gets a [`ToolOutput`] or an
//! [`McpError`].
//!
//! **Server.** [`server`] serves tools over stdio for both eras; [`workflow_tools`] are the
//! tools `kubiya mcp server` offers (validate, execute, follow executions, list runners).
//!
//! **Why our own JSON-RPC rather than `rmcp`.** The protocol surface we need is small (discover
//! probe with `initialize` fallback, paginated `tools/list`, `tools/call`, progress,
//! cancellation; and the matching server side), while supervision needs control `rmcp` either
//! does not give or gives with caveats: a discover probe with our own short timeout, call
//! timeouts reset by progress under a hard cap and tied to the caller's `CancellationToken`,
//! failing in-flight calls the moment the process exits, group-wide SIGTERM/SIGKILL with a
//! bounded reap, and a rate-limited stderr drain. Owning [`connection`] and [`server`] (some
//! 1,300 lines with [`jsonrpc`], on `serde_json` and tokio) also avoids `rmcp`'s weekly API churn and ~80
//! extra crates on a 2-core build. [`jsonrpc`] keeps the wire facts in one place should we
//! move to `rmcp` later. What we leave out: MRTR `input_required` rounds (reported as an error)
//! and modern-era `subscriptions/listen` (tool lists are re-read after every restart).

pub mod catalog;
pub mod child;
pub mod config;
pub mod connection;
pub mod error;
pub mod jsonrpc;
pub mod process;
pub mod server;
pub mod supervisor;
pub mod workflow_tools;

#[cfg(test)]
mod server_tests;

pub use catalog::{CatalogChanges, ToolOutput, namespaced_name};
pub use child::{McpServerStatus, ServerState};
pub use config::{DesktopHostConfig, McpConfigError, McpServerConfig, McpSettings, check_servers};
pub use error::McpError;
pub use server::{ServerIdentity, ToolProvider, serve};
pub use supervisor::{CallTool, ListTools, McpSupervisor, ServerStatuses, Shutdown};
pub use workflow_tools::WorkflowTools;
