//! `GET /v1/mcp/servers`: the state of every supervised MCP server (`{"servers": [...]}`,
//! each with name, state, protocol version, tools, restarts and last error), asked of the
//! `McpSupervisor` actor. [`summary`] gives `/discover` its counts.

use actix_web::{HttpResponse, web};
use kubiya_actors::mcp::{McpServerStatus, ServerState, ServerStatuses};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/mcp/servers", tag = "mcp",
    responses((status = 200, description = "The supervised MCP servers", body = Object), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn servers(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let servers = statuses(&state).await.ok_or_else(|| {
        ApiError::new(ErrorCode::Unavailable, "The MCP supervisor is not running.")
    })?;
    Ok(HttpResponse::Ok().json(json!({ "servers": servers })))
}

/// `{servers, running, tools}` for `/discover`; zeros when the supervisor does not answer.
pub async fn summary(state: &AppState) -> Value {
    let servers = statuses(state).await.unwrap_or_default();
    let running: Vec<&McpServerStatus> = servers
        .iter()
        .filter(|server| server.state == ServerState::Running)
        .collect();
    json!({
        "servers": servers.len(),
        "running": running.len(),
        "tools": running.iter().map(|server| server.tool_count).sum::<usize>(),
    })
}

async fn statuses(state: &AppState) -> Option<Vec<McpServerStatus>> {
    match &state.mcp {
        Some(supervisor) => supervisor.send(ServerStatuses).await.ok(),
        None => Some(Vec::new()),
    }
}
