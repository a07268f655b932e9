//! `GET /discover`: the superset of every shape the original's documents and code use, so
//! each of their readers finds its fields: the agent-server doc's `name`/`version`/
//! `capabilities`, the code's `provider`/`model`/`features`/`api_version`, and the discovery
//! doc's `server`/`models`/`health` objects. It adds an `mcp` summary of the supervised MCP
//! servers.

use std::time::UNIX_EPOCH;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::mcp::{McpSummary, summary as mcp_summary};
use crate::error::ErrorBody;
use crate::state::AppState;
use crate::wire::AGENT_MODEL;

const NAME: &str = "Kubiya MCP Agent Server";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET /discover`'s answer.
#[derive(Serialize, ToSchema)]
pub struct Discovery {
    pub name: &'static str,
    pub version: &'static str,
    pub capabilities: Capabilities,
    /// The LLM provider in use (`openai`, `anthropic`, ..., `offline`).
    pub provider: &'static str,
    /// The provider's model behind `kubiya-workflow-agent`.
    pub model: String,
    pub features: [&'static str; 4],
    pub api_version: &'static str,
    pub server: ServerInfo,
    pub models: Vec<DiscoveredModel>,
    pub health: HealthInfo,
    pub discovery_version: &'static str,
    pub mcp: McpSummary,
}

/// What the agent endpoint offers.
#[derive(Serialize, ToSchema)]
pub struct Capabilities {
    pub streaming: bool,
    pub models: [&'static str; 1],
    /// Stream formats of `/v1/chat/completions`.
    pub formats: [&'static str; 2],
}

#[derive(Serialize, ToSchema)]
pub struct ServerInfo {
    pub id: &'static str,
    pub name: &'static str,
    pub version: &'static str,
    pub provider: &'static str,
    pub endpoints: Endpoints,
    pub capabilities: ServerCapabilities,
}

/// Where each part of the API is.
#[derive(Serialize, ToSchema)]
pub struct Endpoints {
    pub health: &'static str,
    pub discover: &'static str,
    pub chat: &'static str,
    pub responses: &'static str,
    pub ui_chat: &'static str,
    pub models: &'static str,
    pub compose: &'static str,
    pub executions: &'static str,
    pub console: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ServerCapabilities {
    pub streaming: bool,
    pub formats: [&'static str; 2],
    pub modes: [&'static str; 2],
    pub execution: bool,
    pub approval: bool,
    pub resumable_chats: bool,
    pub refinement: bool,
    pub mcp_support: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DiscoveredModel {
    pub id: &'static str,
    pub name: &'static str,
    pub provider: &'static str,
    pub backend_model: String,
}

#[derive(Serialize, ToSchema)]
pub struct HealthInfo {
    /// `healthy`, or `draining` while shutting down.
    pub status: &'static str,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// Seconds since start.
    pub uptime: u64,
}

#[utoipa::path(get, path = "/discover", tag = "probes",
    responses((status = 200, description = "Capabilities, provider and model in use", body = Discovery), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn discover(state: web::Data<AppState>) -> HttpResponse {
    let formats = ["sse", "vercel"];
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let provider = state.providers.primary.as_str();
    HttpResponse::Ok().json(Discovery {
        name: NAME,
        version: VERSION,
        capabilities: Capabilities {
            streaming: true,
            models: [AGENT_MODEL],
            formats,
        },
        provider,
        model: state.providers.model.clone(),
        features: ["chat", "streaming", "tools", "workflows"],
        api_version: "v1",
        server: ServerInfo {
            id: "kubiya-mcp-agent",
            name: NAME,
            version: VERSION,
            provider,
            endpoints: Endpoints {
                health: "/health",
                discover: "/discover",
                chat: "/v1/chat/completions",
                responses: "/v1/responses",
                ui_chat: "/api/chat",
                models: "/v1/models",
                compose: "/compose",
                executions: "/v1/executions",
                console: super::console::PAGE,
            },
            capabilities: ServerCapabilities {
                streaming: true,
                formats,
                modes: ["plan", "act"],
                execution: true,
                approval: true,
                resumable_chats: true,
                refinement: true,
                mcp_support: true,
            },
        },
        models: vec![DiscoveredModel {
            id: AGENT_MODEL,
            name: AGENT_MODEL,
            provider,
            backend_model: state.providers.model.clone(),
        }],
        health: HealthInfo {
            status: if state.is_draining() {
                "draining"
            } else {
                "healthy"
            },
            timestamp: now,
            uptime: state.started.elapsed().as_secs(),
        },
        discovery_version: "1.0",
        mcp: mcp_summary(&state).await,
    })
}
