//! What our MCP server offers, apart from the protocol: [`ServerFeatures`] is implemented by
//! the workflow tools ([`super::workflow_tools`]) and read by the dispatcher
//! ([`super::server`]), whatever the transport. Tools are required; resources, prompts and
//! completions have empty defaults, so a tools-only implementation stays small. What reads
//! executions answers later (a future): they live in the `ExecutionWatcher`.

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::jsonrpc::{INVALID_PARAMS, RpcError};
use super::notify::CallContext;

pub trait ServerFeatures: Send + Sync + 'static {
    /// Tool definitions (`name`, `description`, `inputSchema`, `outputSchema`), in a fixed
    /// order.
    fn tools(&self) -> Vec<Value>;

    /// Runs a tool. A tool that fails reports it inside its `CallToolResult` (`isError`);
    /// only protocol faults (unknown tool, bad params) are `Err`.
    fn call(
        &self,
        name: &str,
        arguments: Value,
        context: CallContext,
    ) -> BoxFuture<'static, Result<Value, RpcError>>;

    /// Concrete resources (`uri`, `name`, `mimeType`, ...).
    fn resources(&self) -> BoxFuture<'static, Vec<Value>> {
        Box::pin(async { Vec::new() })
    }

    /// URI templates (RFC 6570) for resources that are not listed one by one.
    fn resource_templates(&self) -> Vec<Value> {
        Vec::new()
    }

    /// The `contents` of one resource.
    fn read_resource(&self, uri: &str) -> BoxFuture<'static, Result<Vec<Value>, RpcError>> {
        let error = not_found(uri);
        Box::pin(async move { Err(error) })
    }

    /// A counter that rises whenever the resource changes, for `resources/subscribe`.
    fn watch_resource(
        &self,
        uri: &str,
    ) -> BoxFuture<'static, Result<watch::Receiver<u64>, RpcError>> {
        let error = not_found(uri);
        Box::pin(async move { Err(error) })
    }

    fn prompts(&self) -> Vec<Value> {
        Vec::new()
    }

    /// A `GetPromptResult` (`description`, `messages`).
    fn get_prompt(
        &self,
        name: &str,
        _arguments: &Map<String, Value>,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        let error = RpcError::new(INVALID_PARAMS, format!("Unknown prompt: {name}"));
        Box::pin(async move { Err(error) })
    }

    /// Values for one argument of a prompt or a resource template (`reference` is the
    /// request's `ref`), best first.
    fn complete(
        &self,
        _reference: &Value,
        _argument: &str,
        _prefix: &str,
    ) -> BoxFuture<'static, Vec<String>> {
        Box::pin(async { Vec::new() })
    }
}

/// The error for a resource that does not exist: -32602 with the URI, as the 2026-07-28
/// revision asks (never an empty `contents`).
pub fn not_found(uri: &str) -> RpcError {
    let mut error = RpcError::new(INVALID_PARAMS, format!("Resource not found: {uri}"));
    error.data = Some(serde_json::json!({ "uri": uri }));
    error
}
