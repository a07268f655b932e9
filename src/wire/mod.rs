//! Wire encoders: a turn's [`TurnEvent`]s in the format the client asked for. Each encoder
//! writes one event into a buffer the stream hands to the connection as one write: OpenAI
//! chat-completion chunks over SSE ([`openai`]), the Vercel AI SDK data stream ([`vercel`]),
//! the AI SDK's UI message stream ([`ui_message`]), the Responses API's events and object
//! ([`responses`]), and the whole `chat.completion` object for non-streaming clients
//! ([`completion`]).
//! [`readable`] renders tool and workflow activity as text lines for plain clients;
//! [`filter`] drops what a Compose client's `stream_filter` does not want.

pub mod completion;
pub mod compose;
pub mod filter;
pub mod openai;
pub mod readable;
pub mod responses;
pub mod ui_message;
pub mod vercel;

use bytes::BytesMut;
use kubiya_actors::session::TurnEvent;
use serde_json::{Value, json};

use crate::error::ApiError;

/// The streaming formats a client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    OpenAiSse,
    Vercel,
    /// The Compose API's own events over SSE.
    ComposeSse,
    /// The Compose API's events as raw NDJSON (`stream_format: null`).
    Ndjson,
}

/// The model name clients address the agent by, and every answer names.
pub const AGENT_MODEL: &str = "kubiya-workflow-agent";

/// The comment every SSE stream sends when idle, to keep proxies from closing the connection.
pub const SSE_HEARTBEAT: &[u8] = b": keep-alive\n\n";

/// Encodes one event at a time; `None` from [`heartbeat`](StreamEncoder::heartbeat) means the
/// format has no way to say "still here".
pub trait StreamEncoder: Send {
    fn encode(&mut self, event: &TurnEvent, out: &mut BytesMut);
    fn heartbeat(&self) -> Option<&'static [u8]>;
}

/// An event's structured form — the Compose API's events, OpenAI chunks' `x_kubiya`, the
/// Vercel `2:` parts — or `None` for the markers that have none.
pub fn event_json(event: &TurnEvent) -> Option<Value> {
    Some(match event {
        TurnEvent::Text(content) => json!({"type": "text", "content": content}),
        TurnEvent::Reasoning(content) => json!({"type": "thought", "content": content}),
        TurnEvent::ToolCall {
            id,
            name,
            arguments,
        } => {
            json!({"type": "tool_call", "id": id, "name": name, "arguments": arguments})
        }
        TurnEvent::ToolResult {
            id, name, result, ..
        } => {
            json!({"type": "tool_result", "id": id, "name": name, "result": result})
        }
        TurnEvent::Workflow(data) => json!({"type": "workflow", "data": data}),
        TurnEvent::ValidationFailed { errors, attempt } => {
            json!({"type": "validation_error", "errors": errors, "attempt": attempt})
        }
        TurnEvent::Execution(event) => serde_json::to_value(event).unwrap_or_default(),
        TurnEvent::ApprovalRequested {
            approval_id,
            tool_call_id,
            workflow,
        } => json!({"type": "approval_request", "approval_id": approval_id,
            "tool_call_id": tool_call_id, "workflow": workflow}),
        TurnEvent::Failed(error) => {
            let error = ApiError::from(error.clone());
            json!({"type": "error", "message": error.message, "code": error.code.code()})
        }
        TurnEvent::StepFinished { .. } | TurnEvent::Finished { .. } => return None,
    })
}

/// An execution event for the encoders' tests, from its flat JSON; the numbers a test does
/// not care about (sequence, timestamps, milliseconds) default to 0.
#[cfg(test)]
pub(crate) fn test_execution_event(mut flat: Value) -> TurnEvent {
    for (field, default) in [
        ("execution_id", json!("exec_test")),
        ("seq", json!(1)),
        ("timestamp", json!(0)),
        ("duration_ms", json!(0)),
        ("duration", json!("0.0s")),
        ("output", json!("")),
        ("reason", json!("")),
        ("will_retry", json!(false)),
        ("message", json!("")),
        ("stream", json!("stdout")),
        ("text", json!("")),
        ("workflow", json!("w")),
    ] {
        if flat.get(field).is_none() {
            flat[field] = default;
        }
    }
    if flat["type"] == "step_failed" && flat.get("error").is_none() {
        flat["error"] = json!("");
    }
    let event = serde_json::from_value(flat).expect("an execution event");
    TurnEvent::Execution(Box::new(event))
}
