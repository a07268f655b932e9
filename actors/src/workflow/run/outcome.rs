//! How a run and each of its steps ended: [`RunOutcome`] and [`StepOutcome`]. A runner's
//! outcome is its final word on a run: every runner returns one when its run ends (and sends
//! no `workflow_complete` of its own); the `ExecutionWatcher` folds it into the execution it
//! keeps, and the run's final event, `workflow_complete`, is derived from it here
//! ([`RunOutcome::completion`]).

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

use crate::workflow::dsl::error::ValidationError;
use crate::workflow::run::event::{StepEvent, duration_millis, format_duration, now_millis};
use crate::workflow::run::status::{ExecutionStatus, StepStatus};

/// A step's final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    pub status: StepStatus,
    /// Captured stdout, trimmed (size-capped, secrets masked).
    pub output: String,
    pub stderr: String,
    /// Why it failed, was skipped or cancelled.
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub attempts: u32,
    pub duration: Duration,
}

impl StepOutcome {
    pub(crate) fn pending() -> Self {
        Self {
            status: StepStatus::Pending,
            output: String::new(),
            stderr: String::new(),
            error: None,
            exit_code: None,
            attempts: 0,
            duration: Duration::ZERO,
        }
    }

    pub(crate) fn skipped(reason: String) -> Self {
        Self {
            status: StepStatus::Skipped,
            error: Some(reason),
            ..Self::pending()
        }
    }
}

/// What a run ended with: how it ended and why, and what a runner that knows its steps' final
/// states (the local one) says of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub status: ExecutionStatus,
    /// Why it did not succeed.
    pub error: Option<String>,
    /// Problems found before anything ran (invalid workflow, unrunnable steps).
    pub validation_errors: Vec<ValidationError>,
    /// Every step, in declaration order.
    pub steps: IndexMap<String, StepOutcome>,
    /// The `handlerOn` steps that ran, by event (`success`, `failure`, `cancel`, `exit`).
    pub handlers: IndexMap<String, StepOutcome>,
    /// `output` variables captured by successful steps.
    pub outputs: IndexMap<String, String>,
    pub duration: Duration,
    /// Whether steps ran inside the sandbox.
    pub sandboxed: bool,
    /// The work directory, when [`RunOptions::keep_work_dir`](super::local::scheduler::RunOptions::keep_work_dir) kept it.
    pub work_dir: Option<PathBuf>,
}

impl RunOutcome {
    /// A run that ended `status` (with `error` saying why, when it did not succeed) after
    /// `duration`, from a runner whose steps' states are all in its events.
    pub fn ended(status: ExecutionStatus, error: Option<String>, duration: Duration) -> Self {
        Self {
            status,
            error,
            validation_errors: Vec::new(),
            steps: IndexMap::new(),
            handlers: IndexMap::new(),
            outputs: IndexMap::new(),
            duration,
            sandboxed: false,
            work_dir: None,
        }
    }

    /// The run's final event, as every client sees it: `workflow_complete` with how the run
    /// of `workflow` ended, stamped now.
    pub fn completion(&self, workflow: &str) -> StepEvent {
        StepEvent::WorkflowComplete {
            workflow: workflow.to_owned(),
            status: self.status,
            duration: format_duration(self.duration),
            duration_ms: duration_millis(self.duration),
            error: self.error.clone(),
            timestamp: now_millis(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_final_event_says_how_the_run_ended_and_why() {
        let outcome = RunOutcome::ended(
            ExecutionStatus::Failed,
            Some("step 'a' failed: exit status 1".to_owned()),
            Duration::from_millis(1200),
        );
        let mut event = serde_json::to_value(outcome.completion("w")).expect("serializes");
        assert!(event["timestamp"].as_u64().is_some_and(|at| at > 0));
        event
            .as_object_mut()
            .expect("an object")
            .remove("timestamp");
        assert_eq!(
            event,
            json!({"type": "workflow_complete", "workflow": "w", "status": "failed",
                   "duration": "1.2s", "duration_ms": 1200,
                   "error": "step 'a' failed: exit status 1"})
        );
    }
}
