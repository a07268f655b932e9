//! The messages the `ExecutionWatcher` answers: from HTTP handlers, sessions, the MCP server
//! and the CLI ([`StartExecution`], [`Subscribe`], [`GetExecution`], [`CancelExecution`],
//! [`DrainExecutions`], [`ListExecutions`], [`GetWorkflow`], [`ListRunners`]); from its own runs, in order ([`RunStarted`], [`RunProgressed`]…,
//! [`RunFinished`]); and from an execution's publisher ([`ExecutionTakenOver`]).

use std::time::Duration;

use actix::{Message, Recipient};
use serde_json::{Map, Value};

use super::error::ExecutionError;
use super::state::{ExecutionEvent, ExecutionSnapshot, ExecutionSummary, Subscription};
use crate::limits::StreamPermit;
use crate::store::{ExecutionId, TenantId};
use crate::workflow::dsl::model::Workflow;
use crate::workflow::run::event::StepEvent;
use crate::workflow::run::outcome::RunOutcome;
use crate::workflow::run::runner::RunnerList;
use crate::workflow::run::status::ExecutionStatus;

/// Starts an execution. Validates first (for `local`, also that this host can run every
/// step); the run then proceeds on its own and this answers at once with status `queued`.
#[derive(Debug, Message)]
#[rtype(result = "Result<ExecutionSummary, ExecutionError>")]
pub struct StartExecution {
    pub tenant: TenantId,
    pub workflow: Workflow,
    pub params: Map<String, Value>,
    /// Overrides the workflow's `runner`; `local` or a Kubiya runner name.
    pub runner: Option<String>,
    /// The span the execution's trace span is a child of (`Span::none()` for none).
    pub trace: tracing::Span,
    /// The tenant's concurrent-execution slot, held until the run ends.
    pub permit: Option<StreamPermit>,
    /// Workflows the run's `run` steps may call by name (the session's own).
    pub library: Vec<Workflow>,
}

/// Sends `subscriber` every event after `after_seq`, then the live ones, ending with
/// `workflow_complete`.
#[derive(Message)]
#[rtype(result = "Result<Subscription, ExecutionError>")]
pub struct Subscribe {
    pub tenant: TenantId,
    pub execution_id: ExecutionId,
    pub after_seq: u64,
    pub subscriber: Recipient<ExecutionEvent>,
}

/// An execution's current state.
#[derive(Debug, Message)]
#[rtype(result = "Result<ExecutionSnapshot, ExecutionError>")]
pub struct GetExecution {
    pub tenant: TenantId,
    pub execution_id: ExecutionId,
}

/// The executions of a tenant this replica runs or remembers, newest first.
#[derive(Debug, Message)]
#[rtype(result = "Vec<ExecutionSummary>")]
pub struct ListExecutions {
    pub tenant: TenantId,
}

/// The workflow an execution of this replica ran, normalised.
#[derive(Debug, Message)]
#[rtype(result = "Result<Workflow, ExecutionError>")]
pub struct GetWorkflow {
    pub tenant: TenantId,
    pub execution_id: ExecutionId,
}

/// Asks an execution to stop; answers with its status at that moment (a finished one is
/// left as it is). The run then ends with status `cancelled`.
#[derive(Debug, Message)]
#[rtype(result = "Result<ExecutionStatus, ExecutionError>")]
pub struct CancelExecution {
    pub tenant: TenantId,
    pub execution_id: ExecutionId,
}

/// Cancels every running execution and answers when all runs have ended, or after `within`.
/// For shutdown: a step's processes must not outlive the server.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DrainExecutions {
    pub within: Duration,
}

/// The runners this server has and their state ([`Runners::list`](crate::workflow::run::runner::Runners::list)).
#[derive(Debug, Message)]
#[rtype(result = "RunnerList")]
pub struct ListRunners;

/// A run's runner began (sent by the run to its watcher).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct RunStarted {
    pub(super) execution_id: ExecutionId,
}

/// A run emitted an event.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct RunProgressed {
    pub(super) execution_id: ExecutionId,
    pub(super) event: StepEvent,
}

/// A run ended: its runner's outcome, from which the execution's final state and its
/// `workflow_complete` are derived.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct RunFinished {
    pub(super) execution_id: ExecutionId,
    pub(super) outcome: RunOutcome,
}

/// The publisher of an execution found that another replica declared it lost.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct ExecutionTakenOver {
    pub execution_id: ExecutionId,
}
