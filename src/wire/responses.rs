//! The Responses API (Open Responses): a turn's events as one `response` object, and as its
//! streamed events — `response.created`, `response.in_progress`, the message item's
//! `response.output_item.added` / `response.content_part.added` /
//! `response.output_text.delta`* / `.done` events, then one terminal `response.completed`,
//! `response.failed` or `response.incomplete`; each SSE event's `event:` is its `type`, each
//! carries a `sequence_number`, and `data: [DONE]` ends the stream.
//!
//! The agent's own tools are not the client's: they never appear as `function_call` items
//! (a client would try to run them). Tool and step activity is readable text in the message
//! and, structured, in an `x_kubiya` field (on the delta that carries it, and as
//! `x_kubiya.events` on the response), as the chat endpoint does.

use std::io::Write;

use bytes::{BufMut, BytesMut};
use kubiya_actors::provider::{FinishReason, Usage};
use kubiya_actors::session::TurnEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::AGENT_MODEL;
use super::readable;
use crate::error::ApiError;

/// What the response object echoes of the request.
pub struct ResponseMeta {
    pub id: String,
    pub created_at: u64,
    pub instructions: Option<String>,
    pub previous_response_id: Option<String>,
    pub store: bool,
    pub session_id: String,
}

/// The `response` object: what `POST /v1/responses` answers whole, what its stream's
/// `response.*` lifecycle events carry, and what `GET /v1/responses/{id}` returns.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResponseObject {
    pub id: String,
    /// Always `response`.
    pub object: String,
    pub created_at: u64,
    pub completed_at: Option<u64>,
    pub status: ResponseStatus,
    pub incomplete_details: Option<IncompleteDetails>,
    pub model: String,
    pub previous_response_id: Option<String>,
    pub instructions: Option<String>,
    /// The assistant's message, once it has text.
    pub output: Vec<OutputMessage>,
    pub error: Option<ResponseFailure>,
    /// Always empty: the agent's own tools are not the client's.
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
    pub tool_choice: String,
    pub truncation: String,
    pub parallel_tool_calls: bool,
    pub text: TextSettings,
    pub top_p: f64,
    pub presence_penalty: f64,
    pub frequency_penalty: f64,
    pub top_logprobs: u32,
    pub temperature: f64,
    #[schema(value_type = Option<Object>)]
    pub reasoning: Option<Value>,
    pub usage: Option<ResponseUsage>,
    pub max_output_tokens: Option<u64>,
    pub max_tool_calls: Option<u64>,
    pub store: bool,
    pub background: bool,
    pub service_tier: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, Value>,
    pub safety_identifier: Option<String>,
    pub prompt_cache_key: Option<String>,
    pub user: Option<String>,
    pub x_kubiya: ResponseExtras,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    InProgress,
    Completed,
    Incomplete,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IncompleteDetails {
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResponseFailure {
    pub code: String,
    pub message: String,
}

/// An output item: the assistant's message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputMessage {
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    /// `in_progress`, `completed` or `incomplete`.
    pub status: String,
    pub role: String,
    pub content: Vec<OutputText>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputText {
    /// Always `output_text`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    #[schema(value_type = Vec<Object>)]
    pub annotations: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub logprobs: Vec<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TextSettings {
    pub format: TextFormat,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TextFormat {
    /// Always `text`.
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResponseUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens_details: OutputTokensDetails,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InputTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

/// The server's own additions, which Responses clients ignore.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResponseExtras {
    pub session_id: String,
    /// The turn's tool and step activity, as the stream's `x_kubiya` fields carry it.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// Folds a turn's events into the response and, when streaming, its events.
pub struct ResponseBuilder {
    meta: ResponseMeta,
    message_id: String,
    text: String,
    activity: Vec<Value>,
    seq: u64,
    message_open: bool,
}

/// `response.output_text.delta`, the one event sent per text chunk: typed, so a delta
/// costs no map of its own.
#[derive(Serialize)]
struct TextDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: u32,
    content_index: u32,
    delta: &'a str,
    logprobs: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    x_kubiya: Option<&'a Value>,
}

/// How the response ended.
pub enum Outcome {
    Completed(Usage),
    Incomplete(Usage),
    Failed(ApiError),
}

impl ResponseBuilder {
    pub fn new(meta: ResponseMeta) -> Self {
        Self {
            meta,
            message_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            text: String::new(),
            activity: Vec::new(),
            seq: 0,
            message_open: false,
        }
    }

    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The message's whole text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn message(&self, status: &str) -> OutputMessage {
        let content = if status == "in_progress" {
            Vec::new()
        } else {
            vec![self.part()]
        };
        OutputMessage {
            kind: "message".into(),
            id: self.message_id.clone(),
            status: status.into(),
            role: "assistant".into(),
            content,
        }
    }

    fn part(&self) -> OutputText {
        OutputText {
            kind: "output_text".into(),
            text: self.text.clone(),
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }
    }

    /// The response object in `status`, with its output and usage once it has ended.
    pub fn resource(&self, outcome: Option<&Outcome>) -> ResponseObject {
        let (status, usage, error, incomplete) = match outcome {
            None => (ResponseStatus::InProgress, None, None, None),
            Some(Outcome::Completed(usage)) => (
                ResponseStatus::Completed,
                Some(usage_of(*usage)),
                None,
                None,
            ),
            Some(Outcome::Incomplete(usage)) => (
                ResponseStatus::Incomplete,
                Some(usage_of(*usage)),
                None,
                Some(IncompleteDetails {
                    reason: "max_output_tokens".into(),
                }),
            ),
            Some(Outcome::Failed(error)) => (
                ResponseStatus::Failed,
                None,
                Some(ResponseFailure {
                    code: error.code.code().into(),
                    message: error.message.clone(),
                }),
                None,
            ),
        };
        let output = match outcome {
            None => Vec::new(),
            Some(Outcome::Failed(_)) if self.text.is_empty() => Vec::new(),
            Some(Outcome::Failed(_)) | Some(Outcome::Incomplete(_)) => {
                vec![self.message("incomplete")]
            }
            Some(Outcome::Completed(_)) => vec![self.message("completed")],
        };
        ResponseObject {
            id: self.meta.id.clone(),
            object: "response".into(),
            created_at: self.meta.created_at,
            completed_at: matches!(outcome, Some(Outcome::Completed(_))).then(now_secs),
            status,
            incomplete_details: incomplete,
            model: AGENT_MODEL.into(),
            previous_response_id: self.meta.previous_response_id.clone(),
            instructions: self.meta.instructions.clone(),
            output,
            error,
            tools: Vec::new(),
            tool_choice: "auto".into(),
            truncation: "disabled".into(),
            parallel_tool_calls: false,
            text: TextSettings {
                format: TextFormat {
                    kind: "text".into(),
                },
            },
            top_p: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            top_logprobs: 0,
            temperature: 1.0,
            reasoning: None,
            usage,
            max_output_tokens: None,
            max_tool_calls: None,
            store: self.meta.store,
            background: false,
            service_tier: "default".into(),
            metadata: serde_json::Map::new(),
            safety_identifier: None,
            prompt_cache_key: None,
            user: None,
            x_kubiya: ResponseExtras {
                session_id: self.meta.session_id.clone(),
                events: self.activity.clone(),
            },
        }
    }

    fn event(&mut self, out: &mut BytesMut, kind: &str, mut event: Value) {
        event["type"] = Value::from(kind);
        event["sequence_number"] = Value::from(self.seq);
        self.seq += 1;
        let _ = write!(out.writer(), "event: {kind}\ndata: ");
        let _ = serde_json::to_writer(out.writer(), &event);
        out.put_slice(b"\n\n");
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self, out: &mut BytesMut) {
        let response = self.resource(None);
        self.event(out, "response.created", json!({"response": response}));
        self.event(out, "response.in_progress", json!({"response": response}));
    }

    fn open_message(&mut self, out: &mut BytesMut) {
        if self.message_open {
            return;
        }
        self.message_open = true;
        let item = self.message("in_progress");
        self.event(
            out,
            "response.output_item.added",
            json!({"output_index": 0, "item": item}),
        );
        let part = json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
        let added = json!({"item_id": self.message_id, "output_index": 0, "content_index": 0, "part": part});
        self.event(out, "response.content_part.added", added);
    }

    /// Text and activity; `out` gets their events when streaming (`None` folds only).
    pub fn push(&mut self, event: &TurnEvent, out: Option<&mut BytesMut>) {
        let line;
        let (delta, is_activity) = match event {
            TurnEvent::Text(text) => (text.as_str(), false),
            activity => match (readable::line(activity), super::event_json(activity)) {
                (Some(readable), Some(json)) => {
                    line = readable;
                    self.activity.push(json);
                    (line.as_str(), true)
                }
                _ => return,
            },
        };
        self.text.push_str(delta);
        if let Some(out) = out {
            self.open_message(out);
            let event = TextDelta {
                kind: "response.output_text.delta",
                sequence_number: self.seq,
                item_id: &self.message_id,
                output_index: 0,
                content_index: 0,
                delta,
                logprobs: [],
                x_kubiya: self.activity.last().filter(|_| is_activity),
            };
            out.put_slice(b"event: response.output_text.delta\ndata: ");
            // String keys only: serializing cannot fail.
            let _ = serde_json::to_writer(out.writer(), &event);
            out.put_slice(b"\n\n");
            self.seq += 1;
        }
    }

    /// The message's closing events and the terminal one.
    pub fn end(&mut self, outcome: &Outcome, out: &mut BytesMut) {
        if !matches!(outcome, Outcome::Failed(_)) {
            self.open_message(out);
            let ids = json!({"item_id": self.message_id, "output_index": 0, "content_index": 0});
            let mut done = ids.clone();
            done["text"] = Value::from(self.text.as_str());
            done["logprobs"] = json!([]);
            self.event(out, "response.output_text.done", done);
            let mut part_done = ids;
            part_done["part"] = json!(self.part());
            self.event(out, "response.content_part.done", part_done);
            let status = match outcome {
                Outcome::Completed(_) => "completed",
                _ => "incomplete",
            };
            let item = self.message(status);
            self.event(
                out,
                "response.output_item.done",
                json!({"output_index": 0, "item": item}),
            );
        }
        let kind = match outcome {
            Outcome::Completed(_) => "response.completed",
            Outcome::Incomplete(_) => "response.incomplete",
            Outcome::Failed(_) => "response.failed",
        };
        let response = self.resource(Some(outcome));
        self.event(out, kind, json!({"response": response}));
        out.put_slice(b"data: [DONE]\n\n");
    }
}

impl Outcome {
    /// The outcome a terminal event means, `None` for any other event.
    pub fn of(event: &TurnEvent) -> Option<Self> {
        match event {
            TurnEvent::Finished {
                reason: FinishReason::Length,
                usage,
            } => Some(Outcome::Incomplete(*usage)),
            TurnEvent::Finished { usage, .. } => Some(Outcome::Completed(*usage)),
            TurnEvent::Failed(error) => Some(Outcome::Failed(error.clone().into())),
            _ => None,
        }
    }
}

fn usage_of(usage: Usage) -> ResponseUsage {
    ResponseUsage {
        input_tokens: usage.input,
        output_tokens: usage.output,
        total_tokens: usage.input + usage.output,
        input_tokens_details: InputTokensDetails { cached_tokens: 0 },
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: 0,
        },
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
