//! The events a workflow run emits, flat as the original agent server documents them
//! (`{"type":"step_running","step":"build","message":…}`), plus a timestamp. Runners send
//! the step events as they happen; the `ExecutionWatcher` adds the execution id and sequence
//! number, ends them with the `workflow_complete` derived from the run's outcome, and fans
//! them out.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::status::ExecutionStatus;

/// Which of a step's output streams a [`StepEvent::StepOutput`] chunk was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// One thing that happened during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepEvent {
    /// A step started (each attempt of a retried step starts again).
    StepRunning {
        step: String,
        message: String,
        /// Unix time in milliseconds.
        timestamp: u64,
    },
    /// Output a running step wrote, as it wrote it: whole lines (a line longer than the live
    /// chunk limit is cut), secrets masked, at a bounded rate. The step's whole output still
    /// arrives with its `step_complete` or `step_failed`.
    StepOutput {
        step: String,
        stream: OutputStream,
        text: String,
        timestamp: u64,
    },
    /// A step finished successfully.
    StepComplete {
        step: String,
        /// Captured stdout (size-capped).
        output: String,
        /// Human-readable, e.g. `"1.2s"`.
        duration: String,
        duration_ms: u64,
        timestamp: u64,
    },
    /// An attempt of a step failed; `will_retry` tells whether another attempt follows.
    StepFailed {
        step: String,
        error: String,
        will_retry: bool,
        timestamp: u64,
    },
    /// A step did not run: a precondition was unmet, a dependency failed, or the run stopped.
    StepSkipped {
        step: String,
        reason: String,
        timestamp: u64,
    },
    /// The run ended; always the last event, exactly once. Runners never send it: it is
    /// derived from the outcome a runner returns ([`RunOutcome::completion`](super::outcome::RunOutcome::completion)),
    /// or says an execution was lost.
    WorkflowComplete {
        workflow: String,
        status: ExecutionStatus,
        duration: String,
        duration_ms: u64,
        /// Why the run failed or stopped, when it did not succeed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        timestamp: u64,
    },
}

impl StepEvent {
    /// The event's `type` as it appears on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::StepRunning { .. } => "step_running",
            Self::StepOutput { .. } => "step_output",
            Self::StepComplete { .. } => "step_complete",
            Self::StepFailed { .. } => "step_failed",
            Self::StepSkipped { .. } => "step_skipped",
            Self::WorkflowComplete { .. } => "workflow_complete",
        }
    }

    /// The step the event is about, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            Self::StepRunning { step, .. }
            | Self::StepOutput { step, .. }
            | Self::StepComplete { step, .. }
            | Self::StepFailed { step, .. }
            | Self::StepSkipped { step, .. } => Some(step),
            Self::WorkflowComplete { .. } => None,
        }
    }

    pub fn timestamp(&self) -> u64 {
        match self {
            Self::StepRunning { timestamp, .. }
            | Self::StepOutput { timestamp, .. }
            | Self::StepComplete { timestamp, .. }
            | Self::StepFailed { timestamp, .. }
            | Self::StepSkipped { timestamp, .. }
            | Self::WorkflowComplete { timestamp, .. } => *timestamp,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// `"1.2s"`, the original's duration style.
pub fn format_duration(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// Whole milliseconds, saturating.
pub fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_serialize_flat() {
        let event = StepEvent::StepFailed {
            step: "build".to_owned(),
            error: "exit status 1".to_owned(),
            will_retry: true,
            timestamp: 5,
        };
        assert_eq!(
            serde_json::to_value(&event).expect("serializes"),
            json!({"type":"step_failed","step":"build","error":"exit status 1","will_retry":true,"timestamp":5})
        );
        let done = StepEvent::WorkflowComplete {
            workflow: "w".to_owned(),
            status: ExecutionStatus::Success,
            duration: format_duration(Duration::from_millis(1200)),
            duration_ms: 1200,
            error: None,
            timestamp: 6,
        };
        assert_eq!(
            serde_json::to_value(&done).expect("serializes"),
            json!({"type":"workflow_complete","workflow":"w","status":"success","duration":"1.2s","duration_ms":1200,"timestamp":6})
        );
    }
}
