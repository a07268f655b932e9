//! Probes: `/health` in the original's shape, `/health/live` (the process answers) and
//! `/health/ready` (503 while draining or while the shared store is unreachable, so load
//! balancers stop sending work).

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "healthy",
        "service": "kubiya-mcp-agent",
        "initialized": true,
    }))
}

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive" }))
}

pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.is_draining() {
        return Err(ApiError::new(
            ErrorCode::Draining,
            "The server is draining and not ready for new work.",
        )
        .with_retry_after(1));
    }
    if let Err(why) = state.store.readiness() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("Not ready: {why}."),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "status": "ready" })))
}
