//! The AI SDK's UI message stream (v5 and later, what `useChat` reads): SSE `data: {chunk}`
//! events ending with `data: [DONE]`. `start`, then per model call `start-step` … `finish-step`
//! holding text (`text-start`/`text-delta`/`text-end`), reasoning, and our tools as tool parts
//! (`tool-input-available`, then `tool-output-available` or `tool-output-error`); `finish` at
//! the end. The workflow is one `data-workflow` part with a stable id, sent again, updated in
//! place, as it validates and as each step runs, completes or fails; step log lines are
//! `transient` `data-step-log` parts, and what a running step writes `transient`
//! `data-step-output` parts (`{step, stream, text}`). An approval request is the SDK's own
//! `tool-approval-request`, and a declined run `tool-output-denied`.
//!
//! Every chunk stays inside the fields of the oldest client served (ai 5.0.0 validates each
//! chunk with a strict schema: any other key kills the stream), so `finish` carries no
//! `finishReason` and no chunk carries usage. Each event has an SSE `id:` (its position in
//! the stream, which the SDK ignores), so a client can resume after it with `Last-Event-ID`.

use std::io::Write;

use bytes::{BufMut, BytesMut};
use kubiya_actors::session::TurnEvent;
use kubiya_actors::workflow::StepEvent;
use serde::Serialize;
use serde_json::{Value, json};

use super::{StreamEncoder, readable};

/// Every chunk we send, with exactly the fields `ai@5.0.0`'s strict schemas accept (the
/// approval chunks exist from AI SDK 6 on; they go only to clients that asked for approval).
#[derive(Serialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
enum Chunk<'a> {
    Start {
        message_id: &'a str,
    },
    StartStep,
    TextStart {
        id: &'a str,
    },
    TextDelta {
        id: &'a str,
        delta: &'a str,
    },
    TextEnd {
        id: &'a str,
    },
    ReasoningStart {
        id: &'a str,
    },
    ReasoningDelta {
        id: &'a str,
        delta: &'a str,
    },
    ReasoningEnd {
        id: &'a str,
    },
    ToolInputAvailable {
        tool_call_id: &'a str,
        tool_name: &'a str,
        input: &'a Value,
    },
    ToolOutputAvailable {
        tool_call_id: &'a str,
        output: &'a Value,
    },
    ToolOutputError {
        tool_call_id: &'a str,
        error_text: &'a str,
    },
    ToolOutputDenied {
        tool_call_id: &'a str,
    },
    ToolApprovalRequest {
        approval_id: &'a str,
        tool_call_id: &'a str,
    },
    Error {
        error_text: &'a str,
    },
    FinishStep,
    Finish,
}

/// A `data-<name>` part; a later one with the same id replaces it on the client.
#[derive(Serialize)]
struct DataPart<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    data: T,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    transient: bool,
}

pub struct UiMessageEncoder {
    message_id: String,
    seq: u64,
    started: bool,
    step_open: bool,
    /// The open text or reasoning part, and how many parts were opened so far.
    open: Option<OpenPart>,
    parts: u64,
    workflow: Option<WorkflowPart>,
    /// The tool call whose approval this turn answers: the client holds its part already.
    answered_call: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    Text,
    Reasoning,
}

struct OpenPart {
    kind: OpenKind,
    id: String,
}

/// The `data-workflow` part as the client holds it.
#[derive(Serialize)]
struct WorkflowPart {
    #[serde(skip)]
    id: String,
    name: String,
    /// `valid`, `awaiting_approval`, `running`, then the run's end: `success`, `failed`,
    /// `cancelled` or `lost`.
    status: String,
    execution_id: Option<String>,
    steps: Vec<StepStatus>,
    definition: Value,
}

#[derive(Serialize)]
struct StepStatus {
    name: String,
    /// `pending`, `running`, `complete`, `failed` or `skipped`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<String>,
}

impl WorkflowPart {
    fn new(definition: &Value, status: &str) -> Self {
        let name = definition["name"].as_str().unwrap_or("workflow").to_owned();
        let steps = definition["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|step| step["name"].as_str())
            .map(|name| StepStatus {
                name: name.to_owned(),
                status: "pending",
                output: None,
                error: None,
                duration: None,
            })
            .collect();
        Self {
            // Stable across the turns of one message (an approval continues it).
            id: format!("workflow-{name}"),
            name,
            status: status.to_owned(),
            execution_id: None,
            steps,
            definition: definition.clone(),
        }
    }

    /// Applies one execution event.
    fn apply(&mut self, event: &Value) {
        if let Some(id) = event["execution_id"].as_str() {
            self.execution_id = Some(id.to_owned());
        }
        let kind = event["type"].as_str().unwrap_or("");
        if kind == "workflow_complete" {
            self.status = event["status"].as_str().unwrap_or("failed").to_owned();
            return;
        }
        let Some(name) = event["step"].as_str() else {
            return;
        };
        let index = match self.steps.iter().position(|step| step.name == name) {
            Some(index) => index,
            None => {
                self.steps.push(StepStatus {
                    name: name.to_owned(),
                    status: "pending",
                    output: None,
                    error: None,
                    duration: None,
                });
                self.steps.len() - 1
            }
        };
        let step = &mut self.steps[index];
        let text = |key: &str| event[key].as_str().map(str::to_owned);
        match kind {
            "step_running" => step.status = "running",
            "step_complete" => {
                step.status = "complete";
                step.output = text("output");
                step.duration = text("duration");
            }
            "step_failed" => {
                step.status = if event["will_retry"] == true {
                    "running"
                } else {
                    "failed"
                };
                step.error = text("error");
            }
            "step_skipped" => step.status = "skipped",
            _ => {}
        }
    }
}

impl UiMessageEncoder {
    pub fn new(message_id: String) -> Self {
        Self {
            message_id,
            seq: 0,
            started: false,
            step_open: false,
            open: None,
            parts: 0,
            workflow: None,
            answered_call: None,
        }
    }

    /// Continues the message that asked for approval of `call_id`.
    pub fn answering(mut self, call_id: Option<String>) -> Self {
        self.answered_call = call_id;
        self
    }

    fn chunk(&mut self, out: &mut BytesMut, chunk: &impl Serialize) {
        // Events and parts have string keys only: serializing cannot fail.
        self.seq += 1;
        let _ = write!(out.writer(), "id: {}\ndata: ", self.seq);
        let _ = serde_json::to_writer(out.writer(), chunk);
        out.put_slice(b"\n\n");
    }

    /// `start` once, and `start-step` whenever content comes outside a step.
    fn in_step(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            let id = std::mem::take(&mut self.message_id);
            self.chunk(out, &Chunk::Start { message_id: &id });
            self.message_id = id;
        }
        if !self.step_open {
            self.step_open = true;
            self.chunk(out, &Chunk::StartStep);
        }
    }

    fn close_open(&mut self, out: &mut BytesMut) {
        if let Some(open) = self.open.take() {
            let id = open.id.as_str();
            let end = match open.kind {
                OpenKind::Text => Chunk::TextEnd { id },
                OpenKind::Reasoning => Chunk::ReasoningEnd { id },
            };
            self.chunk(out, &end);
        }
    }

    fn delta(&mut self, out: &mut BytesMut, kind: OpenKind, delta: &str) {
        self.in_step(out);
        if self.open.as_ref().is_some_and(|open| open.kind != kind) {
            self.close_open(out);
        }
        let open = match self.open.take() {
            Some(open) => open,
            None => {
                self.parts += 1;
                let id = self.parts.to_string();
                let start = match kind {
                    OpenKind::Text => Chunk::TextStart { id: &id },
                    OpenKind::Reasoning => Chunk::ReasoningStart { id: &id },
                };
                self.chunk(out, &start);
                OpenPart { kind, id }
            }
        };
        let id = open.id.as_str();
        let chunk = match kind {
            OpenKind::Text => Chunk::TextDelta { id, delta },
            OpenKind::Reasoning => Chunk::ReasoningDelta { id, delta },
        };
        self.chunk(out, &chunk);
        self.open = Some(open);
    }

    fn finish_step(&mut self, out: &mut BytesMut) {
        self.close_open(out);
        if self.step_open {
            self.step_open = false;
            self.chunk(out, &Chunk::FinishStep);
        }
    }

    fn send_workflow(&mut self, out: &mut BytesMut) {
        if let Some(workflow) = self.workflow.take() {
            let part = DataPart {
                kind: "data-workflow",
                id: Some(&workflow.id),
                data: &workflow,
                transient: false,
            };
            self.chunk(out, &part);
            self.workflow = Some(workflow);
        }
    }

    /// A new workflow part for `definition`, unless it is the one already shown.
    fn show_workflow(&mut self, definition: &Value, status: &str) {
        let same = self
            .workflow
            .as_ref()
            .is_some_and(|shown| shown.definition["name"] == definition["name"]);
        match self.workflow.as_mut() {
            Some(shown) if same => {
                shown.status = status.to_owned();
                shown.definition = definition.clone();
            }
            _ => self.workflow = Some(WorkflowPart::new(definition, status)),
        }
    }

    fn tool_activity(&mut self, event: &TurnEvent, out: &mut BytesMut) {
        self.in_step(out);
        self.close_open(out);
        match event {
            TurnEvent::ToolCall {
                id,
                name,
                arguments,
            } => {
                if self.answered_call.as_ref() != Some(id) {
                    let chunk = Chunk::ToolInputAvailable {
                        tool_call_id: id,
                        tool_name: name,
                        input: arguments,
                    };
                    self.chunk(out, &chunk);
                }
                if name == kubiya_actors::tools::EXECUTE_WORKFLOW
                    && let Ok(definition) = kubiya_actors::tools::workflow_from_argument(arguments)
                    && definition.is_object()
                {
                    self.show_workflow(&definition, "running");
                    self.send_workflow(out);
                }
            }
            TurnEvent::ToolResult {
                id,
                name,
                result,
                is_error,
            } => {
                let error = is_error.then(|| {
                    result["error"]
                        .as_str()
                        .map_or_else(|| result.to_string(), str::to_owned)
                });
                let chunk = match &error {
                    _ if result["declined"] == true => Chunk::ToolOutputDenied { tool_call_id: id },
                    Some(error) => Chunk::ToolOutputError {
                        tool_call_id: id,
                        error_text: error,
                    },
                    None => Chunk::ToolOutputAvailable {
                        tool_call_id: id,
                        output: result,
                    },
                };
                self.chunk(out, &chunk);
                if name == kubiya_actors::tools::VALIDATE_WORKFLOW && result["valid"] == true {
                    self.show_workflow(&result["workflow"], "valid");
                    self.send_workflow(out);
                }
            }
            TurnEvent::Workflow(definition) => {
                self.show_workflow(&definition.to_value(), "valid");
                self.send_workflow(out);
            }
            TurnEvent::Execution(execution)
                if matches!(execution.event, StepEvent::StepOutput { .. }) =>
            {
                let execution = serde_json::to_value(execution).unwrap_or_default();
                let output = DataPart {
                    kind: "data-step-output",
                    id: None,
                    data: json!({"step": execution["step"], "stream": execution["stream"],
                        "text": execution["text"]}),
                    transient: true,
                };
                self.chunk(out, &output);
            }
            TurnEvent::Execution(execution) => {
                let execution = &serde_json::to_value(execution).unwrap_or_default();
                if let Some(line) = readable::line(event) {
                    let log = DataPart {
                        kind: "data-step-log",
                        id: None,
                        data: json!({"step": execution["step"], "type": execution["type"],
                            "line": line.trim_end()}),
                        transient: true,
                    };
                    self.chunk(out, &log);
                }
                if let Some(workflow) = self.workflow.as_mut() {
                    workflow.apply(execution);
                    self.send_workflow(out);
                }
            }
            TurnEvent::ValidationFailed { .. } => {
                if let Some(data) = super::event_json(event) {
                    let part = DataPart {
                        kind: "data-validation",
                        id: None,
                        data,
                        transient: true,
                    };
                    self.chunk(out, &part);
                }
            }
            TurnEvent::ApprovalRequested {
                approval_id,
                tool_call_id,
                ..
            } => {
                let chunk = Chunk::ToolApprovalRequest {
                    approval_id,
                    tool_call_id,
                };
                self.chunk(out, &chunk);
                if let Some(workflow) = self.workflow.as_mut() {
                    workflow.status = "awaiting_approval".to_owned();
                    self.send_workflow(out);
                }
            }
            _ => {}
        }
    }
}

impl StreamEncoder for UiMessageEncoder {
    fn encode(&mut self, event: &TurnEvent, out: &mut BytesMut) {
        match event {
            TurnEvent::Text(text) => self.delta(out, OpenKind::Text, text),
            TurnEvent::Reasoning(text) => self.delta(out, OpenKind::Reasoning, text),
            TurnEvent::StepFinished { .. } => self.finish_step(out),
            TurnEvent::Finished { .. } => {
                if !self.started {
                    self.in_step(out);
                }
                self.finish_step(out);
                self.chunk(out, &Chunk::Finish);
                out.put_slice(b"data: [DONE]\n\n");
            }
            TurnEvent::Failed(error) => {
                if !self.started {
                    self.in_step(out);
                }
                self.close_open(out);
                let error = Chunk::Error {
                    error_text: &error.message,
                };
                self.chunk(out, &error);
                self.finish_step(out);
                self.chunk(out, &Chunk::Finish);
                out.put_slice(b"data: [DONE]\n\n");
            }
            activity => self.tool_activity(activity, out),
        }
    }

    fn heartbeat(&self) -> Option<&'static [u8]> {
        Some(super::SSE_HEARTBEAT)
    }
}
