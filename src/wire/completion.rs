//! The non-streaming answer: the turn's events folded into one `chat.completion`, with the
//! same readable activity lines in `content` as a stream shows, the structured events in
//! `x_kubiya`, the workflow as a YAML block when the model's text did not show it, and the
//! turn's real token usage.

use kubiya_actors::session::TurnEvent;
use serde_json::{Value, json};

use super::AGENT_MODEL;
use super::openai::{finish_reason, usage_json};
use super::readable::{self, WorkflowEcho};

#[derive(Default)]
pub struct CompletionBuilder {
    content: String,
    activity: Vec<Value>,
    finish: Option<(&'static str, Value)>,
    echo: WorkflowEcho,
}

impl CompletionBuilder {
    pub fn push(&mut self, event: TurnEvent) {
        self.echo.observe(&event);
        match event {
            TurnEvent::Text(text) => self.content.push_str(&text),
            TurnEvent::Reasoning(_) | TurnEvent::StepFinished { .. } | TurnEvent::Failed(_) => {}
            TurnEvent::Finished { reason, usage } => {
                if let Some(block) = self.echo.block() {
                    self.content.push_str(&block);
                }
                self.finish = Some((finish_reason(&reason), usage_json(usage)));
            }
            activity => {
                if let (Some(line), Some(json)) =
                    (readable::line(&activity), super::event_json(&activity))
                {
                    self.content.push_str(&line);
                    self.activity.push(json);
                }
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
