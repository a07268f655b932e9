//! Workflow executions over HTTP: start one (`POST /v1/executions`, 202), read its state
//! (`GET /v1/executions/{id}`), follow its events as a resumable SSE stream
//! (`GET /v1/executions/{id}/events`) and cancel it (`DELETE /v1/executions/{id}`, 202).
//! Handlers only translate: the `ExecutionWatcher` actor owns executions, and the
//! per-request [`ExecutionEventStream`] actor writes the SSE body.

use actix::{Addr, MailboxError};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use kubiya_actors::store::ExecutionId;
use kubiya_actors::workflow::{
    CancelExecution, ExecutionError, ExecutionSnapshot, ExecutionStatus, ExecutionWatcher,
    GetExecution, StartExecution, Subscribe, Subscription,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::openapi::SseEvent;
use super::workflows::workflow_of;
use crate::error::{ApiError, ErrorBody};
use crate::execution_stream::ExecutionEventStream;
use crate::extract::ValidJson;
use crate::identity::Identity;
use crate::state::AppState;
use crate::streaming::{self, ChunkBody, SSE_HEARTBEAT};

pub type Watcher = web::Data<Addr<ExecutionWatcher>>;

#[derive(Debug, Deserialize, ToSchema)]
pub struct StartRequest {
    /// An object, or a JSON/YAML document as a string.
    workflow: Value,
    #[serde(default)]
    #[schema(value_type = Object)]
    params: Map<String, Value>,
    /// `local` or a Kubiya runner; overrides the workflow's `runner`.
    #[serde(default)]
    runner: Option<String>,
}

/// `POST /v1/executions`' answer: where to follow the execution.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionStarted {
    #[schema(value_type = String)]
    execution_id: ExecutionId,
    status: ExecutionStatus,
    /// The workflow's name.
    workflow: String,
    runner: String,
    url: String,
    events_url: String,
}

/// `DELETE /v1/executions/{id}`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelAnswer {
    #[schema(value_type = String)]
    execution_id: ExecutionId,
    /// The status when the cancel was asked for.
    status: ExecutionStatus,
    /// False when the execution had already finished.
    cancel_requested: bool,
}

#[utoipa::path(post, path = "/v1/executions", tag = "executions",
    request_body(content = StartRequest, content_type = "application/json"),
    responses((status = 202, description = "Accepted; follow it at `events_url`", body = ExecutionStarted), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn start(
    identity: Identity,
    state: web::Data<AppState>,
    watcher: Watcher,
    ValidJson(request): ValidJson<StartRequest>,
) -> Result<HttpResponse, ApiError> {
    let workflow = workflow_of(request.workflow)
        .await?
        .map_err(ExecutionError::Invalid)?;
    // Held by the watcher until the run ends; a refusal is 429 with Retry-After.
    let permit = state.tenants.open_execution(&identity.tenant).await?;
    let summary = watcher
        .send(StartExecution {
            tenant: identity.tenant.id.clone(),
            workflow,
            params: request.params,
            runner: request.runner,
            trace: tracing::Span::current(),
            permit: Some(permit),
            library: Vec::new(),
        })
        .await
        .map_err(watcher_gone)??;
    let url = format!("/v1/executions/{}", summary.execution_id);
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, url.clone()))
        .json(ExecutionStarted {
            events_url: format!("{url}/events"),
            execution_id: summary.execution_id,
            status: summary.status,
            workflow: summary.workflow,
            runner: summary.runner,
            url,
        }))
}

#[utoipa::path(get, path = "/v1/executions/{id}", tag = "executions",
    params(("id" = String, Path, description = "The execution id")),
    responses((status = 200, description = "The execution's state and each step's", body = ExecutionSnapshot), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn retrieve(
    identity: Identity,
    watcher: Watcher,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let snapshot = watcher
        .send(GetExecution {
            tenant: identity.tenant.id.clone(),
            execution_id: ExecutionError::known_id(&id)?,
        })
        .await
        .map_err(watcher_gone)??;
    Ok(HttpResponse::Ok().json(snapshot))
}

#[utoipa::path(delete, path = "/v1/executions/{id}", tag = "executions",
    params(("id" = String, Path, description = "The execution id")),
    responses((status = 202, description = "Cancel requested (or the execution had finished)", body = CancelAnswer), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn cancel(
    identity: Identity,
    watcher: Watcher,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let execution_id = ExecutionError::known_id(&id)?;
    let status = watcher
        .send(CancelExecution {
            tenant: identity.tenant.id.clone(),
            execution_id: execution_id.clone(),
        })
        .await
        .map_err(watcher_gone)??;
    Ok(HttpResponse::Accepted().json(CancelAnswer {
        execution_id,
        status,
        cancel_requested: !status.is_finished(),
    }))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    after: Option<u64>,
}

#[utoipa::path(get, path = "/v1/executions/{id}/events", tag = "executions",
    params(("id" = String, Path, description = "The execution id"),
        ("after" = Option<u64>, Query, description = "Resume after this event number"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event number")),
    responses((status = 200, description = "The events as SSE, ending with `workflow_complete`", content_type = "text/event-stream", body = SseEvent), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn events(
    req: HttpRequest,
    identity: Identity,
    state: web::Data<AppState>,
    watcher: Watcher,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let after_seq = resume_point(&req)?;
    // Counted like a turn's stream: against the tenant's limit, and by the drain.
    let guard = state.open_stream(&identity.tenant).await?;
    let (stream, chunks) = ExecutionEventStream::open();
    let subscription = watcher
        .send(Subscribe {
            tenant: identity.tenant.id.clone(),
            execution_id: ExecutionError::known_id(&id)?,
            after_seq,
            subscriber: stream.recipient(),
        })
        .await
        .map_err(watcher_gone)??;
    let mut response = streaming::response("text/event-stream");
    Ok(match subscription {
        Subscription::Following => response
            .streaming(ChunkBody::new(chunks, state.heartbeat(SSE_HEARTBEAT)).counted(guard)),
        // Nothing follows the client's last event: dropping the body stops the stream actor.
        Subscription::Finished => response.finish(),
    })
}

/// Where a reconnecting client resumes: after `Last-Event-ID`, else after `?after=`, else
/// from the first event.
fn resume_point(req: &HttpRequest) -> Result<u64, ApiError> {
    if let Some(value) = req.headers().get("last-event-id") {
        return value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "Last-Event-ID",
                    "Last-Event-ID must be the sequence number of the last event received.",
                )
            });
    }
    let query = web::Query::<EventsQuery>::from_query(req.query_string()).map_err(|_| {
        ApiError::invalid_field(
            "after",
            "`after` must be the sequence number of the last event received.",
        )
    })?;
    Ok(query.after.unwrap_or(0))
}

pub(super) fn watcher_gone(error: MailboxError) -> ApiError {
    ApiError::internal(format!("the execution watcher did not answer: {error}"))
}
