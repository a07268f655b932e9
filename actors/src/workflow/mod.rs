//! Workflows: the DSL's data model, its validation, the runners and the execution actor.
//!
//! - [`model`]: the serde model of the workflow JSON (and YAML) the original SDK produces.
//! - [`validate`]: every problem at once, with JSON paths (raw type checks first, in
//!   `shape`); normalisation; what the local runner can run on this host.
//! - [`local`]: the local runner, a tokio DAG scheduler the `ExecutionWatcher` actor drives,
//!   with [`step_runner`] running each step, [`process`] owning child processes, [`sandbox`]
//!   wrapping them in bubblewrap (its filesystem in [`sandbox_view`], its filter in
//!   [`seccomp`], ids and rlimits in [`confinement`]), [`limits`] bounding what an execution
//!   consumes, [`shell_env`] handing values to shells as environment variables, and
//!   [`http`] the hook for `http` steps, whose destinations [`egress`] checks.
//! - [`event`]: the step and workflow events a run emits.
//! - [`watcher`]: the `ExecutionWatcher` actor, which runs executions on a runner, keeps
//!   each one's state and numbered event log ([`execution`]) and fans events out to
//!   subscribers; [`kubiya`] is the platform runner it can use instead of the local one, and
//!   [`awc_http`] the real HTTP client for `http` steps.
//! - [`shared`]: executions shared between replicas through Redis; the watcher writes the
//!   ones it runs with a `publisher` and reads the others with a `follower`.
//! - [`template`] (`${VAR}`), [`graph`] (dependencies) and [`host`] (what this host offers)
//!   serve the others.

pub mod awc_http;
pub mod confinement;
pub mod egress;
pub mod event;
pub mod execution;
mod follower;
pub mod graph;
pub mod host;
pub mod http;
pub mod kubiya;
pub mod limits;
pub mod live_output;
pub mod local;
pub mod model;
pub mod model_step;
mod parallel;
pub mod process;
mod publisher;
pub mod sandbox;
pub mod sandbox_view;
mod seccomp;
pub mod secrets;
mod shape;
pub mod shared;
mod shell_env;
mod spans;
mod step_runner;
pub mod sub_workflow;
pub mod template;
pub mod validate;
pub mod watcher;

#[cfg(test)]
mod dsl_tests;
#[cfg(test)]
mod local_tests;
#[cfg(test)]
mod validate_tests;

pub use awc_http::AwcStepClient;
pub use confinement::HostIds;
pub use egress::EgressPolicy;
pub use event::{OutputStream, RunStatus, StepEvent};
pub use execution::{
    ExecutionEvent, ExecutionSnapshot, ExecutionStatus, ExecutionSummary, StepSnapshot, StepState,
    Subscription,
};
pub use host::HostCapabilities;
pub use http::{HttpStepClient, HttpStepRequest, HttpStepResponse, PlainHttpClient};
pub use kubiya::{KubiyaConfig, KubiyaRunner, PlatformRun};
pub use limits::{StepLimits, WorkflowLimits};
pub use local::{LocalRunner, RunOptions, RunOutcome, RunRequest, StepOutcome, StepStatus};
pub use model::{Workflow, WorkflowKind, WorkflowParseError, yaml_document};
pub use shared::{LOST_REASON, SharedConfig};
pub use validate::{
    ValidationError, check_runnable_locally, normalised, validate, validate_text, validate_value,
};
pub use watcher::{
    CancelExecution, DrainExecutions, ExecutionError, ExecutionWatcher, GetExecution, LOCAL_RUNNER,
    StartExecution, Subscribe, WatcherConfig,
};
