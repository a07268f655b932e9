//! OpenAI chat-completion chunks over SSE: one stable id per stream, `{"role":"assistant"}`
//! first, text in `delta.content`, tool and workflow activity as readable content lines with
//! the structured event in `x_kubiya` (which SDKs ignore), a finish chunk, a usage chunk with
//! `choices: []` when asked, then `data: [DONE]`. A turn that produced a workflow the model's
//! text did not show ends with it as a fenced YAML block. A failure becomes
//! `data: {"error":{...}}` followed by `[DONE]`. Every event carries an SSE `id:`.

use std::io::Write;

use bytes::{BufMut, BytesMut};
use kubiya_actors::provider::{FinishReason, Usage};
use kubiya_actors::session::TurnEvent;
use serde::Serialize;
use serde_json::{Value, json};

use super::AGENT_MODEL;
use super::StreamEncoder;
use super::readable::{self, WorkflowEcho};
use crate::error::ApiError;

pub struct OpenAiSseEncoder {
    id: String,
    created: u64,
    include_usage: bool,
    seq: u64,
    started: bool,
    echo: WorkflowEcho,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'static str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    x_kubiya: Option<&'a Value>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
}

pub fn finish_reason(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::ContentFilter => "content_filter",
        _ => "stop",
    }
}

pub fn usage_json(usage: Usage) -> Value {
    json!({"prompt_tokens": usage.input, "completion_tokens": usage.output, "total_tokens": usage.input + usage.output})
}

impl OpenAiSseEncoder {
    pub fn new(id: String, created: u64, include_usage: bool) -> Self {
        Self {
            id,
            created,
            include_usage,
            seq: 0,
            started: false,
            echo: WorkflowEcho::default(),
        }
    }

    fn data(
        &mut self,
        out: &mut BytesMut,
        payload: impl FnOnce(&mut bytes::buf::Writer<&mut BytesMut>),
    ) {
        self.seq += 1;
        let _ = write!(out.writer(), "id: {}\ndata: ", self.seq);
        payload(&mut out.writer());
        out.put_slice(b"\n\n");
    }

    fn chunk(
        &mut self,
        out: &mut BytesMut,
        delta: Delta<'_>,
        finish: Option<&'static str>,
        extension: Option<&Value>,
    ) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: AGENT_MODEL,
            choices: [Choice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish,
            }],
            x_kubiya: extension,
        };
        let bytes = serde_json::to_vec(&chunk).unwrap_or_default();
        self.data(out, |writer| {
            let _ = writer.write_all(&bytes);
        });
    }

    fn content(&mut self, out: &mut BytesMut, text: &str, extension: Option<&Value>) {
        self.chunk(
            out,
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
            extension,
        );
    }
}

impl StreamEncoder for OpenAiSseEncoder {
    fn encode(&mut self, event: &TurnEvent, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            if !matches!(event, TurnEvent::Failed(_)) {
                self.chunk(
                    out,
                    Delta {
                        role: Some("assistant"),
                        content: Some(""),
                        ..Delta::default()
                    },
                    None,
                    None,
                );
            }
        }
        self.echo.observe(event);
        match event {
            TurnEvent::Text(text) => self.content(out, text, None),
            TurnEvent::Reasoning(text) => self.chunk(
                out,
                Delta {
                    reasoning_content: Some(text),
                    ..Delta::default()
                },
                None,
                None,
            ),
            TurnEvent::ToolCall { .. }
            | TurnEvent::ToolResult { .. }
            | TurnEvent::Execution(_)
            | TurnEvent::Workflow(_)
            | TurnEvent::ApprovalRequested { .. }
            | TurnEvent::ValidationFailed { .. } => {
                if let (Some(line), Some(extension)) =
                    (readable::line(event), super::event_json(event))
                {
                    self.content(out, &line, Some(&extension));
                }
            }
            TurnEvent::StepFinished { .. } => {}
            TurnEvent::Finished { reason, usage } => {
                if let Some(block) = self.echo.block() {
                    self.content(out, &block, None);
                }
                self.chunk(out, Delta::default(), Some(finish_reason(reason)), None);
                if self.include_usage {
                    let usage_chunk = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": AGENT_MODEL, "choices": [], "usage": usage_json(*usage),
                    });
                    self.data(out, |writer| {
                        let _ = serde_json::to_writer(writer, &usage_chunk);
                    });
                }
                out.put_slice(b"data: [DONE]\n\n");
            }
            TurnEvent::Failed(error) => {
                let error = ApiError::from(error.clone());
                self.data(out, |writer| {
                    let _ = serde_json::to_writer(writer, &error.body());
                });
                out.put_slice(b"data: [DONE]\n\n");
            }
        }
    }

    fn heartbeat(&self) -> Option<&'static [u8]> {
        Some(super::SSE_HEARTBEAT)
    }
}
