//! `GET /v1/sessions/{id}`: a session's transcript (tool calls and results the client never
//! saw included), the workflows the agent produced, the executions it started and the run
//! waiting for the user's approval, if any. Sessions are keyed by tenant, user and id, so the
//! caller's tenant only ever finds its own; another tenant's id is 404, exactly like an id
//! that never existed. The user is `?user_id=` or `X-User-Id`, as for chat turns.

use actix_web::{HttpRequest, HttpResponse, web};
use kubiya_actors::provider::{ChatMessage, Transcript};
use kubiya_actors::store::{ExecutionId, SessionId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::boundary::ids;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::identity::Identity;
use crate::state::AppState;

#[derive(Deserialize)]
struct SessionQuery {
    user_id: Option<String>,
}

/// A session as `GET /v1/sessions/{id}` shows it.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    #[schema(value_type = String)]
    pub id: SessionId,
    /// Always `session`.
    pub object: &'static str,
    pub user: String,
    /// The whole conversation, tool calls and results the client never saw included.
    #[schema(value_type = Vec<ChatMessage>)]
    pub transcript: Transcript,
    /// The workflows the agent produced, newest last (each a workflow document).
    #[schema(value_type = Vec<Object>)]
    pub workflows: Vec<Value>,
    /// The ids of the executions started in this session.
    #[schema(value_type = Vec<String>)]
    pub executions: Vec<ExecutionId>,
    /// The run waiting for the user's answer, so a client that reloads can ask again.
    pub pending_approval: Option<PendingApprovalView>,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    pub updated_at: u64,
}

/// A workflow run the agent proposed and the user has not answered yet.
#[derive(Serialize, ToSchema)]
pub struct PendingApprovalView {
    pub approval_id: String,
    pub tool_call_id: String,
    pub tool_name: String,
}

#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "agent",
    params(("id" = String, Path, description = "The session id"),
        ("user_id" = Option<String>, Query, description = "The user (or header X-User-Id)")),
    responses((status = 200, description = "The session: transcript, workflows, executions, the run waiting for approval", body = SessionView), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn retrieve(
    req: HttpRequest,
    identity: Identity,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<SessionQuery>::from_query(req.query_string())
        .map_err(|err| ApiError::invalid_field("user_id", err.to_string()))?;
    let user = identity.user(query.into_inner().user_id, "user_id")?;
    let id = ids::session_id(Some(id.into_inner()), "id")?
        .ok_or_else(|| ApiError::invalid_field("id", "The session id is empty."))?;
    let key = identity.session_key(user, id);
    let record = state.store.load(&key).await?;
    let Some(record) = record else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("No session with id `{}` for this user.", key.id),
        )
        .with_param("id"));
    };
    Ok(HttpResponse::Ok().json(SessionView {
        id: record.key.id,
        object: "session",
        user: record.key.user,
        transcript: record.transcript,
        workflows: record.workflows,
        executions: record.executions,
        pending_approval: record.pending_approval.map(|pending| PendingApprovalView {
            approval_id: pending.approval_id,
            tool_call_id: pending.call.id,
            tool_name: pending.call.name,
        }),
        created_at: record.created_at_ms / 1000,
        updated_at: record.updated_at_ms / 1000,
    }))
}
