//! The trace spans of one turn, following OpenTelemetry's GenAI semantic conventions: the
//! turn (`invoke_agent`), a child per model call (`chat {model}`, open from the request until
//! the stream's last event, with the token usage), and a child per tool call
//! (`execute_tool {name}`), which is the parent of the workflow execution it starts. The
//! turn's own parent is the span current when the `Session` is made: the HTTP request's.
//! All use the [`crate::TRACE`] target, so they cost nothing unless traces are exported.

use tracing::Span;
use tracing::field::Empty;

use super::store::SessionKey;
use crate::provider::{FinishReason, ToolCall, Usage};

/// The agent's name in traces, as clients know the model.
const AGENT: &str = "kubiya-workflow-agent";

pub struct TurnSpans {
    turn: Span,
    model_call: Option<Span>,
    tool_call: Option<Span>,
}

impl TurnSpans {
    /// The spans of a turn of the session `key`.
    pub fn new(key: &SessionKey) -> Self {
        let turn = tracing::info_span!(
            target: crate::TRACE,
            "turn",
            otel.name = %format_args!("invoke_agent {AGENT}"),
            otel.status_code = Empty,
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = AGENT,
            gen_ai.conversation.id = %key.id,
            kubiya.tenant = %key.tenant,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            error.type = Empty,
        );
        Self {
            turn,
            model_call: None,
            tool_call: None,
        }
    }

    /// A model call was sent to `system` (the vendor) for `model`.
    pub fn model_call_started(&mut self, system: &str, model: &str) {
        self.model_call = Some(tracing::info_span!(
            target: crate::TRACE,
            parent: &self.turn,
            "model call",
            otel.name = %format_args!("chat {model}"),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.system = system,
            gen_ai.provider.name = system,
            gen_ai.request.model = model,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.response.finish_reasons = Empty,
            error.type = Empty,
        ));
    }

    pub fn model_usage(&self, usage: Usage) {
        if let Some(span) = &self.model_call {
            record_usage(span, usage);
        }
    }

    /// The stream ended: the model call's span closes.
    pub fn model_call_finished(&mut self, reason: &FinishReason) {
        if let Some(span) = self.model_call.take() {
            let reason = match reason {
                FinishReason::Stop => "stop",
                FinishReason::Length => "length",
                FinishReason::ToolCalls => "tool_calls",
                FinishReason::ContentFilter => "content_filter",
                FinishReason::Other(other) => other,
            };
            span.record("gen_ai.response.finish_reasons", reason);
        }
    }

    pub fn tool_call_started(&mut self, call: &ToolCall) {
        self.tool_call = Some(tracing::info_span!(
            target: crate::TRACE,
            parent: &self.turn,
            "tool call",
            otel.name = %format_args!("execute_tool {}", call.name),
            otel.status_code = Empty,
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = %call.name,
            gen_ai.tool.call.id = %call.id,
            gen_ai.tool.type = "function",
        ));
    }

    pub fn tool_call_finished(&mut self, is_error: bool) {
        if let Some(span) = self.tool_call.take()
            && is_error
        {
            span.record("otel.status_code", "ERROR");
        }
    }

    /// The parent of what the turn starts now: the tool call in progress, else the turn.
    pub fn current(&self) -> Span {
        self.tool_call.as_ref().unwrap_or(&self.turn).clone()
    }

    pub fn turn_finished(&self, usage: Usage) {
        record_usage(&self.turn, usage);
    }

    /// The turn failed (`kind` of error): every open span says so, and closes with it.
    pub fn failed(&mut self, kind: &str) {
        for span in [
            self.model_call.take(),
            self.tool_call.take(),
            Some(self.turn.clone()),
        ]
        .into_iter()
        .flatten()
        {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", kind);
        }
    }
}

/// Token counts as OTLP integers (`u64` fields would be exported as strings).
fn record_usage(span: &Span, usage: Usage) {
    let count = |tokens: u64| i64::try_from(tokens).unwrap_or(i64::MAX);
    span.record("gen_ai.usage.input_tokens", count(usage.input));
    span.record("gen_ai.usage.output_tokens", count(usage.output));
}
