//! The `ExecutionWatcher` actor: one per process, on an arbiter of its own. It starts
//! workflow executions on a runner ([`Runners`]: the local runner on this host, or the
//! platform runner that follows the Kubiya platform), keeps each execution's numbered event log
//! and state, and fans events out to any number of subscribers, replaying what they missed.
//!
//! HTTP handlers, sessions and the CLI talk to it through the [`messages`](super::messages); events go back
//! through `Recipient<ExecutionEvent>`s. Runs are futures spawned into the actor's context, so
//! the mailbox never waits on a run: a run reports back through messages to the watcher
//! itself, in order ([`RunStarted`], [`RunProgressed`]…, [`RunFinished`]). Executions outlive
//! the request that started them; finished ones are kept for a bounded time and count.
//!
//! With a shared store configured ([`WatcherConfig::shared`]), each execution it runs is also
//! published to Redis by an [`ExecutionPublisher`], and an execution it does not have is
//! looked up there: read, followed ([`follower`](super::follower)) and cancelled on behalf
//! of the replica that runs it, or declared lost when that replica's heartbeat has lapsed.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{Map, Value};
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::ExecutionError;
use super::follower::{self, RemoteSubscribe};
use super::messages::{
    CancelExecution, DrainExecutions, ExecutionTakenOver, GetExecution, GetWorkflow,
    ListExecutions, ListRunners, RunFinished, RunProgressed, RunStarted, StartExecution, Subscribe,
};
use super::publisher::{ExecutionPublisher, PublisherParts};
use super::shared::{ExecutionKeys, LOST_REASON, SharedConfig, SharedExecutions};
use super::spans::ExecutionSpans;
use super::state::{
    DEFAULT_LOG_BUDGET, Execution, ExecutionIdentity, ExecutionSnapshot, ExecutionSummary,
    Subscription,
};
use crate::store::ExecutionId;
use crate::workflow::dsl::error::ValidationError;
use crate::workflow::dsl::graph::DependencyGraph;
use crate::workflow::dsl::model::Workflow;
use crate::workflow::dsl::validate::validate;
use crate::workflow::run::event::{StepEvent, now_millis};
use crate::workflow::run::kubiya::KubiyaConfig;
use crate::workflow::run::local::scheduler::RunOptions;
use crate::workflow::run::outcome::RunOutcome;
use crate::workflow::run::runner::{LOCAL_RUNNER, Run, Runner, RunnerList, Runners};
use crate::workflow::run::status::ExecutionStatus;

/// How the watcher runs executions and how long it remembers them.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// The runner used when neither the request nor the workflow names one.
    pub default_runner: String,
    pub local: RunOptions,
    /// The platform, when a Kubiya API key is configured; without it only `local` runs.
    pub kubiya: Option<KubiyaConfig>,
    /// How long a finished execution stays readable.
    pub finished_ttl: Duration,
    /// How many finished executions are kept at most (the oldest go first).
    pub max_finished: usize,
    /// Bytes of output and events one execution keeps (see [`Execution::with_log_budget`]).
    pub max_log_bytes: usize,
    /// Bytes all finished executions keep together (the oldest go first).
    pub max_finished_bytes: usize,
    /// Redis, to share executions with other replicas; `None` keeps them in this process.
    pub shared: Option<SharedConfig>,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        Self {
            default_runner: LOCAL_RUNNER.to_owned(),
            local: RunOptions::default(),
            kubiya: None,
            finished_ttl: Duration::from_secs(3600),
            max_finished: 1000,
            max_log_bytes: DEFAULT_LOG_BUDGET,
            max_finished_bytes: 64 * 1024 * 1024,
            shared: None,
        }
    }
}

pub struct ExecutionWatcher {
    config: WatcherConfig,
    runners: Runners,
    executions: HashMap<ExecutionId, Execution>,
    /// Finished executions, oldest first, for retention: id, when, and bytes kept.
    finished: VecDeque<(ExecutionId, Instant, usize)>,
    /// What the finished executions keep together.
    finished_bytes: usize,
    /// Runs whose future has not returned yet.
    active_runs: usize,
    /// Answered when `active_runs` drops to zero.
    drain_waiters: Vec<oneshot::Sender<()>>,
    /// The shared store, when configured.
    shared: Option<SharedExecutions>,
    /// Publishers of the running executions, by id.
    publishers: HashMap<ExecutionId, ExecutionPublisher>,
    /// Publishers closed after their run ended, still writing what was queued.
    flushing: Vec<JoinHandle<()>>,
    /// Fires at drain: followers of other replicas' executions end.
    followers_stop: CancellationToken,
    /// Fires when the watcher stops: publishers give up writes that keep failing.
    stopped: CancellationToken,
}

/// How often expired executions are swept, at most.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How long a start waits for the store to have the new execution before answering anyway
/// (it is readable here at once, and on other replicas once the write lands); a write that
/// fails answers at once.
const REGISTRATION_WAIT: Duration = Duration::from_secs(3);

impl ExecutionWatcher {
    /// Builds the watcher; call it on the arbiter it will run on.
    pub fn new(config: WatcherConfig) -> Self {
        let shared = config.shared.as_ref().and_then(|shared| {
            match SharedExecutions::open(shared, config.finished_ttl) {
                Ok(opened) => {
                    tracing::info!(
                        redis = opened.address(),
                        "executions are shared through Redis"
                    );
                    Some(opened)
                }
                Err(error) => {
                    tracing::error!(%error, "executions are not shared: the store cannot be used");
                    None
                }
            }
        });
        Self {
            runners: Runners::new(
                config.local.clone(),
                config.kubiya.clone(),
                config.default_runner.clone(),
            ),
            config,
            executions: HashMap::new(),
            finished: VecDeque::new(),
            finished_bytes: 0,
            active_runs: 0,
            drain_waiters: Vec::new(),
            shared,
            publishers: HashMap::new(),
            flushing: Vec::new(),
            followers_stop: CancellationToken::new(),
            stopped: CancellationToken::new(),
        }
    }

    /// Starts the watcher on a new arbiter of its own. Must be called inside a running actix
    /// system.
    pub fn start_on_own_arbiter(config: WatcherConfig) -> Addr<Self> {
        Self::start_in_arbiter(&Arbiter::new().handle(), move |_| Self::new(config))
    }

    fn find(&mut self, tenant: &str, id: &str) -> Result<&mut Execution, ExecutionError> {
        self.executions
            .get_mut(id)
            .filter(|execution| execution.identity.tenant == tenant)
            .ok_or_else(|| ExecutionError::NotFound(id.to_owned()))
    }

    /// Records the execution and spawns its run. With a shared store, the receiver is
    /// answered once the store has the execution.
    fn launch(
        &mut self,
        start: StartExecution,
        runner: Runner,
        ctx: &mut Context<Self>,
    ) -> Launched {
        let id = ExecutionId::generate();
        let identity = ExecutionIdentity {
            id: id.clone(),
            tenant: start.tenant,
            workflow: start.workflow.name.clone(),
            runner: runner.name().to_owned(),
        };
        let execution = Execution::new(identity, DependencyGraph::named_steps(&start.workflow))
            .with_log_budget(self.config.max_log_bytes)
            .with_workflow(&start.workflow);
        let cancel = execution.cancel.clone();
        let summary = execution.summary();
        let registered = self.start_publisher(&execution, ctx);
        self.executions.insert(id.clone(), execution);
        self.active_runs += 1;
        tracing::info!(execution = %id, workflow = %summary.workflow, runner = %summary.runner, "execution started");

        let mut spans = ExecutionSpans::new(&start.trace, &id, &summary.workflow, &summary.runner);
        let (events, mut received) = unbounded_channel();
        let permit = start.permit;
        let run = self.runners.start(
            runner,
            Run {
                workflow: start.workflow,
                params: start.params,
                events,
                cancel,
                library: start.library,
            },
        );
        let watcher = ctx.address();
        ctx.spawn(actix::fut::wrap_future(async move {
            watcher.do_send(RunStarted {
                execution_id: id.clone(),
            });
            let mut run = std::pin::pin!(run);
            // Forward events while the run goes on; the mailbox keeps them in order.
            let mut forward = |event: StepEvent| {
                if matches!(event, StepEvent::WorkflowComplete { .. }) {
                    // The run's end is its outcome's to say.
                    tracing::warn!(execution = %id, "a runner's own workflow_complete dropped");
                    return;
                }
                spans.observe(&event);
                watcher.do_send(RunProgressed {
                    execution_id: id.clone(),
                    event,
                });
            };
            let outcome = loop {
                tokio::select! {
                    biased;
                    Some(event) = received.recv() => forward(event),
                    outcome = &mut run => break outcome,
                }
            };
            // The run is over: another execution of the tenant may start.
            drop(permit);
            received.close();
            while let Ok(event) = received.try_recv() {
                forward(event);
            }
            spans.ended(&outcome);
            watcher.do_send(RunFinished {
                execution_id: id,
                outcome,
            });
        }));
        Launched {
            summary,
            registered,
        }
    }

    /// Starts publishing a new execution, when executions are shared.
    fn start_publisher(
        &mut self,
        execution: &Execution,
        ctx: &mut Context<Self>,
    ) -> Option<oneshot::Receiver<()>> {
        let shared = self.shared.clone()?;
        let identity = &execution.identity;
        let keys = shared.keys(&identity.tenant, &identity.id)?;
        let parts = PublisherParts {
            shared,
            keys,
            execution_id: identity.id.clone(),
            cancel: execution.cancel.clone(),
            taken_over: ctx.address().recipient(),
            shutdown: self.stopped.clone(),
        };
        let (publisher, registered) = ExecutionPublisher::start(parts, execution);
        self.publishers.insert(identity.id.clone(), publisher);
        Some(registered)
    }

    /// Hands what changed in the execution to its publisher.
    fn publish(&mut self, id: &str) {
        if let (Some(publisher), Some(execution)) =
            (self.publishers.get_mut(id), self.executions.get(id))
        {
            publisher.publish(execution);
        }
    }

    /// Forgets finished executions past their time, beyond the count or the bytes.
    fn sweep(&mut self) {
        let now = Instant::now();
        while let Some((id, finished_at, bytes)) = self.finished.front() {
            let expired = now.duration_since(*finished_at) >= self.config.finished_ttl;
            if !expired
                && self.finished.len() <= self.config.max_finished
                && self.finished_bytes <= self.config.max_finished_bytes
            {
                break;
            }
            self.finished_bytes = self.finished_bytes.saturating_sub(*bytes);
            self.executions.remove(id);
            self.finished.pop_front();
        }
    }
}

/// A launched execution: its summary and, when shared, when the store has it.
struct Launched {
    summary: ExecutionSummary,
    registered: Option<oneshot::Receiver<()>>,
}

impl Launched {
    /// Answers with the summary once the store has the execution (or after a short wait),
    /// so a client sent to another replica right away finds it there.
    fn answer(
        self,
    ) -> impl ActorFuture<ExecutionWatcher, Output = Result<ExecutionSummary, ExecutionError>> {
        actix::fut::wrap_future(async move {
            if let Some(registered) = self.registered
                && tokio::time::timeout(REGISTRATION_WAIT, registered)
                    .await
                    .is_err()
            {
                tracing::warn!(
                    execution = %self.summary.execution_id,
                    "the store does not have the new execution yet: other replicas will find it once it does"
                );
            }
            Ok(self.summary)
        })
    }
}

impl Actor for ExecutionWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = self
            .config
            .finished_ttl
            .clamp(Duration::from_secs(1), SWEEP_INTERVAL);
        ctx.run_interval(every, |watcher, _| watcher.sweep());
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        for execution in self.executions.values() {
            execution.cancel.cancel();
        }
        self.followers_stop.cancel();
        self.stopped.cancel();
        Running::Stop
    }
}

impl Handler<StartExecution> for ExecutionWatcher {
    type Result = ResponseActFuture<Self, Result<ExecutionSummary, ExecutionError>>;

    fn handle(&mut self, start: StartExecution, _: &mut Self::Context) -> Self::Result {
        let checked = self
            .runners
            .choose(start.runner.as_deref(), &start.workflow)
            .map_err(ExecutionError::RunnerUnavailable)
            .and_then(|runner| {
                let mut problems = validate(&start.workflow);
                problems.extend(missing_params(&start.workflow, &start.params));
                if problems.is_empty() {
                    Ok(runner)
                } else {
                    Err(ExecutionError::Invalid(problems))
                }
            });
        let runner = match checked {
            Ok(runner) => runner,
            Err(error) => return Box::pin(actix::fut::ready(Err(error))),
        };
        // Checking against the runner may await a process (is Docker there?): not in the
        // mailbox.
        let runners = self.runners.clone();
        Box::pin(
            actix::fut::wrap_future(async move {
                let problems = runners
                    .check(&runner, &start.workflow, &start.library)
                    .await;
                (start, runner, problems)
            })
            .then(|(start, runner, problems), watcher: &mut Self, ctx| {
                if problems.is_empty() {
                    watcher.launch(start, runner, ctx).answer().boxed_local()
                } else {
                    actix::fut::ready(Err(ExecutionError::Invalid(problems))).boxed_local()
                }
            }),
        )
    }
}

/// Declared params marked required, with no default and no value given.
fn missing_params(workflow: &Workflow, params: &Map<String, Value>) -> Vec<ValidationError> {
    workflow
        .params
        .iter()
        .flatten()
        .filter(|(name, spec)| {
            spec.is_required()
                && spec.default_value().is_none()
                && params.get(*name).is_none_or(Value::is_null)
        })
        .map(|(name, _)| {
            ValidationError::new(
                format!("params.{name}"),
                format!("the workflow requires param {name}; pass a value for it in \"params\""),
            )
        })
        .collect()
}

impl ExecutionWatcher {
    /// The store and the keys of an execution this replica does not have; `NotFound` when
    /// nothing is shared.
    fn elsewhere(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(SharedExecutions, ExecutionKeys), ExecutionError> {
        self.shared
            .as_ref()
            .and_then(|shared| Some((shared.clone(), shared.keys(tenant, id)?)))
            .ok_or_else(|| ExecutionError::NotFound(id.to_owned()))
    }
}

impl Handler<Subscribe> for ExecutionWatcher {
    type Result = ResponseFuture<Result<Subscription, ExecutionError>>;

    fn handle(&mut self, subscribe: Subscribe, _: &mut Self::Context) -> Self::Result {
        if let Ok(execution) = self.find(&subscribe.tenant, &subscribe.execution_id) {
            let subscribed = execution.subscribe(subscribe.after_seq, subscribe.subscriber);
            return Box::pin(std::future::ready(Ok(subscribed)));
        }
        let (shared, keys) = match self.elsewhere(&subscribe.tenant, &subscribe.execution_id) {
            Ok(found) => found,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        Box::pin(follower::subscribe(RemoteSubscribe {
            shared,
            keys,
            execution_id: subscribe.execution_id,
            after_seq: subscribe.after_seq,
            subscriber: subscribe.subscriber,
            stop: self.followers_stop.clone(),
        }))
    }
}

impl Handler<GetExecution> for ExecutionWatcher {
    type Result = ResponseFuture<Result<ExecutionSnapshot, ExecutionError>>;

    fn handle(&mut self, get: GetExecution, _: &mut Self::Context) -> Self::Result {
        if let Ok(execution) = self.find(&get.tenant, &get.execution_id) {
            return Box::pin(std::future::ready(Ok(execution.snapshot())));
        }
        let found = self.elsewhere(&get.tenant, &get.execution_id);
        Box::pin(async move {
            let (shared, keys) = found?;
            shared
                .snapshot(&keys)
                .await?
                .ok_or_else(|| ExecutionError::NotFound(get.execution_id.to_string()))
        })
    }
}

impl Handler<ListExecutions> for ExecutionWatcher {
    type Result = Vec<ExecutionSummary>;

    fn handle(&mut self, list: ListExecutions, _: &mut Self::Context) -> Self::Result {
        let mut mine: Vec<&Execution> = self
            .executions
            .values()
            .filter(|execution| execution.identity.tenant == list.tenant)
            .collect();
        mine.sort_by(|a, b| {
            b.created_at()
                .cmp(&a.created_at())
                .then_with(|| a.identity.id.cmp(&b.identity.id))
        });
        mine.into_iter().map(Execution::summary).collect()
    }
}

impl Handler<GetWorkflow> for ExecutionWatcher {
    type Result = Result<Workflow, ExecutionError>;

    fn handle(&mut self, get: GetWorkflow, _: &mut Self::Context) -> Self::Result {
        self.find(&get.tenant, &get.execution_id)?
            .workflow()
            .cloned()
            .ok_or_else(|| ExecutionError::NotFound(get.execution_id.to_string()))
    }
}

impl Handler<ListRunners> for ExecutionWatcher {
    type Result = ResponseFuture<RunnerList>;

    fn handle(&mut self, _: ListRunners, _: &mut Self::Context) -> Self::Result {
        // Probing the sandbox awaits a process: not in the mailbox.
        let runners = self.runners.clone();
        Box::pin(async move { runners.list().await })
    }
}

impl Handler<CancelExecution> for ExecutionWatcher {
    type Result = ResponseFuture<Result<ExecutionStatus, ExecutionError>>;

    fn handle(&mut self, cancel: CancelExecution, _: &mut Self::Context) -> Self::Result {
        if let Ok(execution) = self.find(&cancel.tenant, &cancel.execution_id) {
            if !execution.status().is_finished() {
                tracing::info!(execution = %cancel.execution_id, "execution cancel requested");
                execution.cancel.cancel();
            }
            return Box::pin(std::future::ready(Ok(execution.status())));
        }
        let found = self.elsewhere(&cancel.tenant, &cancel.execution_id);
        // Another replica runs it: leave a request its owner takes at its next heartbeat.
        Box::pin(async move {
            let (shared, keys) = found?;
            let snapshot = shared
                .snapshot(&keys)
                .await?
                .ok_or_else(|| ExecutionError::NotFound(cancel.execution_id.to_string()))?;
            if !snapshot.status.is_finished() {
                tracing::info!(execution = %cancel.execution_id, "execution cancel requested for its replica");
                shared.request_cancel(&keys).await?;
            }
            Ok(snapshot.status)
        })
    }
}

impl Handler<DrainExecutions> for ExecutionWatcher {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, drain: DrainExecutions, _: &mut Self::Context) -> Self::Result {
        for execution in self.executions.values() {
            execution.cancel.cancel();
        }
        self.followers_stop.cancel();
        let deadline = tokio::time::Instant::now() + drain.within;
        let runs_ended = (self.active_runs > 0).then(|| {
            let (done, finished) = oneshot::channel();
            self.drain_waiters.push(done);
            finished
        });
        let active = self.active_runs;
        Box::pin(
            actix::fut::wrap_future(async move {
                if let Some(finished) = runs_ended
                    && tokio::time::timeout_at(deadline, finished).await.is_err()
                {
                    tracing::warn!(active, "executions still running after the drain timeout");
                }
            })
            // Then the store gets every event the runs wrote, the final ones included.
            .then(move |(), watcher: &mut Self, _| {
                let flushing = std::mem::take(&mut watcher.flushing);
                actix::fut::wrap_future(async move {
                    let flushed = futures_util::future::join_all(flushing);
                    if tokio::time::timeout_at(deadline, flushed).await.is_err() {
                        tracing::warn!(
                            "execution events not yet in the store at the drain timeout"
                        );
                    }
                })
            }),
        )
    }
}

impl Handler<RunStarted> for ExecutionWatcher {
    type Result = ();

    fn handle(&mut self, started: RunStarted, _: &mut Self::Context) {
        if let Some(execution) = self.executions.get_mut(&started.execution_id) {
            execution.mark_started();
        }
        self.publish(&started.execution_id);
    }
}

impl Handler<RunProgressed> for ExecutionWatcher {
    type Result = ();

    fn handle(&mut self, progressed: RunProgressed, _: &mut Self::Context) {
        if let Some(execution) = self.executions.get_mut(&progressed.execution_id) {
            execution.record(progressed.event);
        }
        self.publish(&progressed.execution_id);
    }
}

impl Handler<RunFinished> for ExecutionWatcher {
    type Result = ();

    fn handle(&mut self, finished: RunFinished, _: &mut Self::Context) {
        self.active_runs = self.active_runs.saturating_sub(1);
        if let Some(execution) = self.executions.get_mut(&finished.execution_id) {
            execution.finish(&finished.outcome);
            let kept = execution.kept_bytes();
            tracing::info!(
                execution = %finished.execution_id,
                status = execution.status().as_str(),
                "execution finished"
            );
            self.publish(&finished.execution_id);
            if let Some(publisher) = self.publishers.remove(&finished.execution_id) {
                self.flushing.retain(|task| !task.is_finished());
                self.flushing.push(publisher.close());
            }
            self.finished_bytes += kept;
            self.finished
                .push_back((finished.execution_id, Instant::now(), kept));
        }
        if self.active_runs == 0 {
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
        self.sweep();
    }
}

impl Handler<ExecutionTakenOver> for ExecutionWatcher {
    type Result = ();

    fn handle(&mut self, taken: ExecutionTakenOver, _: &mut Self::Context) {
        self.publishers.remove(&taken.execution_id);
        let Some(mut execution) = self.executions.remove(&taken.execution_id) else {
            return;
        };
        execution.cancel.cancel();
        // Its followers here end as the store says it ended; from now on it is read there.
        let elapsed = execution
            .snapshot()
            .started_at
            .map_or(0, |started| now_millis().saturating_sub(started));
        execution.finish(&RunOutcome::ended(
            ExecutionStatus::Lost,
            Some(LOST_REASON.to_owned()),
            Duration::from_millis(elapsed),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TenantId;
    use crate::workflow::execution::feed::{EventFeed, follow};
    use crate::workflow::execution::state::ExecutionEvent;
    use serde_json::json;

    fn workflow(value: Value) -> Workflow {
        Workflow::from_value(value).expect("parses")
    }

    fn watcher() -> Addr<ExecutionWatcher> {
        ExecutionWatcher::start_on_own_arbiter(WatcherConfig {
            local: RunOptions {
                allow_unsandboxed: true,
                kill_grace: Duration::from_millis(200),
                ..RunOptions::default()
            },
            ..WatcherConfig::default()
        })
    }

    async fn start(
        watcher: &Addr<ExecutionWatcher>,
        tenant: &str,
        value: Value,
    ) -> Result<ExecutionSummary, ExecutionError> {
        watcher
            .send(StartExecution {
                tenant: TenantId::parse(tenant).unwrap(),
                workflow: workflow(value),
                params: Map::new(),
                runner: None,
                trace: tracing::Span::none(),
                permit: None,
                library: Vec::new(),
            })
            .await
            .expect("the watcher answers")
    }

    /// How long a test waits for an execution to get somewhere before failing.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// The execution's events from the start, as they come.
    async fn feed(watcher: &Addr<ExecutionWatcher>, tenant: &str, id: &str) -> EventFeed {
        follow(
            watcher,
            &TenantId::parse(tenant).unwrap(),
            &ExecutionId::parse(id).unwrap(),
            0,
        )
        .await
        .expect("answers")
        .expect("not over before it began")
    }

    /// Waits for the first event of `kind`.
    async fn wait_for(feed: &mut EventFeed, kind: &str) -> ExecutionEvent {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let event = feed.next().await.expect("the feed goes on");
                if event.event.kind() == kind {
                    return event;
                }
                assert!(!event.is_final(), "ended before any {kind}: {event:?}");
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} within {PATIENCE:?}"))
    }

    /// Waits for the execution's final event, then answers its state.
    async fn wait_finished(
        watcher: &Addr<ExecutionWatcher>,
        tenant: &str,
        id: &str,
    ) -> ExecutionSnapshot {
        if let Some(mut feed) = follow(
            watcher,
            &TenantId::parse(tenant).unwrap(),
            &ExecutionId::parse(id).unwrap(),
            0,
        )
        .await
        .expect("answers")
        {
            wait_for(&mut feed, "workflow_complete").await;
        }
        watcher
            .send(GetExecution {
                tenant: TenantId::parse(tenant).unwrap(),
                execution_id: ExecutionId::parse(id).unwrap(),
            })
            .await
            .expect("answers")
            .expect("exists")
    }

    #[actix_rt::test]
    async fn runs_fan_out_to_late_subscribers_and_other_tenants_see_nothing() {
        let watcher = watcher();
        let summary = start(
            &watcher,
            "t1",
            json!({"name": "w", "steps": [
                {"name": "a", "command": "echo one", "output": "A"},
                {"name": "b", "command": "echo ${A}-two"}
            ]}),
        )
        .await
        .expect("starts");
        assert_eq!(summary.status, ExecutionStatus::Queued);
        assert_eq!(summary.runner, "local");
        let snapshot = wait_finished(&watcher, "t1", &summary.execution_id).await;
        assert_eq!(snapshot.status, ExecutionStatus::Success, "{snapshot:?}");
        assert_eq!(snapshot.steps[1].output.as_deref(), Some("one-two"));
        assert_eq!(snapshot.steps[0].exit_code, Some(0));

        let mut late = follow(
            &watcher,
            &TenantId::parse("t1").unwrap(),
            &summary.execution_id,
            2,
        )
        .await
        .expect("answers")
        .expect("events follow seq 2");
        let mut seqs = Vec::new();
        while let Some(event) = late.next().await {
            seqs.push(event.seq);
            if event.is_final() {
                break;
            }
        }
        assert_eq!(seqs, (3..=snapshot.last_seq).collect::<Vec<_>>());

        let other = watcher
            .send(GetExecution {
                tenant: TenantId::parse("t2").unwrap(),
                execution_id: summary.execution_id.clone(),
            })
            .await
            .expect("answers");
        assert_eq!(
            other,
            Err(ExecutionError::NotFound(summary.execution_id.to_string()))
        );
    }

    #[actix_rt::test]
    async fn cancelling_stops_a_long_run() {
        let watcher = watcher();
        let summary = start(
            &watcher,
            "t",
            json!({"name": "slow", "steps": [{"name": "wait", "command": "sleep 30"}]}),
        )
        .await
        .expect("starts");
        let mut events = feed(&watcher, "t", &summary.execution_id).await;
        wait_for(&mut events, "step_running").await;
        let status = watcher
            .send(CancelExecution {
                tenant: TenantId::parse("t").unwrap(),
                execution_id: summary.execution_id.clone(),
            })
            .await
            .expect("answers")
            .expect("exists");
        assert_eq!(status, ExecutionStatus::Running);
        let snapshot = wait_finished(&watcher, "t", &summary.execution_id).await;
        assert_eq!(snapshot.status, ExecutionStatus::Cancelled);
    }

    #[actix_rt::test]
    async fn invalid_workflows_and_unconfigured_runners_are_refused() {
        let watcher = watcher();
        let error = start(
            &watcher,
            "t",
            json!({"name": "w", "steps": [{"name": "a", "command": "echo", "depends": ["zzz"]}]}),
        )
        .await
        .expect_err("invalid");
        let ExecutionError::Invalid(problems) = error else {
            panic!("{error:?}")
        };
        assert_eq!(problems[0].path, "steps[0].depends[0]");

        let error = start(
            &watcher,
            "t",
            json!({"name": "w", "runner": "kubiya-hosted", "steps": [{"name": "a", "command": "echo"}]}),
        )
        .await
        .expect_err("no platform");
        assert_eq!(
            error,
            ExecutionError::RunnerUnavailable("kubiya-hosted".to_owned())
        );

        let error = start(
            &watcher,
            "t",
            json!({"name": "w", "params": {"WHO": {"required": true}},
                   "steps": [{"name": "a", "command": "echo ${WHO}"}]}),
        )
        .await
        .expect_err("missing param");
        assert!(
            matches!(&error, ExecutionError::Invalid(problems) if problems[0].path == "params.WHO"),
            "{error:?}"
        );
    }

    #[actix_rt::test]
    async fn finished_executions_beyond_the_count_are_forgotten() {
        let watcher = ExecutionWatcher::start_on_own_arbiter(WatcherConfig {
            local: RunOptions {
                allow_unsandboxed: true,
                ..RunOptions::default()
            },
            max_finished: 1,
            ..WatcherConfig::default()
        });
        let hello = json!({"name": "w", "steps": [{"name": "a", "command": "true"}]});
        let first = start(&watcher, "t", hello.clone()).await.expect("starts");
        wait_finished(&watcher, "t", &first.execution_id).await;
        let second = start(&watcher, "t", hello).await.expect("starts");
        // The final event is recorded as the run's outcome arrives, when the oldest goes.
        let snapshot = wait_finished(&watcher, "t", &second.execution_id).await;
        assert_eq!(snapshot.status, ExecutionStatus::Success);
        let gone = watcher
            .send(GetExecution {
                tenant: TenantId::parse("t").unwrap(),
                execution_id: first.execution_id.clone(),
            })
            .await
            .expect("answers");
        assert_eq!(
            gone,
            Err(ExecutionError::NotFound(first.execution_id.to_string()))
        );
    }

    #[actix_rt::test]
    async fn draining_cancels_and_waits_for_runs() {
        let watcher = watcher();
        let summary = start(
            &watcher,
            "t",
            json!({"name": "slow", "steps": [{"name": "wait", "command": "sleep 30"}]}),
        )
        .await
        .expect("starts");
        let mut events = feed(&watcher, "t", &summary.execution_id).await;
        wait_for(&mut events, "step_running").await;
        watcher
            .send(DrainExecutions {
                within: Duration::from_secs(10),
            })
            .await
            .expect("answers");
        let snapshot = watcher
            .send(GetExecution {
                tenant: TenantId::parse("t").unwrap(),
                execution_id: summary.execution_id,
            })
            .await
            .expect("answers")
            .expect("exists");
        assert_eq!(snapshot.status, ExecutionStatus::Cancelled);
    }
}
