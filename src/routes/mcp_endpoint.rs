//! `/mcp`: our MCP server over streamable HTTP, for both protocol eras.
//!
//! - **Legacy** (2025-11-25 and older): `POST` of `initialize` opens a session and answers
//!   with `Mcp-Session-Id`; later `POST`s carry it; `GET` opens the session's stream for
//!   resource updates; `DELETE` ends it; an unknown session is 404.
//! - **Modern** (2026-07-28): every `POST` stands alone (no session), carries its version and
//!   capabilities in `_meta`, and names its method (and tool, prompt or resource) in the
//!   `Mcp-Method` and `Mcp-Name` headers, which must match the body (400, -32020). Protocol
//!   errors have HTTP statuses: 400 for bad params or versions, 404 for unknown methods.
//!
//! A request answered at once gets JSON; one that runs (a tool call) streams its progress and
//! log messages and then its result as SSE when the client accepts it. A client that leaves
//! cancels its request. Bodies are JSON-RPC both ways, errors included, as MCP clients
//! expect.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use kubiya_actors::mcp::jsonrpc::{
    self, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RequestId, RpcError,
    UNSUPPORTED_PROTOCOL_VERSION,
};
use kubiya_actors::mcp::server::outbound;
use kubiya_actors::mcp::{Connection, Era, Handled};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

use super::openapi::SseEvent;
use crate::mcp_http::McpEndpoint;
use crate::tenant::Tenant;

const SESSION_HEADER: &str = "mcp-session-id";
/// 2026-07-28: a header that disagrees with the body it travels with.
const HEADER_MISMATCH: i64 = -32020;
const MISSING_CLIENT_CAPABILITY: i64 = -32021;

#[utoipa::path(post, path = "/mcp", tag = "mcp",
    request_body(content = Object, description = "One JSON-RPC message of the Model Context Protocol (either era)", content_type = "application/json"),
    params(("Mcp-Session-Id" = Option<String>, Header, description = "A legacy session, from the `initialize` answer"),
        ("Mcp-Method" = Option<String>, Header, description = "2026-07-28: the body's method"),
        ("Mcp-Name" = Option<String>, Header, description = "2026-07-28: the tool, prompt or resource the body names"),
        ("MCP-Protocol-Version" = Option<String>, Header, description = "The protocol version")),
    responses((status = 200, description = "The JSON-RPC response, or the request's messages as SSE ending with it",
        content((Object = "application/json"), (SseEvent = "text/event-stream"))),
        (status = 202, description = "A notification or response, accepted"),
        (status = "default", description = "A JSON-RPC error (or, from the API's own checks, an error in OpenAI's shape)", body = Object)))]
pub async fn post(
    req: HttpRequest,
    body: web::Payload,
    endpoint: web::Data<McpEndpoint>,
    tenant: Option<Tenant>,
) -> HttpResponse {
    if let Some(refusal) = refusal(&req, &endpoint) {
        return refusal;
    }
    let body = match body.to_bytes_limited(endpoint.max_body_bytes).await {
        Ok(Ok(body)) => body,
        Ok(Err(error)) => {
            return rpc_failure(
                StatusCode::BAD_REQUEST,
                None,
                INVALID_REQUEST,
                format!("could not read the body: {error}"),
            );
        }
        Err(_) => {
            return rpc_failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                INVALID_REQUEST,
                format!(
                    "the message is larger than {} bytes",
                    endpoint.max_body_bytes
                ),
            );
        }
    };
    let message: Value = match serde_json::from_slice(&body) {
        Ok(message @ Value::Object(_)) => message,
        Ok(_) => {
            return rpc_failure(
                StatusCode::BAD_REQUEST,
                None,
                INVALID_REQUEST,
                "a message is one JSON-RPC object (batches are not part of the protocol)",
            );
        }
        Err(error) => {
            return rpc_failure(
                StatusCode::BAD_REQUEST,
                None,
                PARSE_ERROR,
                format!("parse error: {error}"),
            );
        }
    };
    let tenant = tenant.unwrap_or_else(Tenant::default_tenant);
    let server = endpoint.server_for(&tenant);
    let tenant = tenant.id;
    let (connection, opens_session) = match session_id(req.headers()) {
        Some(id) => match endpoint.session(id, &tenant) {
            Some(session) => (session.connection.clone(), false),
            None => return unknown_session(message.get("id")),
        },
        None if is_handshake(&message) => (Connection::new(), true),
        None => {
            if let Some(refusal) = modern_header_refusal(req.headers(), &message) {
                return refusal;
            }
            (Connection::modern(), false)
        }
    };
    // Only a tool call has anything to say before its answer (progress, logs): another
    // request answered later (reading executions) is waited for and answered as JSON, with
    // its status.
    let may_stream = message.get("method").and_then(Value::as_str) == Some("tools/call");
    let (out, mut replies) = outbound();
    let handled = server.handle(&connection, message, &out);
    drop(out);
    let Handled::Request(id) = handled else {
        return HttpResponse::Accepted().finish();
    };
    let session = opens_session.then(|| endpoint.open_session(tenant, connection.clone()));
    let mut early = Vec::new();
    let mut response = None;
    while let Ok(message) = replies.try_recv() {
        if is_response_to(&message, &id) {
            response = Some(message);
            break;
        }
        early.push(message);
    }
    let mut answer = match response {
        Some(response) => json_answer(&connection, &response),
        None if may_stream && accepts_event_stream(req.headers()) => event_stream(
            early,
            replies,
            Pending {
                id,
                connection,
                answered: false,
            },
        ),
        None => match wait_for_response(&mut replies, &id).await {
            Some(response) => json_answer(&connection, &response),
            None => rpc_failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&id),
                jsonrpc::INTERNAL_ERROR,
                "the request ended without a response",
            ),
        },
    };
    if let Some(session) = session
        && let Ok(value) = header::HeaderValue::from_str(&session)
    {
        answer
            .headers_mut()
            .insert(header::HeaderName::from_static(SESSION_HEADER), value);
    }
    answer
}

/// `GET /mcp`: a legacy session's stream of messages that belong to no request.
#[utoipa::path(get, path = "/mcp", tag = "mcp",
    params(("Mcp-Session-Id" = Option<String>, Header, description = "The legacy session whose stream to open")),
    responses((status = 200, description = "The session's messages as SSE", content_type = "text/event-stream", body = SseEvent),
        (status = "default", description = "A JSON-RPC error (or, from the API's own checks, an error in OpenAI's shape)", body = Object)))]
pub async fn get(
    req: HttpRequest,
    endpoint: web::Data<McpEndpoint>,
    tenant: Option<Tenant>,
) -> HttpResponse {
    if let Some(refusal) = refusal(&req, &endpoint) {
        return refusal;
    }
    let Some(id) = session_id(req.headers()) else {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "POST, DELETE"))
            .json(rpc_error_body(
                None,
                INVALID_REQUEST,
                "GET opens a session's stream; this server has no stream without a session",
            ));
    };
    let Some(session) = endpoint.session(id, &tenant_id(tenant)) else {
        return unknown_session(None);
    };
    // The connection's sender never waits: what a slow reader cannot take is dropped (resource
    // updates only say "read it again"), so memory stays bounded.
    let (out, messages) = outbound();
    session.connection.set_unsolicited(Some(out));
    let closed = session.connection.closed_token();
    let stream = stream::unfold((messages, closed), |(mut messages, closed)| async move {
        tokio::select! {
            () = closed.cancelled() => None,
            message = messages.recv() => {
                message.map(|message| (Ok::<_, actix_web::Error>(sse_event(&message)), (messages, closed)))
            }
        }
    });
    sse_response(stream)
}

/// `DELETE /mcp`: ends a legacy session.
#[utoipa::path(delete, path = "/mcp", tag = "mcp",
    params(("Mcp-Session-Id" = Option<String>, Header, description = "The legacy session to end")),
    responses((status = 204, description = "The session ended"),
        (status = "default", description = "A JSON-RPC error (or, from the API's own checks, an error in OpenAI's shape)", body = Object)))]
pub async fn delete(
    req: HttpRequest,
    endpoint: web::Data<McpEndpoint>,
    tenant: Option<Tenant>,
) -> HttpResponse {
    if let Some(refusal) = refusal(&req, &endpoint) {
        return refusal;
    }
    match session_id(req.headers()) {
        Some(id) if endpoint.close_session(id, &tenant_id(tenant)) => {
            HttpResponse::NoContent().finish()
        }
        Some(_) => unknown_session(None),
        None => rpc_failure(
            StatusCode::BAD_REQUEST,
            None,
            INVALID_REQUEST,
            "DELETE ends a session: send its Mcp-Session-Id",
        ),
    }
}

fn tenant_id(tenant: Option<Tenant>) -> Arc<str> {
    tenant.map_or_else(|| Tenant::default_tenant().id, |tenant| tenant.id)
}

fn refusal(req: &HttpRequest, endpoint: &McpEndpoint) -> Option<HttpResponse> {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let origin = headers
        .get(header::ORIGIN)
        .map(|value| value.to_str().unwrap_or("\u{0}invalid"));
    let reason = endpoint.rebinding_refusal(host, origin)?;
    tracing::warn!(%reason, "MCP request refused");
    Some(rpc_failure(
        StatusCode::FORBIDDEN,
        None,
        INVALID_REQUEST,
        reason,
    ))
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(SESSION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|id| !id.is_empty())
}

/// A legacy `initialize`: it names its version in params, not in `_meta`.
fn is_handshake(message: &Value) -> bool {
    message.get("method").and_then(Value::as_str) == Some("initialize")
        && message.pointer("/params/protocolVersion").is_some()
        && message
            .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
            .is_none()
}

fn unknown_session(id: Option<&Value>) -> HttpResponse {
    let id = id.and_then(RequestId::from_value);
    rpc_failure(
        StatusCode::NOT_FOUND,
        id.as_ref(),
        INVALID_REQUEST,
        "no such session (it ended or expired): initialize again",
    )
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap_or("\u{0}").trim())
}

/// A modern request's headers must say what its body says; the refusal when they do not.
fn modern_header_refusal(headers: &HeaderMap, message: &Value) -> Option<HttpResponse> {
    let id = message.get("id").and_then(RequestId::from_value);
    let mismatch = |text: String| {
        Some(rpc_failure(
            StatusCode::BAD_REQUEST,
            id.as_ref(),
            HEADER_MISMATCH,
            text,
        ))
    };
    // Responses have nobody to go to; the dispatcher accepts and drops them.
    let method = message.get("method").and_then(Value::as_str)?;
    let meta_version = message
        .pointer("/params/_meta")
        .and_then(|meta| meta.get(jsonrpc::META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    let header_method = header_text(headers, "mcp-method");
    if header_method.is_none() && meta_version.is_none() {
        // Neither era's marks: most likely a legacy client that lost its session.
        return Some(rpc_failure(
            StatusCode::BAD_REQUEST,
            id.as_ref(),
            INVALID_REQUEST,
            "no Mcp-Session-Id: begin with initialize, or send a 2026-07-28 request (_meta and Mcp-Method)",
        ));
    }
    if header_method != Some(method) {
        return mismatch(format!(
            "the Mcp-Method header ({}) does not match the body's method `{method}`",
            header_method.unwrap_or("missing")
        ));
    }
    if let (Some(header), Some(meta)) = (header_text(headers, "mcp-protocol-version"), meta_version)
        && header != meta
    {
        return mismatch(format!(
            "the MCP-Protocol-Version header ({header}) does not match _meta's version ({meta})"
        ));
    }
    let named = match method {
        "tools/call" | "prompts/get" => message.pointer("/params/name"),
        "resources/read" => message.pointer("/params/uri"),
        _ => None,
    };
    if let Some(name) = named.and_then(Value::as_str) {
        let header_name = header_text(headers, "mcp-name");
        if header_name != Some(name) {
            return mismatch(format!(
                "the Mcp-Name header ({}) does not match the body's `{name}`",
                header_name.unwrap_or("missing")
            ));
        }
    }
    None
}

fn is_response_to(message: &Value, id: &RequestId) -> bool {
    message.get("method").is_none()
        && message.get("id").and_then(RequestId::from_value).as_ref() == Some(id)
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"))
}

async fn wait_for_response(replies: &mut mpsc::Receiver<Value>, id: &RequestId) -> Option<Value> {
    while let Some(message) = replies.recv().await {
        if is_response_to(&message, id) {
            return Some(message);
        }
    }
    None
}

/// A complete answer as JSON; modern protocol errors carry their HTTP status.
fn json_answer(connection: &Connection, response: &Value) -> HttpResponse {
    let status = match response.pointer("/error/code").and_then(Value::as_i64) {
        Some(code) if connection.era() == Some(Era::Modern) => modern_status(code),
        _ => StatusCode::OK,
    };
    HttpResponse::build(status).json(response)
}

fn modern_status(code: i64) -> StatusCode {
    match code {
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        INVALID_PARAMS
        | INVALID_REQUEST
        | PARSE_ERROR
        | UNSUPPORTED_PROTOCOL_VERSION
        | HEADER_MISMATCH
        | MISSING_CLIENT_CAPABILITY => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// A request still running when its answer starts: if the client leaves before the
/// response, the request is cancelled.
struct Pending {
    id: RequestId,
    connection: Arc<Connection>,
    answered: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.answered {
            self.connection.cancel(&self.id);
        }
    }
}

/// The request's messages as SSE, ending with its response.
fn event_stream(
    early: Vec<Value>,
    replies: mpsc::Receiver<Value>,
    pending: Pending,
) -> HttpResponse {
    let early = stream::iter(
        early
            .into_iter()
            .map(|message| Ok::<_, actix_web::Error>(sse_event(&message))),
    );
    let rest = stream::unfold(
        (replies, pending),
        |(mut replies, mut pending)| async move {
            if pending.answered {
                return None;
            }
            let message = replies.recv().await?;
            pending.answered = is_response_to(&message, &pending.id);
            Some((Ok(sse_event(&message)), (replies, pending)))
        },
    );
    sse_response(early.chain(rest))
}

fn sse_response(
    events: impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(events)
}

fn sse_event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

fn rpc_error_body(id: Option<&RequestId>, code: i64, message: impl Into<String>) -> Value {
    jsonrpc::error_response(id, &RpcError::new(code, message))
}

fn rpc_failure(
    status: StatusCode,
    id: Option<&RequestId>,
    code: i64,
    message: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status).json(rpc_error_body(id, code, message))
}
