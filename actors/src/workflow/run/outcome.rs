//! How a run and each of its steps ended: [`RunOutcome`], [`StepOutcome`] and
//! [`StepStatus`]. The local runner returns a run's outcome; the `ExecutionWatcher` folds it
//! into the execution it keeps.

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

use crate::workflow::dsl::error::ValidationError;
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

/// What a run ended with.
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
