//! The one middleware every request passes: it assigns or echoes `X-Request-Id`, refuses new
//! work while the server drains (probes still answer), and at the end logs the request once
//! and records its metrics under the matched route pattern and a known method (never the raw
//! path or a made-up method, so ids in URLs and invented methods cannot explode the label set).
//! With traces on, the request runs in a server span that continues the caller's `traceparent`.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};

use tracing::Instrument;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::telemetry;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id, available to handlers through request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

/// A method as a metric label: the standard ones by name, any other folded into `other`, so
/// made-up methods cannot grow the label set.
fn metric_method(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Routes that keep answering while the server drains.
fn is_probe(path: &str) -> bool {
    path.starts_with("/health") || path == "/metrics"
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|value| value.len() <= 128 && !value.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a uuid is a valid header")
        });
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let span = request_span(&req);

    let draining = state.as_ref().is_some_and(|state| state.is_draining());
    let mut response = if draining && !is_probe(req.path()) {
        let refusal = ApiError::new(
            ErrorCode::Draining,
            "The server is shutting down and accepts no new requests; retry on another replica.",
        )
        .with_retry_after(1);
        req.into_response(refusal.error_response())
    } else {
        next.call(req)
            .instrument(span.clone())
            .await?
            .map_into_boxed_body()
    };

    response
        .headers_mut()
        .insert(REQUEST_ID, request_id.clone());
    let status = response.status();
    let request = response.request();
    let route = request.match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    let elapsed = started.elapsed();
    if let Some(state) = state {
        state.metrics.observe_request(
            route,
            metric_method(request.method()),
            status.as_str(),
            elapsed.as_secs_f64(),
        );
    }
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    tracing::info!(
        method = %request.method(),
        path = request.path(),
        status = status.as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = request_id.to_str().unwrap_or("-"),
        "request"
    );
    Ok(response)
}

/// The request's span (a server span continuing the caller's `traceparent`); it covers the
/// handler up to the response head, and the turn it starts is its child. Probes, polled
/// every few seconds, get none.
fn request_span(req: &ServiceRequest) -> tracing::Span {
    if is_probe(req.path())
        || !tracing::enabled!(target: kubiya_actors::TRACE, tracing::Level::INFO)
    {
        return tracing::Span::none();
    }
    let route = req.match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    let span = tracing::info_span!(
        target: kubiya_actors::TRACE,
        "http request",
        otel.name = %format_args!("{} {route}", req.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = route,
        url.path = req.path(),
        http.response.status_code = tracing::field::Empty,
    );
    telemetry::continue_trace(&span, req.headers());
    span
}
