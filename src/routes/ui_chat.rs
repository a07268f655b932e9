//! `POST /api/chat` and `GET /api/chat/{id}/stream`: the AI SDK's chat protocol (v5 and
//! later), so `useChat` with its `DefaultChatTransport` talks to the agent with no code of
//! the user's own. The request is the SDK's — `id` (the chat, which is our session),
//! `messages` as `UIMessage`s with `parts`, `trigger`, `messageId` — and the answer is the
//! UI message stream ([`UiMessageEncoder`]). The turn runs detached from the connection
//! ([`resumable`](crate::resumable)), so `GET /api/chat/{id}/stream` resumes it from any
//! replica (204 when nothing is running). An approval answer comes back as the assistant
//! message's tool part in state `approval-responded`.

use actix_web::http::header::HeaderValue;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream::BoxStream;
use kubiya_actors::provider::ChatMessage;
use kubiya_actors::session::approval::ApprovalAnswer;
use kubiya_actors::session::{SessionKey, TurnMode, TurnRequest};
use serde::Deserialize;
use utoipa::ToSchema;

use super::openapi::SseEvent;
use crate::boundary::ids;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ValidJson;
use crate::identity::{Identity, SESSION_ID};
use crate::resumable;
use crate::state::AppState;
use crate::streaming::{self, ChunkBody, SSE_HEARTBEAT};
use crate::turn;
use crate::wire::ui_message::UiMessageEncoder;

#[derive(Debug, Deserialize, ToSchema)]
pub struct UiChatRequest {
    id: String,
    messages: Vec<UiMessage>,
    /// `submit-message`, or `regenerate-message`: the last answer is replaced.
    #[serde(default)]
    trigger: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    /// Plan → approve → act: the agent asks before running a workflow.
    #[serde(default)]
    require_approval: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct UiMessage {
    #[serde(default)]
    id: Option<String>,
    role: UiRole,
    #[serde(default)]
    parts: Vec<UiPart>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
enum UiRole {
    System,
    User,
    Assistant,
}

/// Of a part, what the agent reads: text, and a tool part's approval answer.
#[derive(Debug, Deserialize, ToSchema)]
struct UiPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    approval: Option<UiApproval>,
    #[serde(default, rename = "toolCallId")]
    tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct UiApproval {
    id: String,
    #[serde(default)]
    approved: Option<bool>,
    #[serde(default)]
    reason: Option<String>,
}

impl UiMessage {
    fn text(&self) -> String {
        self.parts
            .iter()
            .filter(|part| part.kind == "text")
            .filter_map(|part| part.text.as_deref())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The answer to an approval request and the tool call it is about, when this
    /// (assistant) message carries one.
    fn approval_answer(&self) -> Option<(ApprovalAnswer, String)> {
        self.parts.iter().find_map(|part| {
            let approval = part.approval.as_ref()?;
            let answer = ApprovalAnswer {
                approval_id: approval.id.clone(),
                approved: approval.approved.unwrap_or(false),
                reason: approval.reason.clone(),
            };
            (part.state.as_deref() == Some("approval-responded"))
                .then(|| (answer, part.tool_call_id.clone().unwrap_or_default()))
        })
    }
}

fn chat_key(identity: &Identity, user: Option<String>, id: String) -> Result<SessionKey, ApiError> {
    let user = identity.user(user, "user_id")?;
    let id = ids::session_id(Some(id), "id")?
        .ok_or_else(|| ApiError::invalid_field("id", "`id` (the chat) must not be empty."))?;
    Ok(identity.session_key(user, id))
}

/// The assistant message an approval answer continues, and the tool call it answers.
struct Continued {
    message_id: Option<String>,
    call_id: Option<String>,
}

fn validate(
    identity: &Identity,
    body: UiChatRequest,
    default_approval: bool,
) -> Result<(TurnRequest, Continued), ApiError> {
    let key = chat_key(identity, body.user_id, body.id)?;
    let regenerate = body.trigger.as_deref() == Some("regenerate-message");
    let answering = body
        .messages
        .last()
        .filter(|message| message.role == UiRole::Assistant);
    let answered = answering.and_then(UiMessage::approval_answer);
    let continued = Continued {
        message_id: answering
            .filter(|_| answered.is_some())
            .and_then(|message| message.id.clone()),
        call_id: answered.as_ref().map(|(_, call_id)| call_id.clone()),
    };
    let approval = answered.map(|(answer, _)| answer);
    let mut instructions = Vec::new();
    let mut messages = Vec::with_capacity(body.messages.len());
    for message in &body.messages {
        let text = message.text();
        match message.role {
            UiRole::System => instructions.push(text),
            UiRole::User => messages.push(ChatMessage::user(text)),
            UiRole::Assistant if !text.is_empty() => {
                messages.push(ChatMessage::assistant_text(text))
            }
            UiRole::Assistant => {}
        }
    }
    if approval.is_some() {
        // The answer is the request: no new user message comes with it.
        messages.clear();
    } else if !body
        .messages
        .iter()
        .any(|message| message.role == UiRole::User && !message.text().trim().is_empty())
    {
        return Err(ApiError::invalid_field(
            "messages",
            "`messages` must contain a user message with a text part.",
        ));
    }
    let turn = TurnRequest {
        key,
        continuing: true,
        messages,
        instructions: (!instructions.is_empty()).then(|| instructions.join("\n\n")),
        mode: TurnMode::Chat,
        require_approval: body.require_approval.unwrap_or(default_approval),
        approval,
        regenerate,
        mcp_access: identity.tenant.mcp_access.clone(),
        limits: identity.tenant.limits,
    };
    Ok((turn, continued))
}

/// The UI message stream's response headers around a log.
fn stream_response(session_id: &str, body: ChunkBody) -> HttpResponse {
    let mut response = streaming::response("text/event-stream");
    if let Ok(value) = HeaderValue::from_str(session_id) {
        response.insert_header((SESSION_ID, value));
    }
    response
        .insert_header(("x-vercel-ai-ui-message-stream", "v1"))
        .streaming(body)
}

fn log_body(state: &AppState, chunks: BoxStream<'static, bytes::Bytes>) -> ChunkBody {
    ChunkBody::new(chunks, state.heartbeat(SSE_HEARTBEAT))
}

#[utoipa::path(post, path = "/api/chat", tag = "agent",
    request_body(content = UiChatRequest, content_type = "application/json"),
    responses((status = 200, description = "The AI SDK UI message stream", content_type = "text/event-stream", body = SseEvent),
        (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn chat(
    state: web::Data<AppState>,
    identity: Identity,
    ValidJson(body): ValidJson<UiChatRequest>,
) -> Result<HttpResponse, ApiError> {
    let (turn, continued) = validate(&identity, body, state.agent.require_approval)?;
    let key = turn.key.clone();
    let started = turn::start(&state, &identity.tenant, turn).await?;
    // An approval answer continues the message that asked; the client appends to it.
    let message_id = continued
        .message_id
        .unwrap_or_else(|| format!("msg-{}", uuid::Uuid::new_v4().simple()));
    let encoder = UiMessageEncoder::new(message_id).answering(continued.call_id);
    let chunks = resumable::detach(&state.turn_logs, &key, started, Box::new(encoder));
    Ok(stream_response(&key.id, log_body(&state, chunks)))
}

/// `GET /api/chat/{id}/stream`: the chat's turn in progress, from its start or after the
/// SSE event named by `Last-Event-ID`; 204 when none is running.
#[utoipa::path(get, path = "/api/chat/{id}/stream", tag = "agent",
    params(("id" = String, Path, description = "The chat id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "The chat's turn in progress", content_type = "text/event-stream", body = SseEvent),
        (status = 204, description = "No turn is running"),
        (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = chat_key(&identity, None, path.into_inner())?;
    let after = req
        .headers()
        .get("last-event-id")
        .and_then(|id| id.to_str().ok())
        .and_then(|id| id.parse::<u64>().ok())
        .unwrap_or(0);
    // A resumed stream counts against the tenant's open streams like the one it resumes.
    let guard = state.open_stream(&identity.tenant).await?;
    match state.turn_logs.follow(&key, after).await {
        Ok(Some(chunks)) => {
            let body = log_body(&state, chunks).counted(guard);
            Ok(stream_response(&key.id, body))
        }
        Ok(None) => Ok(HttpResponse::NoContent().finish()),
        Err(err) => Err(err.into()),
    }
}
