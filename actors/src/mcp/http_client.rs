//! The streamable HTTP transport of our MCP client: what carries a [`super::connection`]'s
//! messages to a remote server (`url` in the configuration) instead of a process's stdio.
//!
//! Each message is one `POST` to the server's endpoint with the configured headers (a bearer
//! token, say), the session id the server issued at `initialize` (legacy era) and the
//! `MCP-Protocol-Version`; modern requests also name themselves in `Mcp-Method` and
//! `Mcp-Name`. The answer is JSON, an SSE stream of the request's notifications and then its
//! response, or 202 for notifications; each message in it goes to the connection's router,
//! exactly as a stdout line would. An HTTP error becomes a JSON-RPC error for the request; a
//! server that cannot be reached or a session the server forgot ends the connection, so the
//! supervisor reconnects with backoff. Shutdown ends a legacy session with `DELETE`.
//!
//! In the legacy era the transport also opens the server's own stream (`GET`) once the
//! session is initialized, for the requests and notifications a server sends outside any call
//! (a question for the user, `list_changed`). SSE streams resume as the specification asks: a
//! call's stream that ends before its answer, and the server's own stream whenever it ends, are
//! picked up again with `GET` and `Last-Event-ID` after the `retry:` delay the server set.
//!
//! `awc` clients are not `Send`, so the transport lives on an arbiter of its own and the
//! connection talks to it through channels only.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use actix::{Arbiter, ArbiterHandle};
use awc::{Client, Connector};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::connection::Outgoing;
use super::jsonrpc::{self, INTERNAL_ERROR, META_PROTOCOL_VERSION, RequestId, RpcError};
use super::oauth::{Challenge, OAuth};
use crate::framing::sse::SseDecoder;

/// How long opening a connection (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message we read from a server (as the stdio transport's line limit).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// How much of an HTTP error's body goes into the error message.
const ERROR_SNIPPET_BYTES: usize = 300;
/// The wait before resuming a stream when the server set no `retry:`.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// The bounds on a server's `retry:` (waiting longer than asked is allowed; a shorter wait
/// would let a server that closes at once keep us reconnecting), and the longest wait between
/// reopenings of the server's own stream when it keeps failing.
const MIN_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Times a call's stream is resumed before the call fails, and times in a row the server's
/// own stream may fail to open before we stop asking.
const MAX_RESUMES: usize = 5;

/// Where a remote server is and the headers it gets (references already expanded).
#[derive(Clone)]
pub(crate) struct HttpTarget {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Gets bearer tokens when the server asks for authorization.
    pub oauth: Option<OAuth>,
}

/// Token requests per message: one after a 401 (or a stale token), one more for a step-up
/// (403 `insufficient_scope`); a server that keeps refusing gets the refusal back.
const MAX_AUTHORIZATIONS: usize = 2;

/// Routes one message from the server, as a stdout line would be.
pub(crate) type Router = Box<dyn Fn(Value) + Send>;

/// The running transport; stops its arbiter when dropped.
pub(crate) struct HttpTransport(ArbiterHandle);

impl Drop for HttpTransport {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// What the transport's tasks share on its arbiter.
struct State {
    server: String,
    target: HttpTarget,
    client: Client,
    session: RefCell<Option<String>>,
    /// The version `initialize` agreed on, sent on every later request (legacy era).
    version: RefCell<Option<String>>,
    router: Router,
    /// Set once the connection is over, with how it ended.
    ended: watch::Sender<Option<String>>,
}

impl State {
    fn end(&self, how: String) {
        self.ended.send_if_modified(|ended| {
            if ended.is_some() {
                return false;
            }
            *ended = Some(how);
            true
        });
    }
}

/// Starts the transport for `server`: messages sent on `outgoing` go out, answers go to
/// `router`, and `ended` says when (and why) the connection is over. Must be called inside a
/// running actix system.
pub(crate) fn start(
    server: &str,
    target: HttpTarget,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    router: Router,
    ended: watch::Sender<Option<String>>,
) -> HttpTransport {
    let arbiter = Arbiter::new();
    let server = server.to_owned();
    arbiter.spawn_fn(move || {
        let client = Client::builder()
            .connector(Connector::new().timeout(CONNECT_TIMEOUT))
            .disable_timeout()
            .finish();
        let state = Rc::new(State {
            server,
            target,
            client,
            session: RefCell::new(None),
            version: RefCell::new(None),
            router,
            ended,
        });
        actix::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                match message {
                    Outgoing::Message(message) => {
                        actix::spawn(post(state.clone(), message));
                    }
                    Outgoing::Close => {
                        end_session(&state).await;
                        break;
                    }
                }
            }
            state.end("shut down".to_owned());
        });
    });
    HttpTransport(arbiter.handle())
}

fn request_builder(state: &State, method: awc::http::Method) -> awc::ClientRequest {
    let mut request = state
        .client
        .request(method, &state.target.url)
        .insert_header(("Accept", "application/json, text/event-stream"));
    for (name, value) in &state.target.headers {
        request = request.insert_header((name.as_str(), value.as_str()));
    }
    if let Some(session) = state.session.borrow().as_deref() {
        request = request.insert_header(("Mcp-Session-Id", session));
    }
    request
}

/// Sends one message and routes whatever comes back.
async fn post(state: Rc<State>, message: Value) {
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // Only requests (a method and an id) are answered.
    let id = message
        .get("id")
        .and_then(RequestId::from_value)
        .filter(|_| method.is_some());
    let modern_version = message
        .pointer("/params/_meta")
        .and_then(|meta| meta.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let body = bytes::Bytes::from(message.to_string());
    let mut authorizations = 0;
    let mut response = loop {
        let bearer = match &state.target.oauth {
            Some(oauth) => oauth.current(&state.client).await,
            None => None,
        };
        let mut request = request_builder(&state, awc::http::Method::POST)
            .insert_header(("Content-Type", "application/json"));
        if let Some(token) = &bearer {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let version = modern_version
            .clone()
            .or_else(|| state.version.borrow().clone());
        if let Some(version) = version {
            request = request.insert_header(("MCP-Protocol-Version", version));
        }
        if modern_version.is_some()
            && let Some(method) = method.as_deref()
        {
            request = request.insert_header(("Mcp-Method", method));
            let name = match method {
                "tools/call" | "prompts/get" => message.pointer("/params/name"),
                "resources/read" => message.pointer("/params/uri"),
                _ => None,
            };
            if let Some(name) = name.and_then(Value::as_str) {
                request = request.insert_header(("Mcp-Name", name));
            }
        }
        let mut response = match request.send_body(body.clone()).await {
            Ok(response) => response,
            Err(error) => {
                let how = format!(
                    "the server at {} cannot be reached: {error}",
                    state.target.url
                );
                fail_request(&state, id.as_ref(), &how);
                state.end(how);
                return;
            }
        };
        let Some(oauth) = &state.target.oauth else {
            break response;
        };
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok())
            .map(Challenge::parse)
            .unwrap_or_default();
        let refused = match response.status().as_u16() {
            401 => true,
            403 => challenge.insufficient_scope(),
            _ => false,
        };
        if !refused || authorizations == MAX_AUTHORIZATIONS {
            break response;
        }
        authorizations += 1;
        // Read the refusal to its end so the connection can be reused.
        let _ = response.body().limit(ERROR_SNIPPET_BYTES * 16).await;
        if let Err(problem) = oauth
            .authorize(&state.client, &challenge, bearer.as_deref())
            .await
        {
            tracing::warn!(server = %state.server, %problem, "OAuth authorization failed");
            fail_request(
                &state,
                id.as_ref(),
                &format!("the server requires authorization, which failed: {problem}"),
            );
            return;
        }
    };
    let status = response.status();
    if status.as_u16() == 404 && state.session.borrow().is_some() {
        let how = "the server ended the session (404)".to_owned();
        fail_request(&state, id.as_ref(), &how);
        state.end(how);
        return;
    }
    if method.as_deref() == Some("initialize")
        && let Some(session) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|value| value.to_str().ok())
    {
        *state.session.borrow_mut() = Some(session.to_owned());
    }
    if status.as_u16() == 202 || status.as_u16() == 204 {
        if method.as_deref() == Some("notifications/initialized") && status.is_success() {
            actix::spawn(listen(state.clone()));
        }
        return;
    }
    let event_stream = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.starts_with("text/event-stream"));
    if !status.is_success() {
        let body = response
            .body()
            .limit(ERROR_SNIPPET_BYTES * 16)
            .await
            .unwrap_or_default();
        let error = http_error(status.as_u16(), &body);
        if let Some(id) = id.as_ref() {
            (state.router)(jsonrpc::error_response(Some(id), &error));
        }
        return;
    }
    if event_stream {
        let mut cursor = StreamCursor::default();
        let end = read_events(
            &state,
            &mut response,
            method.as_deref(),
            id.as_ref(),
            &mut cursor,
        )
        .await;
        if let Some(id) = id.as_ref()
            && !end.answered
        {
            resume(&state, id, method.as_deref(), cursor).await;
        }
        return;
    }
    match response.body().limit(MAX_MESSAGE_BYTES).await {
        Ok(body) if body.is_empty() => {}
        Ok(body) => match serde_json::from_slice::<Value>(&body) {
            Ok(answer) => deliver(&state, answer, method.as_deref()),
            Err(error) => fail_request(
                &state,
                id.as_ref(),
                &format!("the server's answer is not JSON: {error}"),
            ),
        },
        Err(error) => fail_request(
            &state,
            id.as_ref(),
            &format!("reading the server's answer failed: {error}"),
        ),
    }
}

/// Routes one message, noting the version a handshake agreed on first.
fn deliver(state: &State, message: Value, sent_method: Option<&str>) {
    if sent_method == Some("initialize")
        && let Some(version) = message
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
    {
        *state.version.borrow_mut() = Some(version.to_owned());
    }
    (state.router)(message);
}

/// Where a stream got to: what resuming it needs.
#[derive(Default)]
struct StreamCursor {
    last_event_id: Option<String>,
    retry: Option<Duration>,
}

impl StreamCursor {
    fn retry(&self) -> Duration {
        self.retry
            .unwrap_or(DEFAULT_RETRY)
            .clamp(MIN_RETRY, MAX_RETRY)
    }
}

/// How an SSE stream ended.
#[derive(Default)]
struct StreamEnd {
    /// The answer to the awaited request came.
    answered: bool,
    /// Messages it carried.
    messages: usize,
}

/// Routes each message of an SSE stream until it ends, noting event ids and `retry:`.
async fn read_events<S>(
    state: &State,
    response: &mut awc::ClientResponse<S>,
    sent_method: Option<&str>,
    awaited: Option<&RequestId>,
    cursor: &mut StreamCursor,
) -> StreamEnd
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut decoder = SseDecoder::new();
    let mut end = StreamEnd::default();
    // Bytes since the last event: a server that never ends one cannot grow our memory.
    let mut unfinished = 0;
    while let Some(Ok(chunk)) = response.next().await {
        unfinished += chunk.len();
        decoder.feed(&chunk);
        while let Some(event) = decoder.next_event() {
            unfinished = 0;
            let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            end.messages += 1;
            let answers = awaited.is_some()
                && message.get("method").is_none()
                && message.get("id").and_then(RequestId::from_value).as_ref() == awaited;
            deliver(state, message, sent_method);
            end.answered |= answers;
        }
        if let Some(id) = decoder.last_event_id() {
            cursor.last_event_id = Some(id.to_owned());
        }
        cursor.retry = decoder.retry().or(cursor.retry);
        if unfinished > MAX_MESSAGE_BYTES {
            tracing::warn!(server = %state.server, "an SSE event went over the size limit; stream dropped");
            break;
        }
    }
    end
}

/// A `GET` of the server's stream, resuming after `last_event_id` when given.
async fn open_stream(
    state: &State,
    last_event_id: Option<&str>,
) -> Result<awc::ClientResponse, String> {
    let mut request = request_builder(state, awc::http::Method::GET)
        .insert_header(("Accept", "text/event-stream"));
    if let Some(version) = state.version.borrow().as_deref() {
        request = request.insert_header(("MCP-Protocol-Version", version));
    }
    if let Some(oauth) = &state.target.oauth
        && let Some(token) = oauth.current(&state.client).await
    {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    if let Some(id) = last_event_id {
        request = request.insert_header(("Last-Event-ID", id));
    }
    request.send().await.map_err(|error| error.to_string())
}

/// Picks up a call's stream that ended before its answer: after the server's `retry:` delay,
/// `GET` with the last event id, a few times; then the call fails.
async fn resume(
    state: &State,
    id: &RequestId,
    sent_method: Option<&str>,
    mut cursor: StreamCursor,
) {
    for _ in 0..MAX_RESUMES {
        if cursor.last_event_id.is_none() || state.ended.borrow().is_some() {
            break;
        }
        tokio::time::sleep(cursor.retry()).await;
        let mut response = match open_stream(state, cursor.last_event_id.as_deref()).await {
            Ok(response) if response.status().is_success() => response,
            _ => break,
        };
        let end = read_events(state, &mut response, sent_method, Some(id), &mut cursor).await;
        if end.answered {
            return;
        }
    }
    fail_request(
        state,
        Some(id),
        "the server's stream ended before the answer and could not be resumed",
    );
}

/// Keeps the server's own stream open for the life of a legacy session, reopening it (with
/// the last event id) whenever it ends. A server that refuses it the first time (405, as the
/// specification says, or any other status) offers none; the connection ending stops it.
async fn listen(state: Rc<State>) {
    let mut cursor = StreamCursor::default();
    let mut opened = false;
    let mut failures = 0u32;
    while state.ended.borrow().is_none() {
        match open_stream(&state, cursor.last_event_id.as_deref()).await {
            Ok(mut response) if response.status().is_success() => {
                opened = true;
                let end = read_events(&state, &mut response, None, None, &mut cursor).await;
                // A stream that closes with nothing in it counts against the server.
                failures = if end.messages > 0 { 0 } else { failures + 1 };
            }
            Ok(mut response) => {
                let _ = response.body().limit(ERROR_SNIPPET_BYTES).await;
                if !opened {
                    tracing::debug!(server = %state.server, status = response.status().as_u16(), "the server offers no stream of its own");
                    return;
                }
                failures += 1;
            }
            Err(_) => failures += 1,
        }
        if failures as usize >= MAX_RESUMES {
            tracing::debug!(server = %state.server, "the server's own stream keeps failing; not reopened");
            return;
        }
        let backoff = DEFAULT_RETRY.saturating_mul(1 << failures).min(MAX_RETRY);
        let wait = if failures == 0 {
            cursor.retry()
        } else {
            cursor.retry().max(backoff)
        };
        let mut ended = state.ended.subscribe();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = ended.wait_for(Option::is_some) => return,
        }
    }
}

/// A JSON-RPC error for an HTTP failure: the server's own error when it sent one.
fn http_error(status: u16, body: &[u8]) -> RpcError {
    if let Ok(answer) = serde_json::from_slice::<Value>(body)
        && let Some(error) = answer.get("error")
        && let Some(code) = error.get("code").and_then(Value::as_i64)
    {
        let mut rpc = RpcError::new(
            code,
            error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error without a message"),
        );
        rpc.data = error.get("data").cloned();
        return rpc;
    }
    let snippet = String::from_utf8_lossy(&body[..body.len().min(ERROR_SNIPPET_BYTES)]);
    let hint = match status {
        401 | 403 => " (check the `headers` configured for this server, e.g. Authorization)",
        _ => "",
    };
    RpcError::new(
        INTERNAL_ERROR,
        format!("HTTP {status}{hint}: {}", snippet.trim()),
    )
}

fn fail_request(state: &State, id: Option<&RequestId>, why: &str) {
    if let Some(id) = id {
        (state.router)(jsonrpc::error_response(
            Some(id),
            &RpcError::new(INTERNAL_ERROR, why),
        ));
    }
}

/// Ends a legacy session with `DELETE`, without waiting long for it.
async fn end_session(state: &State) {
    if state.session.borrow().is_none() {
        return;
    }
    let request = request_builder(state, awc::http::Method::DELETE);
    let _ = tokio::time::timeout(Duration::from_secs(2), request.send()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_keep_the_servers_own_error() {
        let error = http_error(
            400,
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request: no session"}}"#,
        );
        assert_eq!(error.code, -32600);
        let error = http_error(401, b"denied");
        assert!(error.message.contains("401") && error.message.contains("headers"));
    }
}
