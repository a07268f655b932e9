//! `POST /v1/responses` and `GET /v1/responses/{id}`: the agent behind the Responses API
//! (the Open Responses specification), which the AI SDK's `openai('…')` (v5 and later) and
//! the `openai` SDKs' `responses.create` speak. `input` is a string or items (messages, and
//! `item_reference`s resolved from stored output items); `previous_response_id` continues
//! that response's session, whose transcript holds its input and output; `store` (default
//! true) keeps the response for `GET` and for continuing. The response is written to the
//! store before it is acknowledged (`response.completed`, or the whole answer), so a client
//! may continue at once, on any replica.

use actix_web::{HttpResponse, web};
use bytes::{Bytes, BytesMut};
use kubiya_actors::provider::ChatMessage;
use kubiya_actors::session::{SessionKey, TurnMode, TurnRequest};
use kubiya_actors::store::SessionId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::chat::Content;
use super::models::model_not_found;
use super::openapi::SseEvent;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::ValidJson;
use crate::identity::Identity;
use crate::state::AppState;
use crate::streaming::{self, ChunkBody, SSE_HEARTBEAT};
use crate::tenant::Tenant;
use crate::turn;
use crate::wire::AGENT_MODEL;
use crate::wire::responses::{Outcome, ResponseBuilder, ResponseMeta, ResponseObject, now_secs};

const RESPONSE: &str = "response";
const ITEM: &str = "item";
/// Events a streamed response may hold ahead of a slow client.
const STREAM_BUFFER: usize = 64;

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateResponse {
    model: String,
    #[serde(default)]
    input: Option<Input>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    store: Option<bool>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    user: Option<String>,
    /// Plan → approve → act: the agent asks before running a workflow.
    #[serde(default)]
    require_approval: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
enum Input {
    Text(String),
    Items(Vec<InputItem>),
}

/// Of an input item, what the agent reads: messages' text and item references. Other
/// items (the client's own function calls and their outputs, reasoning) are accepted and
/// not read: the agent's tools are its own.
#[derive(Debug, Deserialize, ToSchema)]
struct InputItem {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    id: Option<String>,
}

/// What is kept of a response: the object `GET` returns and the session it continues.
#[derive(Serialize, Deserialize)]
struct StoredResponse {
    user: String,
    session_id: SessionId,
    response: ResponseObject,
}

/// What is kept of an output item, for `item_reference`.
#[derive(Serialize, Deserialize)]
struct StoredItem {
    text: String,
}

async fn load<T: serde::de::DeserializeOwned>(
    state: &AppState,
    tenant: &Tenant,
    kind: &'static str,
    id: &str,
) -> Result<Option<T>, ApiError> {
    let stored = state.kept.get(tenant.id.as_ref(), kind, id).await?;
    Ok(stored.and_then(|json| serde_json::from_str(&json).ok()))
}

/// The conversation the input items make, item references resolved.
async fn conversation(
    state: &AppState,
    tenant: &Tenant,
    input: Option<Input>,
) -> Result<(Vec<ChatMessage>, Vec<String>), ApiError> {
    let items = match input {
        None => Vec::new(),
        Some(Input::Text(text)) => return Ok((vec![ChatMessage::user(text)], Vec::new())),
        Some(Input::Items(items)) => items,
    };
    let mut messages = Vec::with_capacity(items.len());
    let mut instructions = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match (item.kind.as_deref(), item.role.as_deref()) {
            (Some("item_reference"), _) => {
                let id = item.id.unwrap_or_default();
                let stored: StoredItem = load(state, tenant, ITEM, &id).await?.ok_or_else(|| {
                    ApiError::invalid_field(
                        format!("input[{index}].id"),
                        format!("Item with id `{id}` not found (responses created with `store: false` are not kept)."),
                    )
                })?;
                messages.push(ChatMessage::assistant_text(stored.text));
            }
            (None | Some("message"), Some(role)) => {
                let text = item.content.map(Content::into_text).unwrap_or_default();
                match role {
                    "user" => messages.push(ChatMessage::user(text)),
                    "assistant" => messages.push(ChatMessage::assistant_text(text)),
                    "system" | "developer" => instructions.push(text),
                    other => {
                        return Err(ApiError::invalid_field(
                            format!("input[{index}].role"),
                            format!(
                                "Unknown role `{other}`: use user, assistant, system or developer."
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok((messages, instructions))
}

struct ValidResponse {
    turn: TurnRequest,
    meta: ResponseMeta,
    stream: bool,
}

async fn validate(
    state: &AppState,
    identity: &Identity,
    body: CreateResponse,
) -> Result<ValidResponse, ApiError> {
    if body.model != AGENT_MODEL {
        return Err(model_not_found(&body.model));
    }
    let tenant = &identity.tenant;
    let (messages, mut instructions) = conversation(state, tenant, body.input).await?;
    if !messages
        .iter()
        .any(|message| matches!(message, ChatMessage::User { .. }))
    {
        return Err(ApiError::invalid_field(
            "input",
            "`input` must contain a user message.",
        ));
    }
    let user = identity.user(body.user, "user")?;
    let (user, session_id, continuing) = match &body.previous_response_id {
        Some(previous) => {
            let stored: StoredResponse = load(state, tenant, RESPONSE, previous)
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::NotFound,
                        format!("Previous response with id `{previous}` not found."),
                    )
                    .with_param("previous_response_id")
                })?;
            (stored.user, stored.session_id, true)
        }
        None => (user, SessionId::generate(), false),
    };
    if let Some(text) = body.instructions.clone() {
        instructions.insert(0, text);
    }
    let meta = ResponseMeta {
        id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
        created_at: now_secs(),
        instructions: body.instructions,
        previous_response_id: body.previous_response_id,
        store: body.store.unwrap_or(true),
        session_id: session_id.to_string(),
    };
    Ok(ValidResponse {
        turn: TurnRequest {
            key: identity.session_key(user, session_id),
            continuing,
            messages,
            instructions: (!instructions.is_empty()).then(|| instructions.join("\n\n")),
            mode: TurnMode::Chat,
            require_approval: body
                .require_approval
                .unwrap_or(state.agent.require_approval),
            approval: None,
            regenerate: false,
            mcp_access: tenant.mcp_access.clone(),
            limits: tenant.limits,
        },
        meta,
        stream: body.stream.unwrap_or(false),
    })
}

/// Keeps the response and its message item (when `store` is on) before it is acknowledged.
async fn keep(
    state: &AppState,
    key: &SessionKey,
    builder: &ResponseBuilder,
    response: &ResponseObject,
) -> Result<(), ApiError> {
    if !response.store {
        return Ok(());
    }
    let unavailable = |err: kubiya_actors::store::StoreError| {
        let error = ApiError::from(err);
        let message = format!("the response could not be stored: {}", error.message);
        ApiError { message, ..error }
    };
    let stored = StoredResponse {
        user: key.user.clone(),
        session_id: key.id.clone(),
        response: response.clone(),
    };
    let item = StoredItem {
        text: builder.text().to_owned(),
    };
    // The records have string keys only: serializing cannot fail.
    let item = serde_json::to_string(&item).unwrap_or_default();
    let stored = serde_json::to_string(&stored).unwrap_or_default();
    state
        .kept
        .put(&key.tenant, ITEM, builder.message_id(), item)
        .await
        .map_err(unavailable)?;
    state
        .kept
        .put(&key.tenant, RESPONSE, &response.id, stored)
        .await
        .map_err(unavailable)
}

#[utoipa::path(post, path = "/v1/responses", tag = "agent",
    request_body(content = CreateResponse, content_type = "application/json"),
    responses((status = 200, description = "A `response` object, or its stream of events",
        content((ResponseObject = "application/json"), (SseEvent = "text/event-stream"))),
        (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    identity: Identity,
    ValidJson(body): ValidJson<CreateResponse>,
) -> Result<HttpResponse, ApiError> {
    let ValidResponse { turn, meta, stream } = validate(&state, &identity, body).await?;
    let key = turn.key.clone();
    let started = turn::start(&state, &identity.tenant, turn).await?;
    let session = started.session_header();
    let mut builder = ResponseBuilder::new(meta);
    if !stream {
        let mut outcome = None;
        started
            .collect(|event| match Outcome::of(&event) {
                Some(end) => outcome = Some(end),
                None => builder.push(&event, None),
            })
            .await?;
        let response = builder.resource(outcome.as_ref());
        keep(&state, &key, &builder, &response).await?;
        return Ok(HttpResponse::Ok().insert_header(session).json(response));
    }
    let (chunks, body) = tokio::sync::mpsc::channel::<Bytes>(STREAM_BUFFER);
    let (first, mut events, guard) = started.into_parts();
    let heartbeat = state.heartbeat(SSE_HEARTBEAT);
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        let mut out = BytesMut::with_capacity(1024);
        builder.start(&mut out);
        let mut next = Some(first);
        while let Some(event) = next {
            match Outcome::of(&event) {
                Some(mut outcome) => {
                    let response = builder.resource(Some(&outcome));
                    if let Err(error) = keep(&state, &key, &builder, &response).await {
                        outcome = Outcome::Failed(error);
                    }
                    guard.close().await;
                    builder.end(&outcome, &mut out);
                    let _ = chunks.send(out.split().freeze()).await;
                    return;
                }
                None => builder.push(&event, Some(&mut out)),
            }
            // The client left: dropping the events stops the turn.
            if !out.is_empty() && chunks.send(out.split().freeze()).await.is_err() {
                return;
            }
            next = events.recv().await;
        }
    });
    let chunks = futures_util::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|chunk| (chunk, body))
    });
    let body = ChunkBody::new(Box::pin(chunks), heartbeat);
    Ok(streaming::response("text/event-stream; charset=utf-8")
        .insert_header(session)
        .streaming(body))
}

#[utoipa::path(get, path = "/v1/responses/{id}", tag = "agent",
    params(("id" = String, Path, description = "The response id")),
    responses((status = 200, description = "A stored response", body = ResponseObject), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn retrieve(
    state: web::Data<AppState>,
    identity: Identity,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let stored: StoredResponse = load(&state, &identity.tenant, RESPONSE, &id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("Response with id `{id}` not found."),
            )
        })?;
    Ok(HttpResponse::Ok().json(stored.response))
}
