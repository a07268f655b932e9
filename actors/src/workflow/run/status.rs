//! The one status vocabulary of workflows: where an execution is in its life
//! ([`ExecutionStatus`], whose finished values are also how a run ended: runners report them
//! in `workflow_complete`), and where a step is ([`StepStatus`], which the events, a run's
//! outcome and an execution's snapshot all speak).

use serde::{Deserialize, Serialize};

/// Where an execution is in its life; a run ends `success`, `failed`, `cancelled` or `lost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Accepted; the runner has not started yet.
    Queued,
    Running,
    Success,
    Failed,
    Cancelled,
    /// The replica running it stopped before it ended; another replica, sharing the execution
    /// through Redis, said so once the owner's heartbeat lapsed. Runners never report it.
    Lost,
}

impl ExecutionStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::Cancelled | Self::Lost
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Lost => "lost",
        }
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Not started (or never: the run stopped or failed before it).
    Pending,
    Running,
    Success,
    Failed,
    Skipped,
    Cancelled,
}
