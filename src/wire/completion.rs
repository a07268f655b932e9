//! The non-streaming answer: the turn's events folded into one `chat.completion`, with the
//! same readable activity lines in `content` as a stream shows, the structured events in
//! `x_kubiya`, and the turn's real token usage.

use kubiya_actors::session::TurnEvent;
use serde_json::{Value, json};

use super::openai::{finish_reason, usage_json};
use super::readable;
use crate::routes::AGENT_MODEL;

#[derive(Default)]
pub struct CompletionBuilder {
    content: String,
    activity: Vec<Value>,
    finish: Option<(&'static str, Value)>,
}

impl CompletionBuilder {
    pub fn push(&mut self, event: TurnEvent) {
        match event {
            TurnEvent::Text(text) => self.content.push_str(&text),
            TurnEvent::Reasoning(_) | TurnEvent::StepFinished { .. } | TurnEvent::Failed(_) => {}
            TurnEvent::ToolCall {
                id,
                name,
                arguments,
            } => {
                self.content.push_str(&readable::tool_call(&name));
                self.activity.push(
                    json!({"type": "tool_call", "id": id, "name": name, "arguments": arguments}),
                );
            }
            TurnEvent::ToolResult {
                id,
                name,
                result,
                is_error,
            } => {
                self.content
                    .push_str(&readable::tool_result(&name, &result, is_error));
                self.activity.push(
                    json!({"type": "tool_result", "id": id, "name": name, "result": result, "is_error": is_error}),
                );
            }
            TurnEvent::Execution(event) => {
                self.content.push_str(&readable::execution_event(&event));
                self.activity.push(event);
            }
            TurnEvent::Workflow(_) | TurnEvent::ValidationFailed { .. } => {
                if let Some(event) = super::compose::event_json(&event) {
                    self.activity.push(event);
                }
            }
            TurnEvent::Finished { reason, usage } => {
                self.finish = Some((finish_reason(&reason), usage_json(usage)));
            }
        }
    }

    pub fn build(self, id: &str, created: u64, session_id: &str) -> Value {
        let (finish, usage) = self
            .finish
            .unwrap_or(("stop", usage_json(Default::default())));
        json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": AGENT_MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.content, "refusal": null},
                "logprobs": null,
                "finish_reason": finish,
            }],
            "usage": usage,
            "x_kubiya": {"session_id": session_id, "events": self.activity},
        })
    }
}
