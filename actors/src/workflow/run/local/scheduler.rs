//! The local runner: runs a workflow's steps on this host. It validates the workflow (and
//! checks it against the [`WorkflowLimits`]), resolves params, makes a private work directory
//! (owned by a host group of the execution's own when the server is root), builds and probes
//! the sandbox, then schedules the dependency graph, starting every step whose dependencies
//! are settled, up to `maxActiveSteps` at once. It stops on cancellation or the workflow
//! timeout (the default one when the workflow sets none), runs the `handlerOn` steps, and ends
//! with exactly one `workflow_complete` event.
//!
//! It is plain tokio, not an actor: the `ExecutionWatcher` actor spawns [`LocalRunner::run`],
//! forwards its [`StepEvent`]s to subscribers and cancels it through the token it passed in.
//! Running one step (preconditions, attempts, retries, processes, HTTP) is `step`'s
//! job.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::context::{Emitter, RunContext};
use super::host::{HostCapabilities, docker_engine_reachable};
use super::limits::{StepLimits, WorkflowLimits, check_workflow_limits};
use super::runnable::check_runnable_locally;
use super::secrets::{SecretSource, secret_names};
use super::step::model::StepModel;
use super::step::{StepJob, run_step};
use crate::workflow::dsl::graph::DependencyGraph;
use crate::workflow::dsl::model::{ExecutorKind, Step, Workflow};
use crate::workflow::dsl::template::{Scope, is_var_name};
use crate::workflow::dsl::validate::{handler_steps, validate};
use crate::workflow::run::event::{StepEvent, format_duration};
use crate::workflow::run::http::HttpStepClient;
use crate::workflow::run::outcome::{RunOutcome, StepOutcome};
use crate::workflow::run::sandbox::confinement::{HostIds, IdLease, running_as_root};
use crate::workflow::run::sandbox::view::FsView;
use crate::workflow::run::sandbox::{Bubblewrap, Sandbox, StepIds};
use crate::workflow::run::status::{ExecutionStatus, StepStatus};

/// How the local runner runs workflows; [`RunOptions::default`] is the safe configuration.
#[derive(Clone)]
pub struct RunOptions {
    /// Where per-execution work directories are made.
    pub work_root: PathBuf,
    /// Keep the work directory after the run (for debugging); removed by default.
    pub keep_work_dir: bool,
    /// Steps running at once when the workflow sets no `maxActiveSteps`.
    pub max_active_steps: usize,
    /// Bytes of stdout and of stderr kept per step; more is cut with a note.
    pub output_limit: usize,
    /// How long SIGTERM gets before SIGKILL when a step is stopped.
    pub kill_grace: Duration,
    /// Wait between attempts when a step retries without `retryPolicy.intervalSec`.
    pub default_retry_interval: Duration,
    /// Longest a `handlerOn` step may run when it sets no timeout.
    pub handler_timeout: Duration,
    /// Let sandboxed steps use the network.
    pub allow_network: bool,
    /// Run without a sandbox when bubblewrap is unavailable (otherwise the run fails).
    pub allow_unsandboxed: bool,
    /// The bubblewrap program.
    pub bubblewrap: PathBuf,
    /// The Docker CLI, for `docker` steps.
    pub docker: PathBuf,
    /// `PATH` given to steps (a workflow `env` may override it).
    pub path_env: String,
    /// Sends `http` steps' requests; without one, `http` steps cannot run.
    pub http_client: Option<Arc<dyn HttpStepClient>>,
    /// What each sandboxed step may consume.
    pub step_limits: StepLimits,
    /// What a workflow may ask for.
    pub workflow_limits: WorkflowLimits,
    /// Host ids steps and executions run as when the server is root.
    pub host_ids: HostIds,
    /// Where `get_secret` steps and `{{secret:NAME}}` references find values.
    pub secrets: SecretSource,
    /// Where sub-workflows (`run` steps) are looked up by name; `None` refuses them.
    pub workflows_dir: Option<PathBuf>,
    /// How deep in sub-workflows this run is (0 for a top-level run).
    pub sub_workflow_depth: u32,
    /// The provider `llm_completion` and `agent` steps call; `None` refuses them.
    pub model: Option<StepModel>,
}

/// First host id given to sandboxed steps by default, far above ordinary and subordinate ids.
pub const DEFAULT_HOST_ID_FIRST: u32 = 1_900_000_000;
/// How many host ids sandboxed steps may use at once by default.
pub const DEFAULT_HOST_ID_COUNT: u32 = 10_000;

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            work_root: std::env::temp_dir(),
            keep_work_dir: false,
            max_active_steps: 4,
            output_limit: 1024 * 1024,
            kill_grace: Duration::from_secs(2),
            default_retry_interval: Duration::from_secs(1),
            handler_timeout: Duration::from_secs(60),
            allow_network: false,
            allow_unsandboxed: false,
            bubblewrap: PathBuf::from("bwrap"),
            docker: PathBuf::from("docker"),
            path_env: "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin".to_owned(),
            http_client: None,
            step_limits: StepLimits::default(),
            workflow_limits: WorkflowLimits::default(),
            host_ids: HostIds::new(DEFAULT_HOST_ID_FIRST, DEFAULT_HOST_ID_COUNT),
            secrets: SecretSource::default(),
            workflows_dir: None,
            sub_workflow_depth: 0,
            model: None,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("work_root", &self.work_root)
            .field("max_active_steps", &self.max_active_steps)
            .field("allow_network", &self.allow_network)
            .field("allow_unsandboxed", &self.allow_unsandboxed)
            .field("http_client", &self.http_client.is_some())
            .field("step_limits", &self.step_limits)
            .field("workflow_limits", &self.workflow_limits)
            .finish_non_exhaustive()
    }
}

/// One run: the workflow, its run-time params, where events go and how to stop it.
#[derive(Debug)]
pub struct RunRequest {
    pub workflow: Workflow,
    /// Run-time values; they override param defaults. Undeclared names are passed on too.
    pub params: Map<String, Value>,
    pub events: UnboundedSender<StepEvent>,
    /// Cancelling it stops the run (status `cancelled`).
    pub cancel: CancellationToken,
    /// Workflows `run` steps may call by name before the workflows directory is searched
    /// (the session's own, newest last).
    pub library: Vec<Workflow>,
}

/// Runs workflows on this host.
#[derive(Debug, Clone, Default)]
pub struct LocalRunner {
    options: RunOptions,
}

/// The parts of a [`RunRequest`] that preparing and running it needs.
#[derive(Clone, Copy)]
struct Job<'a> {
    workflow: &'a Workflow,
    params: &'a Map<String, Value>,
    secrets: &'a HashMap<String, String>,
    library: &'a [Workflow],
    emitter: &'a Emitter,
    cancel: &'a CancellationToken,
}

/// Why the scheduler stopped starting steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancelled,
    TimedOut(Duration),
}

/// Secret values shorter than this are not masked: masking "1" would garble every output.
const MIN_MASKED_SECRET: usize = 3;

impl LocalRunner {
    pub fn new(options: RunOptions) -> Self {
        Self { options }
    }

    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    /// What this host offers beyond plain commands (probes Docker only when `workflow` has a
    /// docker step).
    pub async fn host_capabilities(
        &self,
        workflow: &Workflow,
        library: &[Workflow],
    ) -> HostCapabilities {
        let has_docker_step =
            all_steps(workflow).any(|step| step.executor_kind() == Some(&ExecutorKind::Docker));
        HostCapabilities {
            docker_engine: has_docker_step && docker_engine_reachable(&self.options.docker).await,
            http_client: self.options.http_client.is_some(),
            sub_workflows: self.options.workflows_dir.is_some() || !library.is_empty(),
            model_steps: self.options.model.is_some(),
        }
    }

    /// Runs the workflow to its end, sending each step's events as they happen; the outcome
    /// is the run's final word (no `workflow_complete` is sent: it is derived from it).
    pub async fn run(&self, request: RunRequest) -> RunOutcome {
        let started = Instant::now();
        let RunRequest {
            workflow,
            params,
            events,
            cancel,
            library,
        } = request;
        let (workflow, secrets, secrets_error) = match self.with_secrets(&workflow).await {
            Ok((filled, secrets)) => (filled, secrets, None),
            Err(error) => (workflow, HashMap::new(), Some(error)),
        };
        let mut masked = secret_values(&workflow, &params);
        masked.extend(
            secrets
                .values()
                .filter(|value| value.len() >= MIN_MASKED_SECRET)
                .cloned(),
        );
        let emitter = Emitter::new(events, masked);
        let mut outcome = RunOutcome {
            steps: workflow
                .steps
                .iter()
                .map(|step| (step.name.clone(), StepOutcome::pending()))
                .collect(),
            ..RunOutcome::ended(ExecutionStatus::Failed, None, Duration::ZERO)
        };
        let job = Job {
            workflow: &workflow,
            params: &params,
            secrets: &secrets,
            library: &library,
            emitter: &emitter,
            cancel: &cancel,
        };
        let prepared = match secrets_error {
            Some(error) => Err(error),
            None => self.run_prepared(&job, &mut outcome).await,
        };
        if let Err(error) = prepared {
            outcome.status = ExecutionStatus::Failed;
            outcome.error = Some(error);
        }
        outcome.duration = started.elapsed();
        if let Some(error) = &mut outcome.error {
            *error = emitter.mask(error);
        }
        for step in outcome
            .steps
            .values_mut()
            .chain(outcome.handlers.values_mut())
        {
            step.output = emitter.mask(&step.output);
            step.stderr = emitter.mask(&step.stderr);
            step.error = step.error.as_deref().map(|error| emitter.mask(error));
        }
        for value in outcome.outputs.values_mut() {
            *value = emitter.mask(value);
        }
        outcome
    }

    /// Everything between the start and the final event; `Err` fails the run before any step.
    async fn run_prepared(&self, job: &Job<'_>, outcome: &mut RunOutcome) -> Result<(), String> {
        let Job {
            workflow,
            params,
            secrets,
            library,
            emitter,
            cancel,
        } = *job;
        let mut problems = validate(workflow);
        if problems.is_empty() {
            problems = check_workflow_limits(workflow, &self.options.workflow_limits);
        }
        if problems.is_empty() {
            let host = self.host_capabilities(workflow, library).await;
            problems = check_runnable_locally(workflow, &host);
        }
        if !problems.is_empty() {
            let summary = problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            outcome.validation_errors = problems;
            return Err(format!("the workflow cannot run locally: {summary}"));
        }
        let base_scope = base_scope(workflow, params)?;
        let (work_dir, group) = self.work_dir("kubiya-run").await?;
        if let Err(error) = write_files(workflow, &work_dir, group.as_ref().map(IdLease::id)).await
        {
            remove_work_dir(&work_dir).await;
            return Err(error);
        }
        let sandbox = match self.sandbox(group.as_ref(), &work_dir).await {
            Ok(sandbox) => sandbox,
            Err(reason) if self.options.allow_unsandboxed => {
                tracing::warn!(workflow = %workflow.name, %reason, "running workflow unsandboxed");
                Sandbox::Unsandboxed {
                    reason,
                    limits: self.options.step_limits,
                }
            }
            Err(reason) => {
                remove_work_dir(&work_dir).await;
                return Err(format!(
                    "refusing to run without a sandbox: {reason}; install bubblewrap (bwrap) and allow user namespaces (see the README's security model), or allow unsandboxed runs"
                ));
            }
        };
        outcome.sandboxed = sandbox.is_sandboxed();
        let context = RunContext {
            options: &self.options,
            workflow,
            work_dir: work_dir.clone(),
            sandbox,
            emitter: emitter.clone(),
            group: group.as_ref().map(IdLease::id),
            secrets,
            library,
        };
        let stop = schedule(&context, &base_scope, cancel, outcome).await;
        let (status, error) = match stop {
            Some(Stop::Cancelled) => (
                ExecutionStatus::Cancelled,
                Some("the run was cancelled".to_owned()),
            ),
            Some(Stop::TimedOut(limit)) => (
                ExecutionStatus::Failed,
                Some(format!(
                    "the workflow timed out after {}",
                    format_duration(limit)
                )),
            ),
            None => match first_failure(outcome) {
                Some(error) => (ExecutionStatus::Failed, Some(error)),
                None => (ExecutionStatus::Success, None),
            },
        };
        outcome.status = status;
        outcome.error = error;
        run_handlers(&context, &base_scope, outcome).await;
        if self.options.keep_work_dir {
            outcome.work_dir = Some(work_dir);
        } else {
            remove_work_dir(&work_dir).await;
        }
        Ok(())
    }

    /// The workflow with its `{{secret:NAME}}` references filled in, and the values of every
    /// secret it asks for; `Err` when one is missing or a reference sits where a value would
    /// be pasted into shell text.
    async fn with_secrets(
        &self,
        workflow: &Workflow,
    ) -> Result<(Workflow, HashMap<String, String>), String> {
        let names = secret_names(workflow);
        if names.is_empty() {
            return Ok((workflow.clone(), HashMap::new()));
        }
        let values = self.options.secrets.resolve(&names).await?;
        let filled = super::secrets::fill(workflow, &values)?;
        if !secret_names(&filled)
            .iter()
            .all(|name| filled_only_by_get_secret(&filled, name))
        {
            return Err(
                "{{secret:NAME}} may only appear in env values and executor config; put it in an env var and use $VAR in commands and scripts".to_owned(),
            );
        }
        Ok((filled, values))
    }

    /// Whether steps could run sandboxed on this host now: `Ok`, or why not.
    pub async fn probe_sandbox(&self) -> Result<(), String> {
        let (work_dir, group) = self.work_dir("kubiya-probe").await?;
        let probed = self.sandbox(group.as_ref(), &work_dir).await.map(drop);
        remove_work_dir(&work_dir).await;
        probed
    }

    /// A fresh work directory named `prefix-…`, with the host group of its execution when the
    /// server is root.
    async fn work_dir(&self, prefix: &str) -> Result<(PathBuf, Option<IdLease>), String> {
        let work_dir = self
            .options
            .work_root
            .join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        let group = if running_as_root() {
            Some(self.options.host_ids.lease().ok_or(
                "every sandbox id is in use; wait for other executions to finish or raise runner.local.sandbox_id_count",
            )?)
        } else {
            None
        };
        make_work_dir(&work_dir, group.as_ref().map(IdLease::id)).await?;
        Ok((work_dir, group))
    }

    /// The sandbox of a run whose steps use `group` (if any), probed as a step would run.
    async fn sandbox(
        &self,
        group: Option<&IdLease>,
        work_dir: &std::path::Path,
    ) -> Result<Sandbox, String> {
        let view = tokio::task::spawn_blocking(FsView::of_host)
            .await
            .map_err(|error| format!("could not read the host's filesystem layout: {error}"))?;
        let bubblewrap = Bubblewrap {
            program: self.options.bubblewrap.clone(),
            allow_network: self.options.allow_network,
            view,
            limits: self.options.step_limits,
        };
        let probe_user = match group {
            Some(group) => {
                let lease = self
                    .options
                    .host_ids
                    .lease()
                    .ok_or("every sandbox id is in use")?;
                Some((
                    StepIds {
                        uid: lease.id(),
                        gid: group.id(),
                    },
                    lease,
                ))
            }
            None => None,
        };
        bubblewrap
            .probe(probe_user.as_ref().map(|(ids, _)| *ids), work_dir)
            .await?;
        Ok(Sandbox::Bubblewrap(Arc::new(bubblewrap)))
    }
}

/// Makes the work directory (and its script directory). With a `group`, the directory
/// belongs to it, group-writable and set-group-id, so that the execution's steps (each its
/// own user in that group) share it and nobody else can enter it.
async fn make_work_dir(work_dir: &std::path::Path, group: Option<u32>) -> Result<(), String> {
    let script_dir = work_dir.join(crate::workflow::dsl::model::SCRIPT_DIR);
    let cannot = |error: std::io::Error| {
        format!(
            "cannot create the work directory {}: {error}",
            work_dir.display()
        )
    };
    tokio::fs::create_dir_all(&script_dir)
        .await
        .map_err(cannot)?;
    let Some(gid) = group else {
        return Ok(());
    };
    for dir in [work_dir, script_dir.as_path()] {
        std::os::unix::fs::chown(dir, Some(0), Some(gid)).map_err(cannot)?;
        tokio::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o2770))
            .await
            .map_err(cannot)?;
    }
    Ok(())
}

/// Writes the workflow's `files` into the fresh work directory (names were validated as plain
/// relative paths, and nothing else is in the directory yet, so nothing can redirect them).
/// With a `group`, they belong to it so that every step of the execution may read and change
/// them.
async fn write_files(
    workflow: &Workflow,
    work_dir: &std::path::Path,
    group: Option<u32>,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for (name, content) in workflow.files() {
        let path = work_dir.join(name);
        let cannot = |error: std::io::Error| format!("cannot write the file {name:?}: {error}");
        if let Some(parent) = path.parent().filter(|parent| *parent != work_dir) {
            tokio::fs::create_dir_all(parent).await.map_err(cannot)?;
            if let Some(gid) = group {
                let mut dir = parent;
                while dir != work_dir {
                    std::os::unix::fs::chown(dir, Some(0), Some(gid)).map_err(cannot)?;
                    tokio::fs::set_permissions(dir, PermissionsExt::from_mode(0o2770))
                        .await
                        .map_err(cannot)?;
                    dir = dir.parent().unwrap_or(work_dir);
                }
            }
        }
        tokio::fs::write(&path, content).await.map_err(cannot)?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(&path, Some(0), Some(gid)).map_err(cannot)?;
            tokio::fs::set_permissions(&path, PermissionsExt::from_mode(0o660))
                .await
                .map_err(cannot)?;
        }
    }
    Ok(())
}

async fn remove_work_dir(work_dir: &std::path::Path) {
    if let Err(error) = tokio::fs::remove_dir_all(work_dir).await {
        tracing::warn!(work_dir = %work_dir.display(), %error, "could not remove the work directory");
    }
}

/// The main steps then the handlers.
fn all_steps(workflow: &Workflow) -> impl Iterator<Item = &Step> {
    workflow.steps.iter().chain(
        workflow
            .handler_on
            .iter()
            .flat_map(handler_steps)
            .map(|(_, step)| step),
    )
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Whether the only mention of secret `name` left is a `get_secret` step reading it.
fn filled_only_by_get_secret(workflow: &Workflow, name: &str) -> bool {
    !workflow
        .to_value()
        .to_string()
        .contains(&format!("{{{{secret:{name}}}}}"))
}

/// Values of params marked secret, given or defaulted, to mask in events.
fn secret_values(workflow: &Workflow, params: &Map<String, Value>) -> Vec<String> {
    let Some(declared) = &workflow.params else {
        return Vec::new();
    };
    declared
        .iter()
        .filter(|(_, spec)| spec.is_secret())
        .filter_map(|(name, spec)| {
            params
                .get(name)
                .filter(|value| !value.is_null())
                .or(spec.default_value())
        })
        .map(value_text)
        .filter(|value| value.len() >= MIN_MASKED_SECRET)
        .collect()
}

/// Params (run-time values over defaults), then workflow env substituted in order.
fn base_scope(workflow: &Workflow, params: &Map<String, Value>) -> Result<Scope, String> {
    let mut scope = Scope::new();
    let mut missing = Vec::new();
    let declared = workflow.params.iter().flatten();
    for (name, spec) in declared {
        match params
            .get(name)
            .filter(|value| !value.is_null())
            .or(spec.default_value())
        {
            Some(value) => scope.set(name.clone(), value_text(value)),
            None if spec.is_required() => missing.push(name.as_str()),
            None => scope.set(name.clone(), String::new()),
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "missing required param{}: {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ));
    }
    for (name, value) in params {
        let declared = workflow
            .params
            .as_ref()
            .is_some_and(|declared| declared.contains_key(name));
        if !declared && is_var_name(name) {
            scope.set(name.clone(), value_text(value));
        }
    }
    if let Some(env) = &workflow.env {
        for (name, value) in env.pairs() {
            let value = scope.substitute(&value);
            scope.set(name, value);
        }
    }
    Ok(scope)
}

/// Runs the dependency graph; returns why it stopped early, if it did.
async fn schedule(
    context: &RunContext<'_>,
    base_scope: &Scope,
    cancel: &CancellationToken,
    outcome: &mut RunOutcome,
) -> Option<Stop> {
    let workflow = context.workflow;
    let graph = DependencyGraph::new(workflow);
    let count = workflow.steps.len();
    let cap = context.options.workflow_limits.max_active_steps;
    let max_active = workflow
        .max_active_steps
        .map(|max| max.min(cap))
        .and_then(|max| usize::try_from(max).ok())
        .unwrap_or(context.options.max_active_steps)
        .max(1);
    let mut started = vec![false; count];
    let mut done: Vec<Option<StepOutcome>> = vec![None; count];
    let run_token = cancel.child_token();
    let timeout = workflow
        .timeout_duration()
        .or(Some(context.options.workflow_limits.default_timeout));
    let deadline = timeout.map(|limit| Instant::now() + limit);
    let mut stop: Option<Stop> = None;
    let mut running: FuturesUnordered<BoxFuture<'_, (usize, StepOutcome)>> =
        FuturesUnordered::new();
    loop {
        // A run cancelled before (or while) steps were being started starts nothing more.
        if stop.is_none() && run_token.is_cancelled() {
            stop = Some(Stop::Cancelled);
        }
        if stop.is_none() {
            settle_ready_steps(
                &Readiness {
                    context,
                    graph: &graph,
                    base_scope,
                    run_token: &run_token,
                    max_active,
                },
                &mut started,
                &mut done,
                &mut running,
            );
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            Some((index, step_outcome)) = running.next() => {
                done[index] = Some(step_outcome);
            }
            () = run_token.cancelled(), if stop.is_none() => {
                stop = Some(Stop::Cancelled);
            }
            () = sleep_until_some(deadline), if stop.is_none() => {
                stop = timeout.map(Stop::TimedOut);
                run_token.cancel();
            }
        }
    }
    let reason = match stop {
        Some(Stop::Cancelled) => "the run was cancelled before this step started".to_owned(),
        Some(Stop::TimedOut(_)) => "the workflow timed out before this step started".to_owned(),
        None => "its dependencies never completed".to_owned(),
    };
    for (index, step) in workflow.steps.iter().enumerate() {
        let step_outcome = done[index].take().unwrap_or_else(|| {
            context.emitter.skipped(&step.name, &reason);
            StepOutcome::skipped(reason.clone())
        });
        if step_outcome.status == StepStatus::Success
            && let Some(variable) = &step.output
        {
            outcome
                .outputs
                .insert(variable.clone(), step_outcome.output.clone());
        }
        outcome.steps.insert(step.name.clone(), step_outcome);
    }
    stop
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What deciding and starting steps needs.
struct Readiness<'a, 'r> {
    context: &'a RunContext<'r>,
    graph: &'a DependencyGraph,
    base_scope: &'a Scope,
    run_token: &'a CancellationToken,
    max_active: usize,
}

/// Skips steps whose dependencies failed or were skipped, and starts steps whose dependencies
/// succeeded (or were tolerated), while there is room.
fn settle_ready_steps<'a>(
    readiness: &Readiness<'a, '_>,
    started: &mut [bool],
    done: &mut [Option<StepOutcome>],
    running: &mut FuturesUnordered<BoxFuture<'a, (usize, StepOutcome)>>,
) {
    let workflow = readiness.context.workflow;
    // Skipping a step can settle its dependents, so repeat until nothing changes.
    let mut changed = true;
    while changed {
        changed = false;
        for index in 0..workflow.steps.len() {
            if started[index] {
                continue;
            }
            let dependencies = readiness.graph.dependencies_of(index);
            if dependencies
                .iter()
                .any(|&dependency| done[dependency].is_none())
            {
                continue;
            }
            let blocked = dependencies.iter().find_map(|&dependency| {
                blocking_reason(&workflow.steps[dependency], done[dependency].as_ref())
            });
            if let Some(reason) = blocked {
                started[index] = true;
                readiness
                    .context
                    .emitter
                    .skipped(&workflow.steps[index].name, &reason);
                done[index] = Some(StepOutcome::skipped(reason));
                changed = true;
                continue;
            }
            if running.len() >= readiness.max_active {
                continue;
            }
            started[index] = true;
            let scope = step_scope(readiness, index, done);
            let job = StepJob {
                step: &workflow.steps[index],
                label: workflow.steps[index].name.clone(),
                scope,
                script_name: format!("step-{index}"),
            };
            let context = readiness.context;
            let token = readiness.run_token.clone();
            running.push(Box::pin(async move {
                (index, run_step(context, job, &token).await)
            }));
        }
    }
}

/// Why a finished dependency keeps its dependents from running, if it does.
fn blocking_reason(dependency: &Step, outcome: Option<&StepOutcome>) -> Option<String> {
    let outcome = outcome?;
    let continue_on = dependency.continue_on.as_ref();
    match outcome.status {
        StepStatus::Success => None,
        StepStatus::Failed => {
            let tolerated = continue_on.is_some_and(|continue_on| {
                continue_on.failure == Some(true)
                    || outcome
                        .exit_code
                        .zip(continue_on.exit_code.as_ref())
                        .is_some_and(|(code, codes)| codes.contains(code))
            });
            (!tolerated).then(|| format!("dependency '{}' failed", dependency.name))
        }
        StepStatus::Skipped => {
            let tolerated =
                continue_on.is_some_and(|continue_on| continue_on.skipped == Some(true));
            (!tolerated).then(|| format!("dependency '{}' was skipped", dependency.name))
        }
        StepStatus::Cancelled | StepStatus::Pending | StepStatus::Running => {
            Some(format!("dependency '{}' did not finish", dependency.name))
        }
    }
}

/// The base scope plus outputs of every (transitive) dependency, in declaration order. Step
/// env is added by the step runner.
fn step_scope(readiness: &Readiness<'_, '_>, index: usize, done: &[Option<StepOutcome>]) -> Scope {
    let mut scope = readiness.base_scope.clone();
    let dependencies: HashSet<usize> = readiness.graph.transitive_dependencies(index);
    for (dependency, step) in readiness.context.workflow.steps.iter().enumerate() {
        if !dependencies.contains(&dependency) {
            continue;
        }
        if let (Some(variable), Some(outcome)) = (&step.output, &done[dependency])
            && outcome.status == StepStatus::Success
        {
            scope.set(variable.clone(), outcome.output.clone());
        }
    }
    scope
}

/// The run's error when a step failed and nothing tolerated it.
fn first_failure(outcome: &RunOutcome) -> Option<String> {
    outcome.steps.iter().find_map(|(name, step)| {
        (step.status == StepStatus::Failed).then(|| {
            format!(
                "step '{name}' failed: {}",
                step.error.as_deref().unwrap_or("unknown error")
            )
        })
    })
}

/// Runs `handlerOn` steps: the one for how the run ended, then `exit`. A failing handler
/// fails a run that had succeeded.
async fn run_handlers(context: &RunContext<'_>, base_scope: &Scope, outcome: &mut RunOutcome) {
    let workflow = context.workflow;
    let Some(handlers) = &workflow.handler_on else {
        return;
    };
    let chosen = match outcome.status {
        ExecutionStatus::Success => "success",
        ExecutionStatus::Cancelled => "cancel",
        // A local run is never lost (only another replica can say so of a run it reads), and
        // handlers run once it has ended.
        ExecutionStatus::Failed
        | ExecutionStatus::Lost
        | ExecutionStatus::Queued
        | ExecutionStatus::Running => "failure",
    };
    let mut scope = base_scope.clone();
    for (variable, value) in &outcome.outputs {
        scope.set(variable.clone(), value.clone());
    }
    for (event, step) in handler_steps(handlers) {
        if event != chosen && event != "exit" {
            continue;
        }
        let label = if step.name.trim().is_empty() {
            format!("on{}{}", event[..1].to_uppercase(), &event[1..])
        } else {
            step.name.clone()
        };
        // Handlers run even after a cancellation, so they get their own token and a time cap.
        let token = CancellationToken::new();
        let job = StepJob {
            step,
            label,
            scope: scope.clone(),
            script_name: format!("handler-{event}"),
        };
        let limit = step
            .timeout_duration()
            .unwrap_or(context.options.handler_timeout);
        let handler_outcome =
            match tokio::time::timeout(limit, run_step(context, job, &token)).await {
                Ok(handler_outcome) => handler_outcome,
                Err(_) => {
                    let mut timed_out = StepOutcome::pending();
                    timed_out.status = StepStatus::Failed;
                    timed_out.error = Some(format!(
                        "handler timed out after {}",
                        format_duration(limit)
                    ));
                    timed_out
                }
            };
        if handler_outcome.status == StepStatus::Failed
            && outcome.status == ExecutionStatus::Success
        {
            outcome.status = ExecutionStatus::Failed;
            outcome.error = Some(format!(
                "the {event} handler failed: {}",
                handler_outcome.error.as_deref().unwrap_or("unknown error")
            ));
        }
        outcome.handlers.insert(event.to_owned(), handler_outcome);
    }
}
