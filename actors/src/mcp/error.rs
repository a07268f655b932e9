//! [`McpError`]: why a tool call produced no result. A tool that ran and failed is not an
//! error here (it is a [`super::ToolOutput`] with `is_error`, which the model sees); these are
//! the failures around it: unknown tool, server down, timeout, cancellation, crash, and
//! JSON-RPC errors from the server. The agent loop turns them into text for the model or into
//! its own failure.

use std::time::Duration;

use super::jsonrpc::RpcError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum McpError {
    /// No running server offers a tool by this (namespaced) name.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The tool's server is configured but not running right now.
    #[error("MCP server `{server}` is {state}, so its tools cannot be called now")]
    ServerUnavailable { server: String, state: String },
    /// No reply (and no progress) in time; the server was told to cancel.
    #[error("tool `{tool}` did not answer within {}s; the call was cancelled", after.as_secs())]
    Timeout { tool: String, after: Duration },
    /// The caller cancelled; the server was told to cancel.
    #[error("tool call `{0}` was cancelled")]
    Cancelled(String),
    /// The server process ended (crashed, was killed or shut down) before replying.
    #[error("MCP server `{server}` exited during the call: {detail}")]
    ServerExited { server: String, detail: String },
    /// The server answered with a JSON-RPC error.
    #[error("MCP server `{server}` returned error {code}: {message}")]
    Rpc {
        server: String,
        code: i64,
        message: String,
    },
    /// The server answered with something that is not a tool result.
    #[error("MCP server `{server}` sent an unusable reply: {detail}")]
    Protocol { server: String, detail: String },
}

impl McpError {
    pub(crate) fn rpc(server: &str, error: RpcError) -> Self {
        Self::Rpc {
            server: server.to_owned(),
            code: error.code,
            message: error.message,
        }
    }
}
