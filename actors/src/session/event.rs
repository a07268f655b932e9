//! What a turn produces, in order, independent of any wire format: text and reasoning
//! deltas, the tool calls the agent made and their results, live execution events, a marker
//! per model step, and exactly one terminal event (`Finished` or `Failed`).

use serde_json::Value;

use crate::provider::{FinishReason, ProviderError, Usage};
use crate::workflow::{ExecutionEvent, ValidationError, Workflow};

#[derive(Debug, Clone, PartialEq)]
pub enum TurnEvent {
    Text(String),
    Reasoning(String),
    ToolCall {
        id: String,
        name: String,
        arguments: Value,
    },
    ToolResult {
        id: String,
        name: String,
        result: Value,
        is_error: bool,
    },
    /// A validated workflow, normalised (the Compose API's result); boxed, as it is much
    /// larger than the other events.
    Workflow(Box<Workflow>),
    /// A proposed workflow did not validate; `attempt` counts from 1. The errors go back to
    /// the model for the next attempt.
    ValidationFailed {
        errors: Vec<ValidationError>,
        attempt: u32,
    },
    /// A workflow execution event; the wire encoders write it flat, as the original's
    /// documents show it (`{"type":"step_running","step":..,"execution_id":..,"seq":..}`).
    Execution(Box<ExecutionEvent>),
    /// The agent wants to run a workflow and waits for the user: the `execute_workflow` call
    /// `tool_call_id` (already sent as a `ToolCall`) runs once the next turn approves it.
    ApprovalRequested {
        approval_id: String,
        tool_call_id: String,
        /// The workflow's name, to ask about.
        workflow: String,
    },
    /// One model call ended; `usage` is that call's.
    StepFinished {
        reason: FinishReason,
        usage: Usage,
    },
    /// The turn is stored; `usage` sums every model call of the turn.
    Finished {
        reason: FinishReason,
        usage: Usage,
    },
    Failed(TurnError),
}

impl TurnEvent {
    pub fn is_terminal(&self) -> bool {
        matches!(self, TurnEvent::Finished { .. } | TurnEvent::Failed(_))
    }
}

/// Why a turn failed, classified for the HTTP layer's status table.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnError {
    pub kind: TurnErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnErrorKind {
    /// The provider is rate limiting us.
    RateLimited,
    /// The provider timed out.
    UpstreamTimeout,
    /// The provider failed, refused our key or broke its protocol.
    Upstream,
    /// The session store could not be reached: the turn was not kept.
    StoreUnavailable,
    /// The server is shutting down.
    Draining,
    /// No valid workflow came out of the refinement loop.
    Unprocessable,
    /// The whole turn took longer than it may.
    TimedOut,
}

impl From<ProviderError> for TurnError {
    fn from(error: ProviderError) -> Self {
        let kind = match error {
            ProviderError::RateLimited { .. } => TurnErrorKind::RateLimited,
            ProviderError::Timeout { .. } => TurnErrorKind::UpstreamTimeout,
            _ => TurnErrorKind::Upstream,
        };
        TurnError {
            kind,
            message: error.to_string(),
        }
    }
}
