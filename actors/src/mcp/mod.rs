//! The Model Context Protocol, in both roles the agent server plays.
//!
//! **Supervisor (client).** [`McpSupervisor`] is the shared actor that owns every MCP server
//! named in the configuration ([`McpServerConfig`], the desktop hosts' `mcpServers` shape):
//! local ones over stdio, remote ones (`url`) over streamable HTTP. Each server gets a child
//! task ([`child`]) that spawns it in its own process group ([`process`]) or opens its HTTP
//! transport ([`http_client`]), negotiates the protocol era, lists its tools, watches it and
//! restarts (reconnects) it with capped backoff; [`connection`] is the JSON-RPC client over
//! either, [`oauth`] gets a remote server's tokens when it asks for authorization, and
//! [`elicitation`] answers a server's questions for the user; [`catalog`] namespaces tools as `server__tool` and renders results for the model;
//! [`sampling`] answers a server's sampling requests with the agent's model. The agent loop
//! sends [`ListTools`] for the catalog and [`CallTool`] to run one (both filtered by the
//! caller's [`McpAccess`]), and gets a [`ToolOutput`] or an [`McpError`].
//!
//! **Server.** [`server`] answers MCP requests for both eras whatever the transport
//! ([`stdio_server`] for `kubiya mcp server`; the HTTP layer's `/mcp` for streamable HTTP);
//! [`features`] is what it serves and [`notify`] what a request sends before its result;
//! [`workflow_tools`] are the tools, resources and prompts we offer (validate, execute,
//! follow executions, list runners).
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

pub mod access;
pub mod catalog;
pub mod child;
pub mod config;
pub mod connection;
pub mod elicitation;
pub mod error;
pub mod features;
pub mod http_client;
pub mod jsonrpc;
pub mod notify;
pub mod oauth;
pub mod process;
pub mod sampling;
pub mod server;
pub mod stdio_server;
pub mod supervisor;
pub mod workflow_resources;
pub mod workflow_tools;

#[cfg(test)]
mod server_tests;

pub use access::McpAccess;
pub use catalog::{CatalogChanges, ToolOutput, namespaced_name};
pub use child::{McpServerStatus, ServerState};
pub use config::{
    DesktopHostConfig, McpConfigError, McpOAuthConfig, McpServerConfig, McpSettings, check_servers,
};
pub use elicitation::ElicitationPolicy;
pub use error::McpError;
pub use features::ServerFeatures;
pub use sampling::Sampler;
pub use server::{Connection, Era, Handled, McpServer, ServerIdentity};
pub use stdio_server::serve;
pub use supervisor::{CallTool, ListTools, McpSupervisor, ServerStatuses, Shutdown};
pub use workflow_tools::{WorkflowTools, WorkflowToolsParts};
