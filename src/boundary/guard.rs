//! The boundary middleware, run on every request before authentication: headers over
//! `server.max_header_bytes` get 431; a request from a browser page of a refused origin gets
//! 403 when it could change state (any method but GET, HEAD and OPTIONS) or opens a
//! WebSocket, so no page on the web can run a workflow through a visitor's browser; a CORS
//! preflight from an allowed origin is answered here (it carries no API key), and answers to
//! allowed origins carry the CORS headers that let their pages read them. Every refusal has
//! the OpenAI error shape.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, ResponseError, web};

use super::origin::{OriginPolicy, OriginVerdict};
use super::websocket::WsRequestRules;
use crate::error::{ApiError, ErrorCode};

/// What the guard enforces; registered as app data by start-up.
#[derive(Debug, Clone)]
pub struct BoundaryRules {
    pub origins: OriginPolicy,
    pub max_header_bytes: usize,
    /// How a WebSocket client's request is read.
    pub websocket: WsRequestRules,
}

/// Methods a browser page may use on the API once CORS allows its origin.
const ALLOWED_METHODS: &str = "GET, POST, DELETE, OPTIONS";
/// Request headers the API reads.
const ALLOWED_HEADERS: &str = "authorization, content-type, x-session-id, x-user-id, \
                               x-request-id, x-streaming-format, last-event-id";
/// Response headers a page may read.
const EXPOSED_HEADERS: &str = "x-session-id, x-request-id, location, retry-after, \
                               x-vercel-ai-data-stream";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(rules) = req.app_data::<web::Data<BoundaryRules>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let header_bytes = headers_size(req.headers());
    if header_bytes > rules.max_header_bytes {
        let refusal = ApiError::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "The request headers take {header_bytes} bytes, more than the limit of {} bytes.",
                rules.max_header_bytes
            ),
        );
        return Ok(req.into_response(refusal.error_response()));
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|value| value.to_str().unwrap_or("\u{0}invalid").to_owned());
    let host = req.connection_info().host().to_owned();
    let verdict = rules.origins.judge(origin.as_deref(), Some(&host));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight && origin.is_some() {
        let response = if verdict.is_allowed() {
            preflight_answer(origin.as_deref().unwrap_or_default())
        } else {
            refused(origin.as_deref()).error_response()
        };
        return Ok(req.into_response(response));
    }
    if !verdict.is_allowed() && (changes_state(req.method()) || is_websocket(req.headers())) {
        return Ok(req.into_response(refused(origin.as_deref()).error_response()));
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    if verdict == OriginVerdict::Cors
        && let Some(origin) = origin
            .as_deref()
            .and_then(|o| HeaderValue::from_str(o).ok())
    {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    Ok(response)
}

fn preflight_answer(origin: &str) -> HttpResponse {
    let mut response = HttpResponse::build(StatusCode::NO_CONTENT);
    if let Ok(origin) = HeaderValue::from_str(origin) {
        response.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin));
    }
    response
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE))
        .insert_header((header::VARY, "Origin"))
        .finish()
}

fn refused(origin: Option<&str>) -> ApiError {
    let origin = origin.unwrap_or("");
    ApiError::new(
        ErrorCode::OriginNotAllowed,
        format!(
            "Requests from web pages of origin `{}` are not allowed; add it to \
             server.cors.allowed_origins to let its pages call this API.",
            origin.escape_debug()
        ),
    )
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

/// Names and values, as they took space on the wire (without separators).
fn headers_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}
