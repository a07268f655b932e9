//! `POST /api/chat` and `GET /api/chat/{id}/stream`: the AI SDK's chat protocol (v5 and
//! later), so `useChat` with its `DefaultChatTransport` talks to the agent with no code of
//! the user's own. The request is the SDK's — `id` (the chat, which is our session),
//! `messages` as `UIMessage`s with `parts`, `trigger`, `messageId` — and the answer is the
//! UI message stream ([`UiMessageEncoder`]). The turn runs detached from the connection
//! ([`resumable`](crate::resumable)), so `GET /api/chat/{id}/stream` resumes it from any
//! replica (204 when nothing is running). An approval answer comes back as the assistant
//! message's tool part in state `approval-responded`.

use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream::BoxStream;
use kubiya_actors::provider::ChatMessage;
use kubiya_actors::session::approval::ApprovalAnswer;
use kubiya_actors::session::{SessionKey, TurnMode, TurnRequest};
use serde::Deserialize;

use super::chat::{DEFAULT_USER, USER_ID, header};
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::resumable::{self, LogBody};
use crate::state::AppState;
use crate::streaming::StreamGuard;
use crate::tenant::Tenant;
use crate::turn::{self, SESSION_ID};
use crate::wire::ui_message::UiMessageEncoder;

/// Chat ids are the client's; longer ones are refused rather than stored.
const MAX_CHAT_ID: usize = 256;

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
struct UiMessage {
    #[serde(default)]
    id: Option<String>,
    role: UiRole,
    #[serde(default)]
    parts: Vec<UiPart>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum UiRole {
    System,
    User,
    Assistant,
}

/// Of a part, what the agent reads: text, and a tool part's approval answer.
#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
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

fn user_of(req: &HttpRequest, body_user: Option<String>) -> String {
    body_user
        .or_else(|| header(req, USER_ID).map(str::to_owned))
        .unwrap_or_else(|| DEFAULT_USER.to_owned())
}

fn chat_key(tenant: &Tenant, user: String, id: String) -> Result<SessionKey, ApiError> {
    if id.is_empty() || id.len() > MAX_CHAT_ID {
        return Err(ApiError::invalid_field(
            "id",
            format!("`id` (the chat) must be 1 to {MAX_CHAT_ID} characters."),
        ));
    }
    Ok(SessionKey {
        tenant: tenant.id.to_string(),
        user,
        id,
    })
}

/// The assistant message an approval answer continues, and the tool call it answers.
struct Continued {
    message_id: Option<String>,
    call_id: Option<String>,
}

fn validate(
    req: &HttpRequest,
    tenant: &Tenant,
    body: UiChatRequest,
    default_approval: bool,
) -> Result<(TurnRequest, Continued), ApiError> {
    let key = chat_key(tenant, user_of(req, body.user_id), body.id)?;
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
    };
    Ok((turn, continued))
}

/// The UI message stream's response headers around a log.
fn stream_response(session_id: &str, body: LogBody) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Ok(value) = HeaderValue::from_str(session_id) {
        response.insert_header((SESSION_ID, value));
    }
    response
        .content_type("text/event-stream")
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("x-vercel-ai-ui-message-stream", "v1"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}

fn log_body(state: &AppState, chunks: BoxStream<'static, bytes::Bytes>) -> LogBody {
    LogBody::new(
        chunks,
        Duration::from_secs(state.agent.heartbeat_secs),
        b": keep-alive\n\n",
    )
}

pub async fn chat(
    req: HttpRequest,
    state: web::Data<AppState>,
    tenant: Tenant,
    ValidJson(body): ValidJson<UiChatRequest>,
) -> Result<HttpResponse, ApiError> {
    let (turn, continued) = validate(&req, &tenant, body, state.agent.require_approval)?;
    let key = turn.key.clone();
    let started = turn::start(&state, &tenant, turn).await?;
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
pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    tenant: Tenant,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = chat_key(&tenant, user_of(&req, None), path.into_inner())?;
    let after = header(&req, "last-event-id")
        .and_then(|id| id.parse::<u64>().ok())
        .unwrap_or(0);
    // A resumed stream counts against the tenant's open streams like the one it resumes.
    let permit = state.tenants.open_stream(&tenant).await?;
    let guard = StreamGuard::new(state.open_streams.clone()).with_permit(permit);
    match state.turn_logs.follow(&key, after).await {
        Ok(Some(chunks)) => {
            let body = log_body(&state, chunks).counted(guard);
            Ok(stream_response(&key.id, body))
        }
        Ok(None) => Ok(HttpResponse::NoContent().finish()),
        Err(err) => Err(ApiError::new(
            crate::error::ErrorCode::Unavailable,
            err.to_string(),
        )),
    }
}
