//! The HTTP routes. Handlers are thin: extract, validate into domain types, message an actor,
//! map errors. [`configure`] mounts them all; [`not_found`] and [`method_not_allowed`] give
//! unknown routes and wrong methods OpenAI-shaped bodies.

mod chat;
mod compose;
pub mod console;
mod discover;
mod executions;
mod health;
mod mcp;
pub mod mcp_endpoint;
mod metrics;
pub mod models;
pub mod openapi;
mod responses;
mod runners;
mod sessions;
mod ui_chat;
mod workflows;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError, web};

use crate::error::{ApiError, ErrorCode};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(console::PAGE, &["GET"]).get(console::page))
        .service(resource(console::SCRIPT, &["GET"]).get(console::script))
        .service(resource(console::STYLE, &["GET"]).get(console::style))
        .service(resource("/health", &["GET"]).get(health::health))
        .service(resource("/health/live", &["GET"]).get(health::live))
        .service(resource("/health/ready", &["GET"]).get(health::ready))
        .service(resource("/discover", &["GET"]).get(discover::discover))
        .service(resource("/metrics", &["GET"]).get(metrics::metrics))
        .service(resource("/v1/chat/completions", &["POST"]).post(chat::chat_completions))
        .service(resource("/v1/responses", &["POST"]).post(responses::create))
        .service(resource("/v1/responses/{id}", &["GET"]).get(responses::retrieve))
        .service(resource("/api/chat", &["POST"]).post(ui_chat::chat))
        .service(resource("/api/chat/{id}/stream", &["GET"]).get(ui_chat::resume))
        .service(resource("/compose", &["POST"]).post(compose::compose))
        .service(resource("/api/v1/compose", &["POST"]).post(compose::compose))
        .service(resource("/api/v2/compose", &["POST"]).post(compose::compose))
        .service(resource("/ws/compose", &["GET"]).get(compose::compose_ws))
        .service(resource("/v1/mcp/servers", &["GET"]).get(mcp::servers))
        .service(mcp_route())
        .service(resource("/v1/models", &["GET"]).get(models::list))
        .service(resource("/v1/models/{id:.+}", &["GET"]).get(models::retrieve))
        .service(resource("/v1/workflows/validate", &["POST"]).post(workflows::validate))
        .service(resource("/v1/runners", &["GET"]).get(runners::list))
        .service(resource("/v1/executions", &["POST"]).post(executions::start))
        .service(
            resource("/v1/executions/{id}", &["GET", "DELETE"])
                .get(executions::retrieve)
                .delete(executions::cancel),
        )
        .service(resource("/v1/executions/{id}/events", &["GET"]).get(executions::events))
        .service(resource("/v1/sessions/{id}", &["GET"]).get(sessions::retrieve))
        .service(resource("/openapi.json", &["GET"]).get(openapi::document));
}

/// `/mcp`, our MCP server over streamable HTTP (needs [`crate::mcp_http::McpEndpoint`] as
/// app data).
pub fn mcp_route() -> Resource {
    resource("/mcp", &["POST", "GET", "DELETE"])
        .post(mcp_endpoint::post)
        .get(mcp_endpoint::get)
        .delete(mcp_endpoint::delete)
}

/// A resource whose wrong methods get 405 with an `Allow` header and an OpenAI-shaped body.
pub fn resource(path: &str, allowed: &'static [&'static str]) -> Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        method_not_allowed(&req, allowed)
    }))
}

fn method_not_allowed(req: &HttpRequest, allowed: &[&str]) -> HttpResponse {
    let error = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "Method {} is not allowed for {}; use {}.",
            req.method(),
            req.path(),
            allowed.join(" or ")
        ),
    );
    let mut response = error.error_response();
    if let Ok(value) = header::HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        ErrorCode::NotFound,
        format!(
            "Invalid URL ({} {}): no such route.",
            req.method(),
            req.path()
        ),
    )
    .error_response()
}
