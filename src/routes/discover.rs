//! `GET /discover`: the superset of every shape the original's documents and code use, so
//! each of their readers finds its fields: the agent-server doc's `name`/`version`/
//! `capabilities`, the code's `provider`/`model`/`features`/`api_version`, and the discovery
//! doc's `server`/`models`/`health` objects. It adds an `mcp` summary of the supervised MCP
//! servers.

use std::time::UNIX_EPOCH;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::mcp::summary as mcp_summary;
use crate::error::ErrorBody;
use crate::state::AppState;
use crate::wire::AGENT_MODEL;

const NAME: &str = "Kubiya MCP Agent Server";
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[utoipa::path(get, path = "/discover", tag = "probes",
    responses((status = 200, description = "Capabilities, provider and model in use", body = Object), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn discover(state: web::Data<AppState>) -> HttpResponse {
    let formats = ["sse", "vercel"];
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let mcp = mcp_summary(&state).await;
    HttpResponse::Ok().json(json!({
        "name": NAME,
        "version": VERSION,
        "capabilities": {
            "streaming": true,
            "models": [AGENT_MODEL],
            "formats": formats,
        },
        "provider": state.providers.primary.as_str(),
        "model": state.providers.model,
        "features": ["chat", "streaming", "tools", "workflows"],
        "api_version": "v1",
        "server": {
            "id": "kubiya-mcp-agent",
            "name": NAME,
            "version": VERSION,
            "provider": state.providers.primary.as_str(),
            "endpoints": {
                "health": "/health",
                "discover": "/discover",
                "chat": "/v1/chat/completions",
                "responses": "/v1/responses",
                "ui_chat": "/api/chat",
                "models": "/v1/models",
                "compose": "/compose",
                "executions": "/v1/executions",
                "console": super::console::PAGE,
            },
            "capabilities": {
                "streaming": true,
                "formats": formats,
                "modes": ["plan", "act"],
                "execution": true,
                "approval": true,
                "resumable_chats": true,
                "refinement": true,
                "mcp_support": true,
            },
        },
        "models": [{ "id": AGENT_MODEL, "name": AGENT_MODEL, "provider": state.providers.primary.as_str(), "backend_model": state.providers.model }],
        "health": {
            "status": if state.is_draining() { "draining" } else { "healthy" },
            "timestamp": now,
            "uptime": state.started.elapsed().as_secs(),
        },
        "discovery_version": "1.0",
        "mcp": mcp,
    }))
}
