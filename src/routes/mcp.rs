//! `GET /v1/mcp/servers`: the state of every supervised MCP server (`{"servers": [...]}`,
//! each with name, state, protocol version, tools, restarts and last error), asked of the
//! `McpSupervisor` actor. [`summary`] gives `/discover` its counts.

use actix_web::{HttpResponse, web};
use kubiya_actors::mcp::{McpServerStatus, ServerState, ServerStatuses};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

/// `GET /v1/mcp/servers`' answer.
#[derive(Serialize, ToSchema)]
pub struct McpServers {
    pub servers: Vec<McpServerStatus>,
}

#[utoipa::path(get, path = "/v1/mcp/servers", tag = "mcp",
    responses((status = 200, description = "The supervised MCP servers", body = McpServers), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn servers(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let servers = statuses(&state).await.ok_or_else(|| {
        ApiError::new(ErrorCode::Unavailable, "The MCP supervisor is not running.")
    })?;
    Ok(HttpResponse::Ok().json(McpServers { servers }))
}

/// `/discover`'s view of the MCP servers: counts, and each server by name with its state and
/// tool count (not its errors or tool names, which may say more than a public endpoint
/// should).
#[derive(Serialize, ToSchema)]
pub struct McpSummary {
    /// Servers configured.
    pub servers: usize,
    /// Servers running.
    pub running: usize,
    /// Tools the running servers offer.
    pub tools: usize,
    pub list: Vec<McpServerBrief>,
}

#[derive(Serialize, ToSchema)]
pub struct McpServerBrief {
    pub name: String,
    pub state: ServerState,
    pub tool_count: usize,
}

/// The summary for `/discover`; empty when the supervisor does not answer.
pub async fn summary(state: &AppState) -> McpSummary {
    let servers = statuses(state).await.unwrap_or_default();
    let running: Vec<&McpServerStatus> = servers
        .iter()
        .filter(|server| server.state == ServerState::Running)
        .collect();
    McpSummary {
        servers: servers.len(),
        running: running.len(),
        tools: running.iter().map(|server| server.tool_count).sum(),
        list: servers
            .iter()
            .map(|server| McpServerBrief {
                name: server.name.clone(),
                state: server.state,
                tool_count: server.tool_count,
            })
            .collect(),
    }
}

async fn statuses(state: &AppState) -> Option<Vec<McpServerStatus>> {
    match &state.mcp {
        Some(supervisor) => supervisor.send(ServerStatuses).await.ok(),
        None => Some(Vec::new()),
    }
}
