//! [`ExecutionError`]: why the `ExecutionWatcher` refused a request about an execution. The
//! HTTP layer maps each kind to its error code.

use super::shared::SharedError;
use crate::store::ExecutionId;
use crate::workflow::dsl::error::ValidationError;

/// Why an execution request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    /// No such execution for this tenant (another tenant's counts as none).
    #[error("no execution '{0}'")]
    NotFound(String),
    /// The workflow (or its params) cannot run as given; every problem, with paths.
    #[error("the workflow is invalid: {}", summarise(.0))]
    Invalid(Vec<ValidationError>),
    /// The named runner needs the Kubiya platform, which is not configured.
    #[error(
        "runner '{0}' runs on the Kubiya platform, which needs an API key (set KUBIYA_API_KEY); use runner \"local\" to run on this host"
    )]
    RunnerUnavailable(String),
    /// The shared store, where executions of other replicas are, cannot be reached.
    #[error("executions shared between replicas cannot be read right now: {0}")]
    Unavailable(String),
}

impl ExecutionError {
    /// The execution a client named by `id`: one that breaks the id rule names none.
    pub fn known_id(id: &str) -> Result<ExecutionId, Self> {
        ExecutionId::parse(id).map_err(|_| Self::NotFound(id.to_owned()))
    }
}

impl From<SharedError> for ExecutionError {
    fn from(error: SharedError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

fn summarise(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
