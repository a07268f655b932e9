//! `POST /v1/chat/completions`: the agent behind OpenAI's chat API. The handler validates
//! the request into a [`TurnRequest`], starts a per-request `Session` actor, waits until it
//! holds the session (409 when another turn does) and for its first event (so a provider
//! failure before any output still gets a proper status), then streams the rest as OpenAI
//! SSE or the Vercel data stream — or folds it into one `chat.completion`.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use kubiya_actors::provider::{ChatMessage, ToolCall};
use kubiya_actors::session::{TurnMode, TurnRequest};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::models::model_not_found;
use super::openapi::SseEvent;
use crate::boundary::choice::{self, Choice};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ValidJson;
use crate::identity::Identity;
use crate::stalled_client::ClientSocket;
use crate::state::AppState;
use crate::turn;
use crate::wire::AGENT_MODEL;
use crate::wire::completion::CompletionBuilder;
use crate::wire::openai::OpenAiSseEncoder;
use crate::wire::vercel::VercelEncoder;
use crate::wire::{StreamEncoder, StreamFormat};

const STREAMING_FORMAT: &str = "x-streaming-format";

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    #[schema(example = "kubiya-workflow-agent")]
    model: String,
    messages: Vec<RequestMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    n: Option<u32>,
    /// The original's body field choosing the stream format (`vercel`).
    #[serde(default)]
    #[schema(value_type = Option<ChatStreamFormat>)]
    format: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<ChatStreamFormat>)]
    stream_format: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    /// Plan → approve → act: the agent asks before running a workflow.
    #[serde(default)]
    require_approval: Option<bool>,
}

/// What `format`, `stream_format` and `X-Streaming-Format` may say (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatStreamFormat {
    /// OpenAI's SSE, the default; `openai` says the same.
    Sse,
    Openai,
    /// The Vercel AI SDK data stream.
    Vercel,
}

impl Choice for ChatStreamFormat {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("sse", Self::Sse),
        ("openai", Self::Openai),
        ("vercel", Self::Vercel),
    ];
}

#[derive(Debug, Deserialize, ToSchema)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "role", rename_all = "lowercase")]
enum RequestMessage {
    System {
        content: Content,
    },
    Developer {
        content: Content,
    },
    User {
        content: Content,
    },
    Assistant {
        #[serde(default)]
        content: Option<Content>,
        #[serde(default)]
        tool_calls: Vec<RequestToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: Content,
    },
    Function {
        name: String,
        #[serde(default)]
        content: Option<Content>,
    },
}

/// A string, or an array of parts of which the text ones count (chat messages' `content`,
/// and Responses input messages').
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub(super) enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize, ToSchema)]
pub(super) struct ContentPart {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct RequestToolCall {
    id: String,
    function: RequestFunction,
}

#[derive(Debug, Deserialize, ToSchema)]
struct RequestFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

impl Content {
    pub(super) fn into_text(self) -> String {
        match self {
            Content::Text(text) => text,
            Content::Parts(parts) => parts
                .into_iter()
                .filter_map(|part| part.text)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// The request, validated: what the session runs and how the answer is sent.
struct ValidTurn {
    turn: TurnRequest,
    stream: Option<StreamFormat>,
    include_usage: bool,
}

fn validate(
    req: &HttpRequest,
    identity: &Identity,
    body: ChatCompletionRequest,
    state_default_approval: bool,
) -> Result<ValidTurn, ApiError> {
    if body.model != AGENT_MODEL {
        return Err(model_not_found(&body.model));
    }
    if body.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid_field(
            "n",
            "Only n=1 is supported: the agent gives one answer per turn.",
        ));
    }
    let mut vercel = false;
    for (param, format) in [
        (
            "X-Streaming-Format",
            req.headers()
                .get(STREAMING_FORMAT)
                .and_then(|value| value.to_str().ok()),
        ),
        ("format", body.format.as_deref()),
        ("stream_format", body.stream_format.as_deref()),
    ] {
        if let Some(format) = format {
            vercel |= choice::parse::<ChatStreamFormat>(format, param)? == ChatStreamFormat::Vercel;
        }
    }
    let stream = match (vercel, body.stream.unwrap_or(false)) {
        (true, _) => Some(StreamFormat::Vercel),
        (false, true) => Some(StreamFormat::OpenAiSse),
        (false, false) => None,
    };
    let (key, continuing) = identity.turn_session(body.user_id, body.session_id)?;
    let (messages, instructions) = convert_messages(body.messages)?;
    if !messages
        .iter()
        .any(|message| matches!(message, ChatMessage::User { .. }))
    {
        return Err(ApiError::invalid_field(
            "messages",
            "`messages` must contain at least one user message.",
        ));
    }
    Ok(ValidTurn {
        turn: TurnRequest {
            key,
            continuing,
            messages,
            instructions,
            mode: TurnMode::Chat,
            require_approval: body.require_approval.unwrap_or(state_default_approval),
            approval: None,
            regenerate: false,
            mcp_access: identity.tenant.mcp_access.clone(),
            limits: identity.tenant.limits,
        },
        stream,
        include_usage: body
            .stream_options
            .and_then(|options| options.include_usage)
            .unwrap_or(false),
    })
}

/// OpenAI messages into the conversation; system and developer messages become instructions.
fn convert_messages(
    messages: Vec<RequestMessage>,
) -> Result<(Vec<ChatMessage>, Option<String>), ApiError> {
    let mut conversation = Vec::with_capacity(messages.len());
    let mut instructions: Vec<String> = Vec::new();
    for (index, message) in messages.into_iter().enumerate() {
        match message {
            RequestMessage::System { content } | RequestMessage::Developer { content } => {
                instructions.push(content.into_text());
            }
            RequestMessage::User { content } => {
                conversation.push(ChatMessage::user(content.into_text()))
            }
            RequestMessage::Assistant {
                content,
                tool_calls,
            } => {
                let tool_calls = tool_calls
                    .into_iter()
                    .enumerate()
                    .map(|(call_index, call)| {
                        let arguments = if call.function.arguments.trim().is_empty() {
                            Value::Object(Default::default())
                        } else {
                            serde_json::from_str(&call.function.arguments).map_err(|err| {
                                ApiError::invalid_field(
                                    format!("messages[{index}].tool_calls[{call_index}].function.arguments"),
                                    format!("The tool call arguments are not valid JSON: {err}"),
                                )
                            })?
                        };
                        Ok(ToolCall {
                            id: call.id,
                            name: call.function.name,
                            arguments,
                        })
                    })
                    .collect::<Result<Vec<_>, ApiError>>()?;
                conversation.push(ChatMessage::Assistant {
                    content: content
                        .map(Content::into_text)
                        .filter(|text| !text.is_empty()),
                    tool_calls,
                });
            }
            RequestMessage::Tool {
                tool_call_id,
                content,
            } => {
                let name = conversation
                    .iter()
                    .rev()
                    .find_map(|earlier| match earlier {
                        ChatMessage::Assistant { tool_calls, .. } => tool_calls
                            .iter()
                            .find(|call| call.id == tool_call_id)
                            .map(|call| call.name.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                conversation.push(ChatMessage::Tool {
                    tool_call_id,
                    name,
                    content: content.into_text(),
                    is_error: false,
                });
            }
            RequestMessage::Function { name, content } => conversation.push(ChatMessage::Tool {
                tool_call_id: format!("call_{name}"),
                name,
                content: content.map(Content::into_text).unwrap_or_default(),
                is_error: false,
            }),
        }
    }
    let instructions = (!instructions.is_empty()).then(|| instructions.join("\n\n"));
    Ok((conversation, instructions))
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "agent",
    request_body(content = ChatCompletionRequest, content_type = "application/json"),
    params(("X-Session-Id" = Option<String>, Header, description = "Continue this session"),
        ("X-User-Id" = Option<String>, Header, description = "The user"),
        ("X-Streaming-Format" = Option<String>, Header, description = "`vercel` for the Vercel AI SDK data stream")),
    responses((status = 200, description = "A `chat.completion`, or its stream: OpenAI SSE or the Vercel data stream",
        content((Object = "application/json"), (SseEvent = "text/event-stream"), (String = "text/plain"))),
        (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn chat_completions(
    req: HttpRequest,
    state: web::Data<AppState>,
    identity: Identity,
    socket: ClientSocket,
    ValidJson(body): ValidJson<ChatCompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let ValidTurn {
        turn,
        stream,
        include_usage,
    } = validate(&req, &identity, body, state.agent.require_approval)?;
    let started = turn::start(&state, &identity.tenant, turn).await?;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let encoder: Box<dyn StreamEncoder> = match stream {
        Some(StreamFormat::Vercel) => Box::new(VercelEncoder),
        Some(_) => Box::new(OpenAiSseEncoder::new(id, created, include_usage)),
        None => {
            let session = started.session_header();
            let session_id = started.session_id.clone();
            let mut completion = CompletionBuilder::default();
            started.collect(|event| completion.push(event)).await?;
            return Ok(HttpResponse::Ok()
                .insert_header(session)
                .json(completion.build(&id, created, &session_id)));
        }
    };
    let format = stream.unwrap_or(StreamFormat::OpenAiSse);
    Ok(started.into_response(format, encoder, socket))
}
