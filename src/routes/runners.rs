//! `GET /v1/runners`: the runners this server has and their state (`{"runners": [...]}`),
//! the answer the `list_runners` tool gives the chat agent and MCP hosts, asked of the
//! `ExecutionWatcher`.

use actix_web::HttpResponse;
use kubiya_actors::workflow::{ListRunners, RunnerList};

use super::executions::{Watcher, watcher_gone};
use crate::error::{ApiError, ErrorBody};

#[utoipa::path(get, path = "/v1/runners", tag = "executions",
    responses((status = 200, description = "The runners and their state", body = RunnerList), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn list(watcher: Watcher) -> Result<HttpResponse, ApiError> {
    let runners = watcher.send(ListRunners).await.map_err(watcher_gone)?;
    Ok(HttpResponse::Ok().json(runners))
}
