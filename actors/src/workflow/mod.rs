//! Workflows, in three rooms:
//!
//! - [`dsl`]: the language — the serde model of the workflow JSON (and YAML) the original SDK
//!   produces, its validation (every problem at once, with JSON paths) and normalisation,
//!   `${VAR}` templates and the step dependency graph.
//! - [`run`]: the runners — the local one, a tokio DAG scheduler with sandboxed steps, and the
//!   Kubiya platform one — with the step events they emit and the outcome a run ends with.
//! - [`execution`]: the `ExecutionWatcher` actor, which runs executions on a runner, keeps
//!   each one's state and numbered event log, fans events out to subscribers and shares
//!   executions between replicas through Redis.
//!
//! `dsl` imports neither of the others; `run` imports `dsl`; `execution` imports both.
//! The items below are what the rest of the server uses.

pub mod dsl;
pub mod execution;
pub mod run;

pub use dsl::error::ValidationError;
pub use dsl::model::{Workflow, WorkflowKind, WorkflowParseError, yaml_document};
pub use dsl::validate::{
    Validated, normalised, validate, validate_document, validate_text, validate_value,
};
pub use execution::error::ExecutionError;
pub use execution::feed::{EventFeed, follow};
pub use execution::messages::{
    CancelExecution, DrainExecutions, GetExecution, GetWorkflow, ListExecutions, ListRunners,
    StartExecution, Subscribe,
};
pub use execution::shared::{LOST_REASON, SharedConfig};
pub use execution::state::{
    ExecutionEvent, ExecutionSnapshot, ExecutionSummary, StepSnapshot, Subscription,
};
pub use execution::watcher::{ExecutionWatcher, WatcherConfig};
pub use run::event::{OutputStream, StepEvent};
pub use run::http::awc::AwcStepClient;
pub use run::http::egress::EgressPolicy;
pub use run::http::{HttpStepClient, HttpStepRequest, HttpStepResponse, PlainHttpClient};
pub use run::kubiya::{KubiyaConfig, KubiyaRunner, PlatformRun};
pub use run::local::host::HostCapabilities;
pub use run::local::limits::{StepLimits, WorkflowLimits};
pub use run::local::runnable::check_runnable_locally;
pub use run::local::scheduler::{LocalRunner, RunOptions, RunRequest};
pub use run::outcome::{RunOutcome, StepOutcome};
pub use run::runner::{LOCAL_RUNNER, RunnerInfo, RunnerKind, RunnerList, RunnerState};
pub use run::sandbox::confinement::HostIds;
pub use run::status::{ExecutionStatus, StepStatus};
