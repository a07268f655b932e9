//! Probes: `/health` in the original's shape, `/health/live` (the process answers) and
//! `/health/ready` (503 while draining or while the shared store is unreachable, so load
//! balancers stop sending work).

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

/// `/health` in the original's shape.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "healthy")]
    status: &'static str,
    #[schema(example = "kubiya-mcp-agent")]
    service: &'static str,
    initialized: bool,
}

/// A probe's answer: `alive` or `ready`.
#[derive(Serialize, ToSchema)]
pub struct ProbeStatus {
    status: &'static str,
}

#[utoipa::path(get, path = "/health", tag = "probes",
    responses((status = 200, description = "The server is up", body = Health), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "healthy",
        service: "kubiya-mcp-agent",
        initialized: true,
    })
}

#[utoipa::path(get, path = "/health/live", tag = "probes",
    responses((status = 200, description = "The process answers", body = ProbeStatus), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(ProbeStatus { status: "alive" })
}

#[utoipa::path(get, path = "/health/ready", tag = "probes",
    responses((status = 200, description = "Ready for work", body = ProbeStatus),
        (status = 503, description = "Draining, or the shared store is unreachable", body = ErrorBody),
        (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
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
    Ok(HttpResponse::Ok().json(ProbeStatus { status: "ready" }))
}
