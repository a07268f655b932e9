//! Our own MCP server over stdio (what `kubiya mcp server` runs): the protocol side, for both
//! eras. A connection's era is fixed by its first message, as dual-era servers do: `initialize`
//! makes it legacy (handshake, then plain requests); `server/discover` or a request carrying
//! `_meta` with a protocol version makes it modern (per-request `_meta`, `resultType` on every
//! result, -32022 for versions we do not speak).
//!
//! The tools themselves come from a [`ToolProvider`] (the workflow tools in
//! [`super::workflow_tools`]). Each call runs in its own task, so a long workflow run never
//! holds up `tools/list` or other calls; `notifications/cancelled` stops it and suppresses its
//! reply; progress goes out as `notifications/progress` when the client sent a token. Only
//! protocol messages reach the output; logs go to `tracing` (stderr).

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::jsonrpc::{
    self, INVALID_PARAMS, INVALID_REQUEST, Incoming, LEGACY_VERSION, LEGACY_VERSIONS,
    META_PROTOCOL_VERSION, META_SERVER_INFO, METHOD_NOT_FOUND, MODERN_VERSION, PARSE_ERROR,
    RequestId, RpcError, UNSUPPORTED_PROTOCOL_VERSION,
};
use super::process::{LineRead, read_capped_line};

/// Longest request line we accept.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// After stdin closes, how long running calls get to wind down once cancelled.
const EOF_GRACE: Duration = Duration::from_secs(5);

/// Who we say we are.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    pub name: String,
    pub version: String,
    /// Guidance for the model, sent at negotiation.
    pub instructions: String,
}

/// The tools a server offers. Implementations return a complete `CallToolResult`; a tool that
/// fails reports it inside (`isError`), and only protocol faults (unknown tool, bad params)
/// are `Err`.
pub trait ToolProvider: Send + Sync + 'static {
    /// Tool definitions (`name`, `description`, `inputSchema`), in a fixed order.
    fn tools(&self) -> Vec<Value>;

    fn call(
        &self,
        name: &str,
        arguments: Value,
        context: CallContext,
    ) -> BoxFuture<'static, Result<Value, RpcError>>;
}

/// What a call gets besides its arguments.
pub struct CallContext {
    /// Cancelled when the client cancels the request or goes away.
    pub cancel: CancellationToken,
    /// Present when the client asked for progress.
    pub progress: Option<ProgressReporter>,
}

/// Sends `notifications/progress` for one request; `progress` rises by one per report.
pub struct ProgressReporter {
    token: Value,
    sent: u64,
    output: mpsc::UnboundedSender<Value>,
    cancel: CancellationToken,
}

impl ProgressReporter {
    pub fn report(&mut self, message: String) {
        // Nothing more may go out for a cancelled request.
        if self.cancel.is_cancelled() {
            return;
        }
        self.sent += 1;
        let _ = self.output.send(jsonrpc::notification(
            "notifications/progress",
            json!({"progressToken": self.token, "progress": self.sent, "message": message}),
        ));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    Legacy,
    Modern,
}

/// Serves one client on `input`/`output` until `input` ends.
pub async fn serve<R, W>(
    input: R,
    output: W,
    identity: ServerIdentity,
    tools: Arc<dyn ToolProvider>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::unbounded_channel::<Value>();
    let writer = tokio::spawn(write_messages(output, out_rx));
    let mut session = Session {
        identity,
        tools,
        era: None,
        out: out_tx,
        in_flight: Arc::new(Mutex::new(HashMap::new())),
        calls: JoinSet::new(),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    loop {
        match read_capped_line(&mut reader, &mut line, MAX_REQUEST_BYTES).await? {
            LineRead::Eof => break,
            LineRead::TooLong(bytes) => {
                tracing::warn!(bytes, "dropped a request line over the size limit");
                session.send(jsonrpc::error_response(
                    None,
                    &RpcError::new(INVALID_REQUEST, "message too large"),
                ));
            }
            LineRead::Line => session.handle_line(&line),
        }
        // Reap finished calls so the set does not grow with the session.
        while session.calls.try_join_next().is_some() {}
    }
    session.finish().await;
    drop(session);
    writer
        .await
        .map_err(|error| io::Error::other(format!("writer task failed: {error}")))?
}

struct Session {
    identity: ServerIdentity,
    tools: Arc<dyn ToolProvider>,
    era: Option<Era>,
    out: mpsc::UnboundedSender<Value>,
    /// Running calls by request id, so `notifications/cancelled` can reach them.
    in_flight: Arc<Mutex<HashMap<RequestId, CancellationToken>>>,
    calls: JoinSet<()>,
}

impl Session {
    fn send(&self, message: Value) {
        let _ = self.out.send(message);
    }

    fn handle_line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let message = match serde_json::from_slice::<Value>(line) {
            Ok(message) => message,
            Err(error) => {
                self.send(jsonrpc::error_response(
                    None,
                    &RpcError::new(PARSE_ERROR, format!("parse error: {error}")),
                ));
                return;
            }
        };
        match jsonrpc::classify(message) {
            Incoming::Request { id, method, params } => self.handle_request(id, &method, params),
            Incoming::Notification { method, params } => self.handle_notification(&method, &params),
            // We send no requests, so responses have nobody to go to.
            Incoming::Response { .. } => {}
            Incoming::Invalid { id } => self.send(jsonrpc::error_response(
                id.as_ref(),
                &RpcError::new(INVALID_REQUEST, "not a JSON-RPC 2.0 request"),
            )),
        }
    }

    fn handle_notification(&self, method: &str, params: &Value) {
        if method == "notifications/cancelled"
            && let Some(id) = params.get("requestId").and_then(RequestId::from_value)
            && let Ok(in_flight) = self.in_flight.lock()
            && let Some(cancel) = in_flight.get(&id)
        {
            tracing::debug!(?id, "request cancelled by the client");
            cancel.cancel();
        }
    }

    fn handle_request(&mut self, id: RequestId, method: &str, params: Value) {
        match method {
            "initialize" => return self.initialize(&id, &params),
            "server/discover" => return self.discover(&id, &params),
            _ => {}
        }
        let requested = params
            .pointer("/_meta")
            .and_then(|meta| meta.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if self.era.is_none() && requested.is_some() {
            // Modern clients may skip discover: the request itself says which era it is.
            self.era = Some(Era::Modern);
        }
        if self.era == Some(Era::Modern)
            && let Err(error) = check_modern_version(requested.as_deref())
        {
            return self.send(jsonrpc::error_response(Some(&id), &error));
        }
        match method {
            "ping" => self.reply(&id, json!({})),
            "tools/list" => {
                let mut listing = json!({"tools": self.tools.tools()});
                if self.era == Some(Era::Modern) {
                    // Modern list results carry cache hints; ours never changes within a process.
                    listing["ttlMs"] = json!(0);
                    listing["cacheScope"] = json!("public");
                }
                self.reply(&id, listing);
            }
            "tools/call" => self.call_tool(id, params),
            _ => self.send(jsonrpc::error_response(
                Some(&id),
                &RpcError::new(METHOD_NOT_FOUND, format!("method not found: {method}")),
            )),
        }
    }

    fn initialize(&mut self, id: &RequestId, params: &Value) {
        if self.era == Some(Era::Modern) {
            let mut error = RpcError::new(
                UNSUPPORTED_PROTOCOL_VERSION,
                format!(
                    "connection is serving the {MODERN_VERSION} protocol; initialize is not part of it"
                ),
            );
            error.data = Some(
                json!({"supported": [MODERN_VERSION], "requested": params.get("protocolVersion")}),
            );
            return self.send(jsonrpc::error_response(Some(id), &error));
        }
        self.era = Some(Era::Legacy);
        let requested = params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Echo a version we speak; otherwise offer our newest and let the client decide.
        let version = if LEGACY_VERSIONS.contains(&requested) {
            requested
        } else {
            LEGACY_VERSION
        };
        let client = params
            .pointer("/clientInfo/name")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        tracing::info!(
            protocol = version,
            client,
            "MCP client connected (legacy handshake)"
        );
        self.reply(
            id,
            json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": self.server_info(),
                "instructions": self.identity.instructions,
            }),
        );
    }

    fn discover(&mut self, id: &RequestId, params: &Value) {
        if self.era == Some(Era::Legacy) {
            return self.send(jsonrpc::error_response(
                Some(id),
                &RpcError::new(
                    METHOD_NOT_FOUND,
                    "method not found: server/discover (this connection began with initialize)",
                ),
            ));
        }
        let requested = params
            .pointer("/_meta")
            .and_then(|meta| meta.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str);
        if let Err(error) = check_modern_version(requested) {
            return self.send(jsonrpc::error_response(Some(id), &error));
        }
        self.era = Some(Era::Modern);
        tracing::info!(protocol = MODERN_VERSION, "MCP client connected (discover)");
        self.reply(
            id,
            json!({
                "supportedVersions": [MODERN_VERSION],
                "capabilities": {"tools": {"listChanged": false}},
                "instructions": self.identity.instructions,
                "ttlMs": 0,
                "cacheScope": "public",
            }),
        );
    }

    fn server_info(&self) -> Value {
        json!({"name": self.identity.name, "version": self.identity.version})
    }

    fn reply(&self, id: &RequestId, mut result: Value) {
        if self.era == Some(Era::Modern) {
            decorate_modern(&mut result, self.server_info());
        }
        self.send(jsonrpc::response(id, result));
    }

    fn call_tool(&mut self, id: RequestId, params: Value) {
        let Some(name) = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return self.send(jsonrpc::error_response(
                Some(&id),
                &RpcError::new(INVALID_PARAMS, "tools/call needs params.name"),
            ));
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(arguments @ Value::Object(_)) => arguments.clone(),
            Some(_) => {
                return self.send(jsonrpc::error_response(
                    Some(&id),
                    &RpcError::new(INVALID_PARAMS, "params.arguments must be an object"),
                ));
            }
        };
        let cancel = CancellationToken::new();
        let progress = params
            .pointer("/_meta/progressToken")
            .filter(|token| token.is_string() || token.is_number())
            .map(|token| ProgressReporter {
                token: token.clone(),
                sent: 0,
                output: self.out.clone(),
                cancel: cancel.clone(),
            });
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.insert(id.clone(), cancel.clone());
        }
        let call = self.tools.call(
            &name,
            arguments,
            CallContext {
                cancel: cancel.clone(),
                progress,
            },
        );
        let out = self.out.clone();
        let in_flight = self.in_flight.clone();
        let modern = self.era == Some(Era::Modern);
        let server_info = self.server_info();
        self.calls.spawn(async move {
            let outcome = call.await;
            if let Ok(mut in_flight) = in_flight.lock() {
                in_flight.remove(&id);
            }
            // A cancelled request gets no reply at all.
            if cancel.is_cancelled() {
                return;
            }
            let message = match outcome {
                Ok(mut result) => {
                    if modern {
                        decorate_modern(&mut result, server_info);
                    }
                    jsonrpc::response(&id, result)
                }
                Err(error) => jsonrpc::error_response(Some(&id), &error),
            };
            let _ = out.send(message);
        });
    }

    /// Input ended: cancel what is still running, give it a moment, and let replies flush.
    async fn finish(&mut self) {
        if let Ok(in_flight) = self.in_flight.lock() {
            for cancel in in_flight.values() {
                cancel.cancel();
            }
        }
        let drained = async { while self.calls.join_next().await.is_some() {} };
        if tokio::time::timeout(EOF_GRACE, drained).await.is_err() {
            self.calls.abort_all();
        }
    }
}

fn check_modern_version(requested: Option<&str>) -> Result<(), RpcError> {
    match requested {
        Some(MODERN_VERSION) => Ok(()),
        Some(other) => {
            let mut error = RpcError::new(
                UNSUPPORTED_PROTOCOL_VERSION,
                format!("unsupported protocol version {other}"),
            );
            error.data = Some(json!({"supported": [MODERN_VERSION], "requested": other}));
            Err(error)
        }
        None => Err(RpcError::new(
            INVALID_PARAMS,
            format!("params._meta[\"{META_PROTOCOL_VERSION}\"] is required"),
        )),
    }
}

/// `resultType` and our identity, which every modern result carries.
fn decorate_modern(result: &mut Value, server_info: Value) {
    if let Some(object) = result.as_object_mut() {
        object
            .entry("resultType")
            .or_insert_with(|| Value::from("complete"));
    }
    jsonrpc::meta_mut(result).insert(META_SERVER_INFO.into(), server_info);
}

async fn write_messages<W: AsyncWrite + Unpin>(
    mut output: W,
    mut messages: mpsc::UnboundedReceiver<Value>,
) -> io::Result<()> {
    while let Some(message) = messages.recv().await {
        output
            .write_all(jsonrpc::to_line(&message).as_bytes())
            .await?;
        output.flush().await?;
    }
    output.shutdown().await.or(Ok(()))
}
