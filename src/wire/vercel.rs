//! The Vercel AI SDK data stream (v4): one `CODE:JSON\n` part per line. `0:` text as a JSON
//! string, `g:` reasoning, `9:`/`a:` tool call (with `args` as an object) and its result,
//! `2:` workflow and step events as a JSON array (the SDK's parser rejects a bare object),
//! `e:` at the end of each model step, `d:` with the finish reason and usage at the end,
//! `3:` for an error.

use std::io::Write;

use bytes::{BufMut, BytesMut};
use kubiya_actors::provider::{FinishReason, Usage};
use kubiya_actors::session::TurnEvent;
use serde_json::{Value, json};

use super::StreamEncoder;

#[derive(Default)]
pub struct VercelEncoder;

fn line(out: &mut BytesMut, code: &str, value: &Value) {
    out.put_slice(code.as_bytes());
    out.put_u8(b':');
    let _ = serde_json::to_writer(out.writer(), value);
    out.put_u8(b'\n');
}

/// A `2:` data part: always an array, which is all the SDK's parser accepts.
fn data_part(out: &mut BytesMut, value: &Value) {
    out.put_slice(b"2:[");
    let _ = serde_json::to_writer(out.writer(), value);
    out.put_slice(b"]\n");
}

fn reason(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool-calls",
        FinishReason::ContentFilter => "content-filter",
        FinishReason::Other(_) => "other",
    }
}

fn usage(usage: Usage) -> Value {
    json!({"promptTokens": usage.input, "completionTokens": usage.output})
}

impl StreamEncoder for VercelEncoder {
    fn encode(&mut self, event: &TurnEvent, out: &mut BytesMut) {
        match event {
            TurnEvent::Text(text) => {
                out.put_slice(b"0:");
                let _ = serde_json::to_writer(out.writer(), text);
                out.put_u8(b'\n');
            }
            TurnEvent::Reasoning(text) => line(out, "g", &Value::from(text.as_str())),
            TurnEvent::ToolCall {
                id,
                name,
                arguments,
            } => {
                let args = if arguments.is_object() {
                    arguments.clone()
                } else {
                    json!({})
                };
                line(
                    out,
                    "9",
                    &json!({"toolCallId": id, "toolName": name, "args": args}),
                );
            }
            TurnEvent::ToolResult { id, result, .. } => {
                line(out, "a", &json!({"toolCallId": id, "result": result}))
            }
            TurnEvent::Execution(event) => {
                data_part(out, &serde_json::to_value(event).unwrap_or_default());
            }
            TurnEvent::ApprovalRequested { workflow, .. } => {
                line(
                    out,
                    "0",
                    &Value::from(super::readable::approval_question(workflow)),
                );
                if let Some(part) = super::event_json(event) {
                    data_part(out, &part);
                }
            }
            TurnEvent::Workflow(_) | TurnEvent::ValidationFailed { .. } => {
                if let Some(part) = super::event_json(event) {
                    data_part(out, &part);
                }
            }
            TurnEvent::StepFinished {
                reason: why,
                usage: used,
            } => line(
                out,
                "e",
                &json!({"finishReason": reason(why), "usage": usage(*used), "isContinued": false}),
            ),
            TurnEvent::Finished {
                reason: why,
                usage: used,
            } => {
                line(
                    out,
                    "d",
                    &json!({"finishReason": reason(why), "usage": usage(*used)}),
                );
            }
            TurnEvent::Failed(error) => {
                let _ = write!(out.writer(), "3:");
                let _ = serde_json::to_writer(out.writer(), &error.message);
                out.put_u8(b'\n');
            }
        }
    }

    fn heartbeat(&self) -> Option<&'static [u8]> {
        None
    }
}
