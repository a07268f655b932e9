//! The one seam between executions and the ways a workflow runs. [`Runners`] holds the
//! runners this server has (the [`LocalRunner`] always, the [`KubiyaRunner`] when a Kubiya
//! API key is configured), picks the [`Runner`] an execution uses, checks a workflow against
//! what that runner can run, and starts a [`Run`] on it. The `ExecutionWatcher` knows runners
//! only through this file.

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::event::{StepEvent, format_duration, now_millis};
use super::kubiya::{KubiyaConfig, KubiyaRunner, PlatformRun};
use super::local::limits::check_workflow_limits;
use super::local::runnable::check_runnable_locally;
use super::local::scheduler::{LocalRunner, RunOptions, RunRequest};
use super::outcome::RunOutcome;
use crate::workflow::dsl::error::ValidationError;
use crate::workflow::dsl::model::Workflow;
use crate::workflow::run::status::ExecutionStatus;

/// The runner name that means "this host".
pub const LOCAL_RUNNER: &str = "local";

/// Which runner an execution uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    Local,
    /// A Kubiya platform runner, by name.
    Kubiya(String),
}

impl Runner {
    /// The name executions report (`local`, or the platform runner's name).
    pub fn name(&self) -> &str {
        match self {
            Self::Local => LOCAL_RUNNER,
            Self::Kubiya(name) => name,
        }
    }
}

/// One run, whichever runner takes it.
#[derive(Debug)]
pub struct Run {
    pub workflow: Workflow,
    /// Run-time values; they override param defaults.
    pub params: Map<String, Value>,
    pub events: UnboundedSender<StepEvent>,
    /// Cancelling it stops the run (status `cancelled`).
    pub cancel: CancellationToken,
    /// Workflows `run` steps may call by name (local runs only).
    pub library: Vec<Workflow>,
}

/// The runners of this server. Cheap to clone; not `Send` (the platform runner's `awc`
/// client is not), so it lives on the `ExecutionWatcher`'s arbiter.
#[derive(Clone)]
pub struct Runners {
    local: LocalRunner,
    /// Built on the watcher's arbiter: its `awc` client is not `Send`.
    kubiya: Option<Rc<KubiyaRunner>>,
    /// The runner used when neither the request nor the workflow names one.
    default_runner: String,
}

impl Runners {
    /// Builds the runners; call it on the arbiter they will run on.
    pub fn new(local: RunOptions, kubiya: Option<KubiyaConfig>, default_runner: String) -> Self {
        Self {
            local: LocalRunner::new(local),
            kubiya: kubiya.map(|kubiya| Rc::new(KubiyaRunner::new(kubiya))),
            default_runner,
        }
    }

    /// The request's runner, else the workflow's, else the configured default; `Err` with
    /// the name when it needs the Kubiya platform and none is configured.
    pub fn choose(&self, requested: Option<&str>, workflow: &Workflow) -> Result<Runner, String> {
        let name = [requested, workflow.runner.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|name| !name.is_empty())
            .unwrap_or(&self.default_runner);
        if name == LOCAL_RUNNER {
            Ok(Runner::Local)
        } else if self.kubiya.is_some() {
            Ok(Runner::Kubiya(name.to_owned()))
        } else {
            Err(name.to_owned())
        }
    }

    /// What `runner` cannot run of an already valid workflow: for the local runner, the
    /// workflow limits and what this host lacks (probing it awaits a process, so this is a
    /// future); the platform checks its own.
    pub async fn check(
        &self,
        runner: &Runner,
        workflow: &Workflow,
        library: &[Workflow],
    ) -> Vec<ValidationError> {
        match runner {
            Runner::Local => {
                let host = self.local.host_capabilities(workflow, library).await;
                let mut problems =
                    check_workflow_limits(workflow, &self.local.options().workflow_limits);
                problems.extend(check_runnable_locally(workflow, &host));
                problems
            }
            Runner::Kubiya(_) => Vec::new(),
        }
    }

    /// Starts `run` on `runner`. The future ends when the run has sent its last event,
    /// `workflow_complete`; the local runner also returns each step's final state.
    pub fn start(&self, runner: Runner, run: Run) -> LocalBoxFuture<'static, Option<RunOutcome>> {
        match runner {
            Runner::Local => {
                let local = self.local.clone();
                let request = RunRequest {
                    workflow: run.workflow,
                    params: run.params,
                    events: run.events,
                    cancel: run.cancel,
                    library: run.library,
                };
                Box::pin(async move { Some(local.run(request).await) })
            }
            Runner::Kubiya(name) => {
                let Some(kubiya) = self.kubiya.clone() else {
                    // `choose` never picks the platform without one; say so in the run's
                    // events rather than panic should that ever change.
                    return Box::pin(async move {
                        let _ = run.events.send(StepEvent::WorkflowComplete {
                            workflow: run.workflow.name,
                            status: ExecutionStatus::Failed,
                            duration: format_duration(Duration::ZERO),
                            duration_ms: 0,
                            error: Some(format!(
                                "runner '{name}' needs the Kubiya platform, which is not configured"
                            )),
                            timestamp: now_millis(),
                        });
                        None
                    });
                };
                let run = PlatformRun {
                    workflow: run.workflow,
                    params: run.params,
                    runner: name,
                    events: run.events,
                    cancel: run.cancel,
                };
                Box::pin(async move {
                    kubiya.run(run).await;
                    None
                })
            }
        }
    }
}
