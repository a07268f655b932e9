//! The one seam between executions and the ways a workflow runs. [`Runners`] holds the
//! runners this server has (the [`LocalRunner`] always, the [`KubiyaRunner`] when a Kubiya
//! API key is configured), picks the [`Runner`] an execution uses, checks a workflow against
//! what that runner can run, starts a [`Run`] on it, and says which runners there are and
//! their state ([`RunnerList`], what every `list_runners` answers). The `ExecutionWatcher`
//! knows runners only through this file.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::event::StepEvent;
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

/// The runners this server has and the state of each, as `list_runners` (the chat agent's
/// tool and our MCP server's) answers: `{"runners": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunnerList {
    pub runners: Vec<RunnerInfo>,
}

/// One runner in a [`RunnerList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RunnerInfo {
    /// What `runner` names to run on it (`local`; for the platform, any Kubiya runner).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: RunnerKind,
    pub status: RunnerState,
    pub description: String,
    /// Whether runs that name no runner go to it.
    pub default: bool,
    /// How steps are kept apart from the host (the local runner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Whether steps may reach the network (the local runner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
}

/// What kind of runner a [`RunnerInfo`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunnerKind {
    /// This host.
    Local,
    /// The Kubiya platform's runners.
    KubiyaHosted,
}

/// Whether a runner can take runs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunnerState {
    /// It runs workflows now.
    Available,
    /// It refuses runs now; the description says why.
    Unavailable,
    /// Its platform is configured; whether a named runner exists, the platform says per run.
    Configured,
}

/// How old a sandbox probe's answer may be before a list probes again, on the side (that
/// list still gets the answer at hand, so only the first list ever waits for a probe):
/// probing starts a process, and the answer changes only when the host does.
const SANDBOX_PROBE_FRESH_FOR: Duration = Duration::from_secs(10);

/// A sandbox probe's answer, when it was given, and whether a newer one is on its way.
#[derive(Debug, Clone)]
struct SandboxProbe {
    at: Instant,
    answer: Result<(), String>,
    refreshing: bool,
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
    /// The last sandbox probe, shared by the clones.
    sandbox_probe: Rc<RefCell<Option<SandboxProbe>>>,
}

impl Runners {
    /// Builds the runners; call it on the arbiter they will run on.
    pub fn new(local: RunOptions, kubiya: Option<KubiyaConfig>, default_runner: String) -> Self {
        Self {
            local: LocalRunner::new(local),
            kubiya: kubiya.map(|kubiya| Rc::new(KubiyaRunner::new(kubiya))),
            default_runner,
            sandbox_probe: Rc::default(),
        }
    }

    /// The runners this server has and their state now: the local runner (available when
    /// steps can run sandboxed, or unsandboxed runs are allowed), then the Kubiya platform
    /// when a key is configured.
    pub async fn list(&self) -> RunnerList {
        let options = self.local.options();
        let sandbox = self.probe_sandbox().await;
        let (status, isolation, description) = match sandbox {
            Ok(()) => (
                RunnerState::Available,
                "bubblewrap".to_owned(),
                "This host: each step runs in its own sandbox and private work directory.",
            ),
            Err(_) if options.allow_unsandboxed => (
                RunnerState::Available,
                "none (bubblewrap unavailable)".to_owned(),
                "This host: steps run unsandboxed (allowed by runner.local.allow_unsandboxed) in a private work directory.",
            ),
            Err(reason) => (
                RunnerState::Unavailable,
                format!("bubblewrap unavailable: {reason}"),
                "This host: refuses runs, as steps cannot be sandboxed here.",
            ),
        };
        let mut runners = vec![RunnerInfo {
            name: LOCAL_RUNNER.to_owned(),
            kind: RunnerKind::Local,
            status,
            description: description.to_owned(),
            default: self.default_runner == LOCAL_RUNNER,
            isolation: Some(isolation),
            network: Some(options.allow_network),
        }];
        if self.kubiya.is_some() {
            runners.push(RunnerInfo {
                name: "kubiya".to_owned(),
                kind: RunnerKind::KubiyaHosted,
                status: RunnerState::Configured,
                description: "The Kubiya platform's runners (KUBIYA_API_KEY is set): name one as the runner to run there.".to_owned(),
                default: self.default_runner != LOCAL_RUNNER,
                isolation: None,
                network: None,
            });
        }
        RunnerList { runners }
    }

    /// Whether steps can run sandboxed here: the last probe's answer, probing again on the
    /// side once it is older than [`SANDBOX_PROBE_FRESH_FOR`]; the first call waits for one.
    async fn probe_sandbox(&self) -> Result<(), String> {
        let known = self.sandbox_probe.borrow().clone();
        let Some(known) = known else {
            return self.probe_sandbox_now().await;
        };
        if known.at.elapsed() >= SANDBOX_PROBE_FRESH_FOR && !known.refreshing {
            if let Some(probe) = self.sandbox_probe.borrow_mut().as_mut() {
                probe.refreshing = true;
            }
            let runners = self.clone();
            actix::spawn(async move {
                // Kept for the next list.
                let _ = runners.probe_sandbox_now().await;
            });
        }
        known.answer
    }

    /// Probes the sandbox now and keeps the answer.
    async fn probe_sandbox_now(&self) -> Result<(), String> {
        let answer = self.local.probe_sandbox().await;
        *self.sandbox_probe.borrow_mut() = Some(SandboxProbe {
            at: Instant::now(),
            answer: answer.clone(),
            refreshing: false,
        });
        answer
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

    /// Starts `run` on `runner`. The future ends with the run's outcome, the runner's final
    /// word, once the run has sent its last step event; a runner that dies instead (panics)
    /// ends the run failed, saying so.
    pub fn start(&self, runner: Runner, run: Run) -> LocalBoxFuture<'static, RunOutcome> {
        let running: LocalBoxFuture<'static, RunOutcome> = match runner {
            Runner::Local => {
                let local = self.local.clone();
                let request = RunRequest {
                    workflow: run.workflow,
                    params: run.params,
                    events: run.events,
                    cancel: run.cancel,
                    library: run.library,
                };
                Box::pin(async move { local.run(request).await })
            }
            // `choose` never picks the platform without one; say so in the outcome rather
            // than panic should that ever change.
            Runner::Kubiya(name) => match self.kubiya.clone() {
                None => Box::pin(std::future::ready(RunOutcome::ended(
                    ExecutionStatus::Failed,
                    Some(format!(
                        "runner '{name}' needs the Kubiya platform, which is not configured"
                    )),
                    Duration::ZERO,
                ))),
                Some(kubiya) => {
                    let run = PlatformRun {
                        workflow: run.workflow,
                        params: run.params,
                        runner: name,
                        events: run.events,
                        cancel: run.cancel,
                    };
                    Box::pin(async move { kubiya.run(run).await })
                }
            },
        };
        Box::pin(final_word(running))
    }
}

/// Why a run ended failed when its runner died without returning an outcome.
pub const RUNNER_DIED: &str = "the runner stopped without reporting the end of the run";

/// The outcome `running` returns; if it panics instead, a failed outcome saying the runner
/// died, so that the execution still ends (and the watcher running it lives on).
pub async fn final_word(running: impl Future<Output = RunOutcome>) -> RunOutcome {
    let started = Instant::now();
    match AssertUnwindSafe(running).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!("a workflow runner panicked; its run ends failed");
            RunOutcome::ended(
                ExecutionStatus::Failed,
                Some(RUNNER_DIED.to_owned()),
                started.elapsed(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Options of a host without bubblewrap that allows unsandboxed runs.
    fn without_bubblewrap() -> RunOptions {
        RunOptions {
            bubblewrap: PathBuf::from("/nonexistent/bwrap"),
            allow_unsandboxed: true,
            ..RunOptions::default()
        }
    }

    #[actix_rt::test]
    async fn the_list_says_how_each_runner_runs_and_an_old_probe_is_renewed_on_the_side() {
        let runners = Runners::new(without_bubblewrap(), None, LOCAL_RUNNER.to_owned());
        let listed = runners.list().await;
        assert_eq!(listed.runners.len(), 1, "{listed:?}");
        let local = &listed.runners[0];
        assert_eq!(
            (local.name.as_str(), local.kind, local.status, local.default),
            (
                LOCAL_RUNNER,
                RunnerKind::Local,
                RunnerState::Available,
                true
            )
        );
        assert_eq!(
            local.isolation.as_deref(),
            Some("none (bubblewrap unavailable)")
        );
        assert_eq!(local.network, Some(false));

        // An old answer is given at once, and a new probe replaces it on the side.
        *runners.sandbox_probe.borrow_mut() = Some(SandboxProbe {
            at: Instant::now()
                .checked_sub(SANDBOX_PROBE_FRESH_FOR * 2)
                .expect("the clock is past that"),
            answer: Ok(()),
            refreshing: false,
        });
        let isolation = |listed: RunnerList| listed.runners[0].isolation.clone();
        assert_eq!(
            isolation(runners.list().await).as_deref(),
            Some("bubblewrap")
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while runners
            .sandbox_probe
            .borrow()
            .as_ref()
            .is_some_and(|probe| probe.refreshing)
        {
            assert!(Instant::now() < deadline, "the probe was never renewed");
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            isolation(runners.list().await).as_deref(),
            Some("none (bubblewrap unavailable)")
        );

        let strict = RunOptions {
            allow_unsandboxed: false,
            ..without_bubblewrap()
        };
        let platform = KubiyaConfig::new("http://127.0.0.1:1", "uk-test");
        let listed = Runners::new(strict, Some(platform), "k8s-runner".to_owned())
            .list()
            .await;
        let states: Vec<_> = listed
            .runners
            .iter()
            .map(|runner| (runner.kind, runner.status, runner.default))
            .collect();
        assert_eq!(
            states,
            [
                (RunnerKind::Local, RunnerState::Unavailable, false),
                (RunnerKind::KubiyaHosted, RunnerState::Configured, true)
            ]
        );
        assert!(
            listed.runners[0]
                .isolation
                .as_deref()
                .is_some_and(|why| why.starts_with("bubblewrap unavailable: ")),
            "{listed:?}"
        );
    }

    #[tokio::test]
    async fn a_runner_that_dies_ends_its_run_failed_saying_so() {
        let died = final_word(async {
            panic!("a runner bug");
        })
        .await;
        assert_eq!(died.status, ExecutionStatus::Failed);
        assert_eq!(died.error.as_deref(), Some(RUNNER_DIED));

        let spoke = RunOutcome::ended(ExecutionStatus::Cancelled, None, Duration::from_secs(1));
        assert_eq!(final_word(async { spoke.clone() }).await, spoke);
    }
}
