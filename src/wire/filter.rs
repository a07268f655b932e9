//! The Compose API's `stream_filter`: which events a client wants, by kind and by importance.
//! Every event has an importance (see [`importance`], documented in the README); the filter
//! drops tool events when `include_tool_calls` is false, model reasoning (`thought` events)
//! unless `include_thoughts` is true, and whatever ranks below `min_importance`. The end of a
//! stream (`done`, `error`, the finish markers) always passes. [`FilteredEncoder`] applies it
//! in front of any wire encoder, so every output form filters the same way.

use bytes::BytesMut;
use kubiya_actors::session::TurnEvent;
use kubiya_actors::workflow::StepEvent;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::StreamEncoder;

/// How much an event matters to a person following the stream.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, Serialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Importance {
    #[default]
    Low,
    Medium,
    High,
}

/// `stream_filter` as the request sends it; unknown keys and values are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StreamFilter {
    /// Keep `tool_call` and `tool_result` events (default true).
    pub include_tool_calls: bool,
    /// Stream the model's reasoning as `thought` events (default false).
    pub include_thoughts: bool,
    /// Drop events that rank lower (default `low`: keep everything).
    pub min_importance: Importance,
}

impl Default for StreamFilter {
    fn default() -> Self {
        Self {
            include_tool_calls: true,
            include_thoughts: false,
            min_importance: Importance::Low,
        }
    }
}

/// An event's importance; `None` for the markers that end a model call or the stream, which
/// are never filtered.
pub fn importance(event: &TurnEvent) -> Option<Importance> {
    Some(match event {
        TurnEvent::Reasoning(_) | TurnEvent::ToolCall { .. } | TurnEvent::ToolResult { .. } => {
            Importance::Low
        }
        TurnEvent::Text(_) | TurnEvent::ValidationFailed { .. } => Importance::Medium,
        TurnEvent::Workflow(_) | TurnEvent::ApprovalRequested { .. } => Importance::High,
        TurnEvent::Execution(event) => match &event.event {
            StepEvent::StepRunning { .. } | StepEvent::StepOutput { .. } => Importance::Low,
            StepEvent::StepFailed {
                will_retry: false, ..
            }
            | StepEvent::WorkflowComplete { .. } => Importance::High,
            _ => Importance::Medium,
        },
        TurnEvent::StepFinished { .. } | TurnEvent::Finished { .. } | TurnEvent::Failed(_) => {
            return None;
        }
    })
}

impl StreamFilter {
    /// Whether the client wants this event.
    pub fn keeps(&self, event: &TurnEvent) -> bool {
        let Some(importance) = importance(event) else {
            return true;
        };
        let wanted_kind = match event {
            TurnEvent::ToolCall { .. } | TurnEvent::ToolResult { .. } => self.include_tool_calls,
            TurnEvent::Reasoning(_) => self.include_thoughts,
            _ => true,
        };
        wanted_kind && importance >= self.min_importance
    }
}

/// A wire encoder that only sees the events the filter keeps.
pub struct FilteredEncoder {
    inner: Box<dyn StreamEncoder>,
    filter: StreamFilter,
}

impl FilteredEncoder {
    pub fn new(inner: Box<dyn StreamEncoder>, filter: StreamFilter) -> Self {
        Self { inner, filter }
    }
}

impl StreamEncoder for FilteredEncoder {
    fn encode(&mut self, event: &TurnEvent, out: &mut BytesMut) {
        if self.filter.keeps(event) {
            self.inner.encode(event, out);
        }
    }

    fn heartbeat(&self) -> Option<&'static [u8]> {
        self.inner.heartbeat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(kind: &str, will_retry: bool) -> TurnEvent {
        super::super::test_execution_event(
            json!({"type": kind, "step": "s", "will_retry": will_retry}),
        )
    }

    #[test]
    fn importance_ranks_each_kind() {
        assert_eq!(
            importance(&TurnEvent::Reasoning("r".into())),
            Some(Importance::Low)
        );
        assert_eq!(
            importance(&TurnEvent::Text("t".into())),
            Some(Importance::Medium)
        );
        assert_eq!(
            importance(&step("step_running", false)),
            Some(Importance::Low)
        );
        assert_eq!(
            importance(&step("step_output", false)),
            Some(Importance::Low)
        );
        assert_eq!(
            importance(&step("step_complete", false)),
            Some(Importance::Medium)
        );
        assert_eq!(
            importance(&step("step_failed", true)),
            Some(Importance::Medium)
        );
        assert_eq!(
            importance(&step("step_failed", false)),
            Some(Importance::High)
        );
        assert_eq!(
            importance(&TurnEvent::Workflow(Box::default())),
            Some(Importance::High)
        );
    }

    #[test]
    fn unknown_keys_and_values_are_refused() {
        assert!(serde_json::from_value::<StreamFilter>(json!({"include_tools": true})).is_err());
        assert!(
            serde_json::from_value::<StreamFilter>(json!({"min_importance": "urgent"})).is_err()
        );
        assert_eq!(
            serde_json::from_value::<StreamFilter>(json!({})).unwrap(),
            StreamFilter::default()
        );
    }
}
