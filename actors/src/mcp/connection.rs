//! A live session with one MCP server: our own JSON-RPC client. For a stdio server it owns the
//! process (spawned by [`super::process`]) and four tasks: a writer that alone touches stdin,
//! a reader that routes every stdout line by id and method, a stderr drain, and a waiter that
//! reaps the process and fails every in-flight request the moment it exits. For a remote
//! server, [`super::http_client`] carries the same messages over streamable HTTP and the
//! connection ends when the server cannot be reached or forgets the session.
//!
//! On top of that: era negotiation (probe `server/discover`, fall back to `initialize`),
//! requests with an idle timeout that progress notifications reset under a hard cap,
//! `notifications/cancelled` on timeout or cancellation, paginated `tools/list`, and a
//! bounded shutdown (close stdin, SIGTERM the group, SIGKILL the group, reap).
//! [`super::child`] drives one of these per server and replaces it when it dies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::elicitation::{self, ElicitationPolicy};
use super::http_client::{self, HttpTarget, HttpTransport, Router};
use super::jsonrpc::{
    self, INTERNAL_ERROR, Incoming, LEGACY_VERSION, LEGACY_VERSIONS, META_CLIENT_CAPABILITIES,
    META_CLIENT_INFO, META_PROTOCOL_VERSION, METHOD_NOT_FOUND, MODERN_VERSION, RequestId, RpcError,
    UNSUPPORTED_PROTOCOL_VERSION,
};
use super::process::{
    LineRead, SpawnedServer, StderrTail, drain_stderr, read_capped_line, signal_group, wait_exited,
};
use super::sampling::Sampler;

/// Lines longer than this from a server are dropped (the reference SDKs stop at 10-16 MiB).
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// How long a server gets to answer the `server/discover` probe before we assume legacy.
const DISCOVER_PROBE: Duration = Duration::from_secs(5);
/// Shutdown: time to exit after stdin closes, then after SIGTERM, then to be reaped.
const STDIN_GRACE: Duration = Duration::from_secs(2);
const TERM_GRACE: Duration = Duration::from_secs(2);
const KILL_WAIT: Duration = Duration::from_secs(3);
/// Pages of `tools/list` we follow before deciding a server's cursor never ends.
const MAX_LIST_PAGES: usize = 100;

/// Which protocol era a server speaks; fixed for the life of its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    Legacy,
    Modern,
}

/// What negotiation learned about a server.
#[derive(Debug, Clone)]
pub(crate) struct Negotiated {
    pub era: Era,
    pub protocol_version: String,
    pub server_name: Option<String>,
}

/// Limits for one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestLimits {
    /// Fails after this long without a reply or progress.
    pub idle: Duration,
    /// Fails after this long regardless.
    pub hard: Duration,
}

impl RequestLimits {
    pub fn fixed(timeout: Duration) -> Self {
        Self {
            idle: timeout,
            hard: timeout,
        }
    }
}

/// How one request is sent and waited for.
struct RequestOptions<'a> {
    limits: RequestLimits,
    cancel: Option<&'a CancellationToken>,
    /// Ask for progress (our token is the request id) and let it reset the idle timeout.
    with_progress: bool,
}

/// Options for negotiation requests: one fixed deadline, no progress, not cancellable.
fn handshake_options(limit: Duration) -> RequestOptions<'static> {
    RequestOptions {
        limits: RequestLimits::fixed(limit),
        cancel: None,
        with_progress: false,
    }
}

/// Why a request produced no result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RequestFailure {
    Rpc(RpcError),
    Timeout(Duration),
    Cancelled,
    /// The process is gone (or going); the text says how it ended.
    Exited(String),
}

impl std::fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rpc(error) => write!(f, "error {}: {}", error.code, error.message),
            Self::Timeout(after) => write!(f, "no answer within {}s", after.as_secs_f32()),
            Self::Cancelled => f.write_str("cancelled"),
            Self::Exited(how) => write!(f, "the server exited ({how})"),
        }
    }
}

/// A request waiting for its reply.
struct Pending {
    reply: oneshot::Sender<Result<Value, RpcError>>,
    /// Told about each progress notification for this request.
    progress: Option<mpsc::UnboundedSender<()>>,
}

/// What the transport (stdin's writer, or the HTTP transport) is asked to do.
pub(crate) enum Outgoing {
    Message(Value),
    /// Close stdin, or end the HTTP session: the polite way to leave.
    Close,
}

/// State the tasks share with the handle.
struct Shared {
    server: String,
    /// Answers the server's sampling requests, when the agent offers sampling.
    sampler: Option<Sampler>,
    elicitation: ElicitationPolicy,
    pending: Mutex<HashMap<i64, Pending>>,
    /// Set once the process is gone or going; new requests fail at once.
    closed: Mutex<Option<String>>,
    list_changed: Notify,
}

impl Shared {
    fn new(server: &str, offer: ClientOffer) -> Arc<Self> {
        Arc::new(Self {
            server: server.to_owned(),
            sampler: offer.sampler,
            elicitation: offer.elicitation,
            pending: Mutex::new(HashMap::new()),
            closed: Mutex::new(None),
            list_changed: Notify::new(),
        })
    }

    /// Fails every in-flight request (their senders drop) and refuses new ones.
    fn close(&self, how: &str) {
        if let Ok(mut closed) = self.closed.lock()
            && closed.is_none()
        {
            *closed = Some(how.to_owned());
        }
        let drained: Vec<Pending> = self
            .pending
            .lock()
            .map(|mut pending| pending.drain().map(|(_, entry)| entry).collect())
            .unwrap_or_default();
        drop(drained);
    }

    fn closed_reason(&self) -> Option<String> {
        self.closed.lock().ok().and_then(|closed| closed.clone())
    }
}

/// What the client answers a server's own requests with.
#[derive(Clone, Default)]
pub(crate) struct ClientOffer {
    /// Answers sampling requests, when the agent offers sampling.
    pub sampler: Option<Sampler>,
    pub elicitation: ElicitationPolicy,
}

/// A handle to one running server process; cheap to share behind an `Arc`.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    /// The process, for a stdio server; `None` for a remote one.
    pid: Option<u32>,
    /// The transport of a remote server (stopped with the connection).
    _http: Option<HttpTransport>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    next_id: AtomicI64,
    era: OnceLock<Era>,
    exited: watch::Receiver<Option<String>>,
    stderr_tail: Arc<Mutex<StderrTail>>,
}

impl Connection {
    /// Takes over a spawned process and starts its tasks (on the current tokio runtime).
    pub(crate) fn start(server: &str, spawned: SpawnedServer, offer: ClientOffer) -> Self {
        let SpawnedServer {
            mut child,
            pid,
            stdin,
            stdout,
            stderr,
        } = spawned;
        let shared = Shared::new(server, offer);
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let (exited_tx, exited) = watch::channel(None);
        let stderr_tail = Arc::new(Mutex::new(StderrTail::default()));

        tokio::spawn(write_lines(stdin, outgoing_rx));
        tokio::spawn(read_lines(stdout, shared.clone(), outgoing.clone()));
        tokio::spawn(drain_stderr(server.to_owned(), stderr, stderr_tail.clone()));
        let waiter_shared = shared.clone();
        tokio::spawn(async move {
            let how = match child.wait().await {
                Ok(status) => describe_exit(status),
                Err(error) => format!("wait failed: {error}"),
            };
            waiter_shared.close(&how);
            // Whatever the leader left in its group (an npx grandchild) goes with it.
            signal_group(pid, libc::SIGKILL);
            let _ = exited_tx.send(Some(how));
        });
        Self {
            shared,
            pid: Some(pid),
            _http: None,
            outgoing,
            next_id: AtomicI64::new(1),
            era: OnceLock::new(),
            exited,
            stderr_tail,
        }
    }

    /// Takes over a remote server at `target` (streamable HTTP). Must be called inside a
    /// running actix system.
    pub(crate) fn start_http(server: &str, target: HttpTarget, offer: ClientOffer) -> Self {
        let shared = Shared::new(server, offer);
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let (ended_tx, exited) = watch::channel(None);
        let router_shared = shared.clone();
        let router_outgoing = outgoing.clone();
        let router: Router = Box::new(move |message| {
            route(&router_shared, &router_outgoing, jsonrpc::classify(message));
        });
        let transport = http_client::start(server, target, outgoing_rx, router, ended_tx);
        let mut ended = exited.clone();
        let waiter_shared = shared.clone();
        tokio::spawn(async move {
            let how = match ended.wait_for(Option::is_some).await {
                Ok(how) => how.clone().unwrap_or_default(),
                Err(_) => "the transport stopped".to_owned(),
            };
            waiter_shared.close(&how);
        });
        Self {
            shared,
            pid: None,
            _http: Some(transport),
            outgoing,
            next_id: AtomicI64::new(1),
            era: OnceLock::new(),
            exited,
            stderr_tail: Arc::new(Mutex::new(StderrTail::default())),
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// A receiver that reports how the process exited, once it has.
    pub(crate) fn exit_watch(&self) -> watch::Receiver<Option<String>> {
        self.exited.clone()
    }

    /// Woken whenever the server says its tool list changed.
    pub(crate) async fn list_changed(&self) {
        self.shared.list_changed.notified().await;
    }

    /// The server's last stderr line, for error reports.
    pub(crate) fn stderr_last_line(&self) -> Option<String> {
        self.stderr_tail
            .lock()
            .ok()
            .and_then(|tail| tail.last_line())
    }

    /// Decides the era and completes the legacy handshake when needed, all before `deadline`.
    pub(crate) async fn negotiate(&self, deadline: Instant) -> Result<Negotiated, String> {
        let probe = self.discover_probe(deadline).await;
        let negotiated = match probe {
            Some(Ok(result)) => Negotiated {
                era: Era::Modern,
                protocol_version: MODERN_VERSION.to_owned(),
                server_name: result
                    .pointer("/_meta/io.modelcontextprotocol~1serverInfo/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
            Some(Err(problem)) => return Err(problem),
            None => self.initialize(deadline).await?,
        };
        let _ = self.era.set(negotiated.era);
        Ok(negotiated)
    }

    /// `Some(Ok)` when the server is modern, `Some(Err)` when it is modern but cannot serve
    /// our version, `None` when it should be treated as legacy (any other answer, or silence).
    async fn discover_probe(&self, deadline: Instant) -> Option<Result<Value, String>> {
        // A refusal that lists our version anyway is worth one more try.
        for attempt in 0..2 {
            let limit = DISCOVER_PROBE.min(deadline.saturating_duration_since(Instant::now()));
            let mut params = json!({});
            insert_modern_meta(&mut params, self.shared.sampler.is_some());
            match self
                .request_raw("server/discover", params, handshake_options(limit))
                .await
            {
                Ok(result) => {
                    let versions = result.get("supportedVersions").and_then(Value::as_array);
                    let speaks_ours = versions
                        .is_some_and(|list| list.iter().any(|version| version == MODERN_VERSION));
                    return match versions {
                        Some(_) if speaks_ours => Some(Ok(result)),
                        Some(list) => Some(Err(format!(
                            "the server speaks only protocol versions {list:?}, none of which we speak"
                        ))),
                        None => None,
                    };
                }
                Err(RequestFailure::Rpc(error)) if error.code == UNSUPPORTED_PROTOCOL_VERSION => {
                    let supported = |version: &str| {
                        error
                            .data
                            .as_ref()
                            .and_then(|data| data.get("supported"))
                            .and_then(Value::as_array)
                            .is_some_and(|list| list.iter().any(|listed| listed == version))
                    };
                    if supported(MODERN_VERSION) && attempt == 0 {
                        continue;
                    }
                    // A server that offers a handshake version gets the handshake.
                    if LEGACY_VERSIONS.iter().any(|version| supported(version)) {
                        return None;
                    }
                    return Some(Err(format!(
                        "the server refused protocol {MODERN_VERSION}: {}",
                        error.message
                    )));
                }
                Err(RequestFailure::Exited(how)) => {
                    return Some(Err(format!("the server exited ({how})")));
                }
                Err(_) => return None,
            }
        }
        None
    }

    async fn initialize(&self, deadline: Instant) -> Result<Negotiated, String> {
        let limit = deadline.saturating_duration_since(Instant::now());
        let params = json!({
            "protocolVersion": LEGACY_VERSION,
            "capabilities": client_capabilities(self.shared.sampler.is_some()),
            "clientInfo": client_info(),
        });
        let result = self
            .request_raw("initialize", params, handshake_options(limit))
            .await
            .map_err(|failure| format!("initialize failed: {failure}"))?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !LEGACY_VERSIONS.contains(&version.as_str()) {
            return Err(format!(
                "the server answered initialize with protocol version `{version}`, which we do not speak"
            ));
        }
        self.notify("notifications/initialized", Value::Null);
        Ok(Negotiated {
            era: Era::Legacy,
            protocol_version: version,
            server_name: result
                .pointer("/serverInfo/name")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// Every tool the server lists, following cursors.
    pub(crate) async fn list_tools(&self, timeout: Duration) -> Result<Vec<Value>, RequestFailure> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let params = cursor
                .take()
                .map_or(json!({}), |cursor| json!({"cursor": cursor}));
            let result = self
                .request("tools/list", params, RequestLimits::fixed(timeout), None)
                .await?;
            if let Some(page) = result.get("tools").and_then(Value::as_array) {
                tools.extend(page.iter().cloned());
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => return Ok(tools),
            }
        }
        tracing::warn!(server = %self.shared.server, "tools/list kept paginating; using the first {MAX_LIST_PAGES} pages");
        Ok(tools)
    }

    /// Calls a tool; the result is the raw `CallToolResult`.
    pub(crate) async fn call_tool(
        &self,
        tool: &str,
        arguments: Value,
        limits: RequestLimits,
        cancel: &CancellationToken,
    ) -> Result<Value, RequestFailure> {
        let params = json!({"name": tool, "arguments": arguments});
        self.request("tools/call", params, limits, Some(cancel))
            .await
    }

    /// A request in the negotiated era (modern requests carry `_meta`), tracking progress.
    async fn request(
        &self,
        method: &str,
        mut params: Value,
        limits: RequestLimits,
        cancel: Option<&CancellationToken>,
    ) -> Result<Value, RequestFailure> {
        if self.era.get() == Some(&Era::Modern) {
            insert_modern_meta(&mut params, self.shared.sampler.is_some());
        }
        let options = RequestOptions {
            limits,
            cancel,
            with_progress: true,
        };
        self.request_raw(method, params, options).await
    }

    async fn request_raw(
        &self,
        method: &str,
        mut params: Value,
        options: RequestOptions<'_>,
    ) -> Result<Value, RequestFailure> {
        let RequestOptions {
            limits,
            cancel,
            with_progress,
        } = options;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        if with_progress {
            // Our token is the request id, so progress routes without another table.
            jsonrpc::meta_mut(&mut params).insert("progressToken".into(), id.into());
        }
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .map_err(|_| RequestFailure::Exited("state poisoned".into()))?;
            // Checked under the lock `close` drains, so no request slips in after it.
            if let Some(how) = self.shared.closed_reason() {
                return Err(RequestFailure::Exited(how));
            }
            pending.insert(
                id,
                Pending {
                    reply: reply_tx,
                    progress: with_progress.then_some(progress_tx),
                },
            );
        }
        let request = jsonrpc::request(&RequestId::Number(id), method, params);
        if self.outgoing.send(Outgoing::Message(request)).is_err() {
            self.forget(id);
            return Err(RequestFailure::Exited("its stdin is closed".into()));
        }

        let started = Instant::now();
        let hard_deadline = started + limits.hard;
        let mut deadline = (started + limits.idle).min(hard_deadline);
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);
        tokio::pin!(reply_rx);
        loop {
            tokio::select! {
                reply = &mut reply_rx => {
                    return match reply {
                        Ok(Ok(result)) => Ok(result),
                        Ok(Err(error)) => Err(RequestFailure::Rpc(error)),
                        Err(_) => Err(RequestFailure::Exited(
                            self.shared.closed_reason().unwrap_or_else(|| "connection closed".into()),
                        )),
                    };
                }
                Some(()) = progress_rx.recv() => {
                    deadline = (Instant::now() + limits.idle).min(hard_deadline);
                }
                () = sleep_until(deadline) => {
                    self.abandon(id, method, "request timeout");
                    return Err(RequestFailure::Timeout(started.elapsed()));
                }
                () = cancel.cancelled() => {
                    self.abandon(id, method, "cancelled by the client");
                    return Err(RequestFailure::Cancelled);
                }
            }
        }
    }

    fn forget(&self, id: i64) -> bool {
        self.shared
            .pending
            .lock()
            .is_ok_and(|mut pending| pending.remove(&id).is_some())
    }

    /// Stops waiting for `id` and tells the server, unless it was part of negotiation (which
    /// must never be cancelled) or already finished. A late reply or progress is dropped by
    /// the reader.
    fn abandon(&self, id: i64, method: &str, reason: &str) {
        // Before the handshake completes a legacy server may receive nothing but pings.
        if self.forget(id) && method != "initialize" && method != "server/discover" {
            self.notify(
                "notifications/cancelled",
                json!({"requestId": id, "reason": reason}),
            );
        }
    }

    fn notify(&self, method: &str, mut params: Value) {
        if self.era.get() == Some(&Era::Modern) && !params.is_null() {
            insert_modern_meta(&mut params, self.shared.sampler.is_some());
        }
        let _ = self
            .outgoing
            .send(Outgoing::Message(jsonrpc::notification(method, params)));
    }

    /// Stops the server: in-flight requests fail, stdin closes, then SIGTERM and SIGKILL go to
    /// the whole group if it lingers, and the leader is reaped. Bounded in time.
    pub(crate) async fn shutdown(&self) {
        self.shared.close("shut down");
        let _ = self.outgoing.send(Outgoing::Close);
        let mut exited = self.exited.clone();
        let Some(pid) = self.pid else {
            // A remote server: the transport ends its session and stops.
            wait_exited(&mut exited, STDIN_GRACE).await;
            return;
        };
        if !wait_exited(&mut exited, STDIN_GRACE).await {
            tracing::debug!(server = %self.shared.server, "still running after stdin closed; SIGTERM");
            signal_group(pid, libc::SIGTERM);
            if !wait_exited(&mut exited, TERM_GRACE).await {
                tracing::debug!(server = %self.shared.server, "still running after SIGTERM; SIGKILL");
                signal_group(pid, libc::SIGKILL);
                if !wait_exited(&mut exited, KILL_WAIT).await {
                    tracing::warn!(server = %self.shared.server, pid, "not reaped after SIGKILL");
                }
            }
        }
        // The waiter already killed the group's remnants when the leader went.
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A handle dropped without shutdown (a start that timed out) must not leave the group.
        if self.exited.borrow().is_none()
            && let Some(pid) = self.pid
        {
            signal_group(pid, libc::SIGKILL);
        }
    }
}

/// What we offer servers: form elicitation, answered by [`elicitation::answer`] (declined
/// unless the server is configured to get the form's defaults), so a server can go on without
/// the answer instead of failing; sampling when the agent's model answers it. No roots.
fn client_capabilities(sampling: bool) -> Value {
    let mut capabilities = json!({"elicitation": {"form": {}}});
    if sampling {
        capabilities["sampling"] = json!({});
    }
    capabilities
}

fn client_info() -> Value {
    json!({"name": "kubiya-agent-server", "version": env!("CARGO_PKG_VERSION")})
}

/// The per-request `_meta` every modern request carries.
fn insert_modern_meta(params: &mut Value, sampling: bool) {
    let meta = jsonrpc::meta_mut(params);
    meta.insert(META_PROTOCOL_VERSION.into(), MODERN_VERSION.into());
    meta.insert(
        META_CLIENT_CAPABILITIES.into(),
        client_capabilities(sampling),
    );
    meta.insert(META_CLIENT_INFO.into(), client_info());
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "exited".to_owned(),
    }
}

/// The only task that writes to the server's stdin.
async fn write_lines(mut stdin: ChildStdin, mut outgoing: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(message) = outgoing.recv().await {
        match message {
            Outgoing::Message(message) => {
                let line = jsonrpc::to_line(&message);
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    // A broken pipe: the waiter reports the exit.
                    break;
                }
            }
            Outgoing::Close => break,
        }
    }
    let _ = stdin.shutdown().await;
}

/// Routes every stdout line: replies to their waiters, progress to its request, list changes
/// to the child, server requests answered; anything else is logged and skipped.
async fn read_lines(
    stdout: ChildStdout,
    shared: Arc<Shared>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut line = Vec::new();
    loop {
        match read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES).await {
            Ok(LineRead::Line) => {}
            Ok(LineRead::TooLong(bytes)) => {
                tracing::warn!(server = %shared.server, bytes, "dropped a stdout line over the size limit");
                continue;
            }
            Ok(LineRead::Eof) | Err(_) => break,
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(message) = serde_json::from_slice::<Value>(&line) else {
            tracing::debug!(server = %shared.server, line = %String::from_utf8_lossy(&line[..line.len().min(200)]), "skipped a stdout line that is not JSON");
            continue;
        };
        route(&shared, &outgoing, jsonrpc::classify(message));
    }
    shared.close("its stdout closed");
}

fn route(shared: &Shared, outgoing: &mpsc::UnboundedSender<Outgoing>, incoming: Incoming) {
    match incoming {
        Incoming::Response { id, result } => {
            let entry = match id {
                RequestId::Number(id) => shared
                    .pending
                    .lock()
                    .ok()
                    .and_then(|mut pending| pending.remove(&id)),
                RequestId::Text(_) => None,
            };
            // No entry: a late reply to a request we abandoned.
            if let Some(entry) = entry {
                let _ = entry.reply.send(result);
            }
        }
        Incoming::Notification { method, params } => match method.as_str() {
            "notifications/progress" => {
                let token = params.get("progressToken").and_then(Value::as_i64);
                if let Some(token) = token
                    && let Ok(pending) = shared.pending.lock()
                    && let Some(Pending {
                        progress: Some(progress),
                        ..
                    }) = pending.get(&token)
                {
                    let _ = progress.send(());
                }
            }
            "notifications/tools/list_changed" => shared.list_changed.notify_one(),
            "notifications/message" => {
                let level = params
                    .get("level")
                    .and_then(Value::as_str)
                    .unwrap_or("info");
                let data = params.get("data").map(Value::to_string).unwrap_or_default();
                tracing::debug!(server = %shared.server, level, data = %data, "server log message");
            }
            _ => {}
        },
        Incoming::Request { id, method, params } => {
            let reply = match method.as_str() {
                "ping" => jsonrpc::response(&id, json!({})),
                // Nobody can answer a server's question in a supervised session yet: a clean
                // decline lets the tool carry on without it.
                "sampling/createMessage" if shared.sampler.is_some() => {
                    let sampler = shared.sampler.clone();
                    let server = shared.server.clone();
                    let outgoing = outgoing.clone();
                    tokio::spawn(async move {
                        let Some(sampler) = sampler else { return };
                        let reply = match sampler.answer(&server, &params).await {
                            Ok(result) => jsonrpc::response(&id, result),
                            Err(error) => jsonrpc::error_response(Some(&id), &error),
                        };
                        let _ = outgoing.send(Outgoing::Message(reply));
                    });
                    return;
                }
                "elicitation/create" => {
                    let answer = elicitation::answer(shared.elicitation, &params);
                    tracing::info!(server = %shared.server, action = %answer["action"], "MCP server asked the user a question");
                    jsonrpc::response(&id, answer)
                }
                _ => jsonrpc::error_response(
                    Some(&id),
                    &RpcError::new(
                        METHOD_NOT_FOUND,
                        format!("the client does not offer {method}"),
                    ),
                ),
            };
            let _ = outgoing.send(Outgoing::Message(reply));
        }
        Incoming::Invalid { id } => {
            tracing::debug!(server = %shared.server, ?id, code = INTERNAL_ERROR, "skipped a message that is not JSON-RPC");
        }
    }
}
