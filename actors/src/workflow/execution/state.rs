//! One execution as the `ExecutionWatcher` keeps it: its status, each step's state, the
//! numbered event log subscribers replay from, and the subscribers themselves. The watcher
//! feeds it the runner's [`StepEvent`]s, then the [`RunOutcome`] the run ended with, which
//! settles the steps it knows and ends the log with the `workflow_complete` derived from it;
//! HTTP handlers see it only as an [`ExecutionSnapshot`] or as [`ExecutionEvent`]s.
//!
//! What an execution keeps is bounded by bytes ([`Execution::with_log_budget`]): a workflow
//! is a program a model wrote, and its steps may print without end. Each text an event
//! carries (outputs, errors, reasons) is counted twice (the log and the step's snapshot hold
//! it), each event a fixed overhead more; once the budget is spent, texts are cut with a note
//! saying so, and the events themselves (their statuses and times) are still kept. Live
//! output (`step_output` chunks, held by the log only) may take at most half of the budget,
//! so the steps' final outputs keep their room; past that, chunks are no longer kept or sent.

use actix::{Message, Recipient};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::store::{ExecutionId, TenantId};
use crate::workflow::dsl::model::Workflow;
use crate::workflow::dsl::validate::normalised;
use crate::workflow::run::event::{StepEvent, duration_millis, format_duration, now_millis};
use crate::workflow::run::outcome::{RunOutcome, StepOutcome};
use crate::workflow::run::status::{ExecutionStatus, StepStatus};

/// A runner's event, numbered within its execution (from 1) and tagged with the execution.
/// Serialized flat: `{"execution_id":…,"seq":3,"type":"step_complete","step":…,…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionEvent {
    pub execution_id: ExecutionId,
    pub seq: u64,
    #[serde(flatten)]
    pub event: StepEvent,
}

impl Message for ExecutionEvent {
    type Result = ();
}

impl ExecutionEvent {
    /// Whether this is the execution's last event (`workflow_complete`).
    pub fn is_final(&self) -> bool {
        matches!(self.event, StepEvent::WorkflowComplete { .. })
    }
}

/// A step in an [`ExecutionSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepSnapshot {
    pub name: String,
    /// The steps it waits for: its `depends`, or in a chain the step declared before it.
    #[serde(default)]
    pub depends: Vec<String>,
    pub status: StepStatus,
    /// Captured stdout (trimmed, size-capped); absent until the step ends.
    pub output: Option<String>,
    /// Why it failed, was skipped or stopped.
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    /// Attempts started (retries included).
    pub attempts: u32,
    /// Unix time in milliseconds.
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// Human-readable, e.g. `"1.2s"`.
    pub duration: Option<String>,
    pub duration_ms: Option<u64>,
}

impl StepSnapshot {
    fn pending(name: String, depends: Vec<String>) -> Self {
        Self {
            name,
            depends,
            status: StepStatus::Pending,
            output: None,
            error: None,
            exit_code: None,
            attempts: 0,
            started_at: None,
            finished_at: None,
            duration: None,
            duration_ms: None,
        }
    }

    fn is_settled(&self) -> bool {
        !matches!(self.status, StepStatus::Pending | StepStatus::Running)
    }
}

/// An execution's state at one moment, as `GET /v1/executions/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionSnapshot {
    #[schema(value_type = String)]
    pub execution_id: ExecutionId,
    /// The workflow's name.
    pub workflow: String,
    /// `local`, or the Kubiya runner the platform ran it on.
    pub runner: String,
    pub status: ExecutionStatus,
    /// Unix times in milliseconds.
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    pub duration: Option<String>,
    pub duration_ms: Option<u64>,
    /// Why it failed or stopped.
    pub error: Option<String>,
    /// The sequence number of the last event so far (0 before the first).
    pub last_seq: u64,
    /// Every step, in declaration order, then any the runner reported beyond them.
    pub steps: Vec<StepSnapshot>,
    /// The `output` variables the steps of a finished local run captured, by name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schema(value_type = Object)]
    pub outputs: IndexMap<String, String>,
}

impl ExecutionSnapshot {
    /// Declares the execution lost: it ends now with `reason`, and steps still running fail
    /// with it. Answers the `workflow_complete` event that tells so, numbered after the last.
    pub fn lose(&mut self, reason: &str, now: u64) -> ExecutionEvent {
        let elapsed = now.saturating_sub(self.started_at.unwrap_or(self.created_at));
        self.status = ExecutionStatus::Lost;
        self.finished_at = Some(now);
        self.duration_ms = Some(elapsed);
        self.duration = Some(format_duration(std::time::Duration::from_millis(elapsed)));
        self.error = Some(reason.to_owned());
        for step in &mut self.steps {
            if step.status == StepStatus::Running {
                step.status = StepStatus::Failed;
                step.error = Some(reason.to_owned());
                step.finished_at = Some(now);
            }
        }
        self.last_seq += 1;
        ExecutionEvent {
            execution_id: self.execution_id.clone(),
            seq: self.last_seq,
            event: StepEvent::WorkflowComplete {
                workflow: self.workflow.clone(),
                status: ExecutionStatus::Lost,
                duration: format_duration(std::time::Duration::from_millis(elapsed)),
                duration_ms: elapsed,
                error: Some(reason.to_owned()),
                timestamp: now,
            },
        }
    }
}

/// What `StartExecution` answers: enough to follow the execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionSummary {
    pub execution_id: ExecutionId,
    pub workflow: String,
    pub runner: String,
    pub status: ExecutionStatus,
}

/// Who started an execution and how it is run; fixed for its life.
#[derive(Debug, Clone)]
pub(crate) struct ExecutionIdentity {
    pub id: ExecutionId,
    pub tenant: TenantId,
    pub workflow: String,
    pub runner: String,
}

/// One execution's record inside the watcher.
pub(crate) struct Execution {
    pub identity: ExecutionIdentity,
    status: ExecutionStatus,
    created_at: u64,
    started_at: Option<u64>,
    finished_at: Option<u64>,
    duration_ms: Option<u64>,
    error: Option<String>,
    steps: IndexMap<String, StepSnapshot>,
    /// The run's `output` variables, once a local run has ended.
    outputs: IndexMap<String, String>,
    /// The workflow it runs, normalised (counted against the log budget).
    workflow: Option<Workflow>,
    log: Vec<ExecutionEvent>,
    subscribers: Vec<Recipient<ExecutionEvent>>,
    /// Bytes the log and snapshots may take, and what they take so far.
    log_budget: usize,
    kept_bytes: usize,
    /// What `step_output` chunks take of `kept_bytes`; once they reach their share, later
    /// chunks are dropped.
    live_bytes: usize,
    live_cut: bool,
    pub cancel: CancellationToken,
}

/// The bytes an execution keeps unless told otherwise.
pub const DEFAULT_LOG_BUDGET: usize = 4 * 1024 * 1024;

/// What one event costs beyond its texts: its numbers, names and the log's bookkeeping.
const EVENT_OVERHEAD: usize = 160;

/// What a subscriber gets when it subscribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// Events after `after_seq` were sent or will be, ending with `workflow_complete`.
    Following,
    /// The execution has ended and no event follows `after_seq`: nothing will be sent.
    Finished,
}

impl Execution {
    /// A queued execution of `steps`: each step's name and the steps it waits for.
    pub fn new(
        identity: ExecutionIdentity,
        steps: impl Iterator<Item = (String, Vec<String>)>,
    ) -> Self {
        Self {
            identity,
            status: ExecutionStatus::Queued,
            created_at: now_millis(),
            started_at: None,
            finished_at: None,
            duration_ms: None,
            error: None,
            steps: steps
                .map(|(name, depends)| (name.clone(), StepSnapshot::pending(name, depends)))
                .collect(),
            outputs: IndexMap::new(),
            workflow: None,
            log: Vec::new(),
            subscribers: Vec::new(),
            log_budget: DEFAULT_LOG_BUDGET,
            kept_bytes: 0,
            live_bytes: 0,
            live_cut: false,
            cancel: CancellationToken::new(),
        }
    }

    /// Keeps the log and step outputs within `bytes`.
    pub fn with_log_budget(mut self, bytes: usize) -> Self {
        self.log_budget = bytes;
        self
    }

    /// Keeps the workflow it runs (normalised), counted against the budget.
    pub fn with_workflow(mut self, workflow: &Workflow) -> Self {
        let normal = normalised(workflow);
        self.kept_bytes += serde_json::to_vec(&normal).map_or(0, |bytes| bytes.len());
        self.workflow = Some(normal);
        self
    }

    /// The workflow it runs, normalised.
    pub fn workflow(&self) -> Option<&Workflow> {
        self.workflow.as_ref()
    }

    /// When it was created (Unix milliseconds).
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// What the log and snapshots take, as counted against the budget.
    pub fn kept_bytes(&self) -> usize {
        self.kept_bytes
    }

    pub fn status(&self) -> ExecutionStatus {
        self.status
    }

    /// Cuts `text` to what is left of the budget (counting `copies` of it), with a note.
    fn fit(&mut self, text: &mut String, copies: usize) {
        let left = self.log_budget.saturating_sub(self.kept_bytes) / copies;
        if text.len() > left {
            let mut keep = left;
            while !text.is_char_boundary(keep) {
                keep -= 1;
            }
            text.truncate(keep);
            text.push_str(&format!(
                "\n[cut: this execution keeps at most {} bytes of output and events]",
                self.log_budget
            ));
        }
        // A runner's buffer may have grown well past what it holds, and cutting keeps the
        // capacity: what is kept must be what is counted.
        text.shrink_to_fit();
        self.kept_bytes += text.len() * copies;
    }

    /// Counts a live output chunk against its share of the budget, cutting it to fit with a
    /// note; `false` once the share is spent (the chunk is not kept).
    fn fit_live(&mut self, text: &mut String) -> bool {
        if self.live_cut {
            return false;
        }
        let room = (self.log_budget / 2)
            .saturating_sub(self.live_bytes)
            .min(self.log_budget.saturating_sub(self.kept_bytes))
            .saturating_sub(EVENT_OVERHEAD);
        if text.len() > room {
            self.live_cut = true;
            let note = format!(
                "\n[live output stops here: this execution keeps at most {} bytes of it; each step's whole output comes when it ends]\n",
                self.log_budget / 2
            );
            let mut keep = room.saturating_sub(note.len());
            while !text.is_char_boundary(keep) {
                keep -= 1;
            }
            text.truncate(keep);
            text.push_str(&note);
        }
        text.shrink_to_fit();
        let cost = text.len() + EVENT_OVERHEAD;
        self.live_bytes += cost;
        self.kept_bytes += cost;
        true
    }

    /// Counts the event against the budget, cutting its texts to fit; `false` when it is
    /// not kept at all (live output past its share).
    fn fit_event(&mut self, event: &mut StepEvent) -> bool {
        let (text, copies) = match event {
            StepEvent::StepOutput { text, .. } => return self.fit_live(text),
            StepEvent::StepRunning { message, .. } => (Some(message), 1),
            StepEvent::StepComplete { output, .. } => (Some(output), 2),
            StepEvent::StepFailed { error, .. } => (Some(error), 2),
            StepEvent::StepSkipped { reason, .. } => (Some(reason), 2),
            StepEvent::WorkflowComplete { error, .. } => (error.as_mut(), 2),
        };
        self.kept_bytes += EVENT_OVERHEAD;
        if let Some(text) = text {
            self.fit(text, copies);
        }
        true
    }

    /// The sequence number of the last event recorded (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.log.len() as u64
    }

    /// The events recorded after `seq`, in order.
    pub fn events_after(&self, seq: u64) -> &[ExecutionEvent] {
        let start = usize::try_from(seq)
            .unwrap_or(usize::MAX)
            .min(self.log.len());
        &self.log[start..]
    }

    /// The final event has been recorded.
    pub fn is_complete(&self) -> bool {
        self.log.last().is_some_and(ExecutionEvent::is_final)
    }

    pub fn summary(&self) -> ExecutionSummary {
        ExecutionSummary {
            execution_id: self.identity.id.clone(),
            workflow: self.identity.workflow.clone(),
            runner: self.identity.runner.clone(),
            status: self.status,
        }
    }

    /// The runner began.
    pub fn mark_started(&mut self) {
        if self.status == ExecutionStatus::Queued {
            self.status = ExecutionStatus::Running;
            self.started_at = Some(now_millis());
        }
    }

    /// Numbers the event, applies it, logs it and sends it to every live subscriber.
    /// Events after the final one are dropped: a stream ends with exactly one.
    pub fn record(&mut self, mut event: StepEvent) {
        if self.is_complete() {
            tracing::warn!(execution = %self.identity.id, kind = event.kind(), "event after workflow_complete dropped");
            return;
        }
        if !self.fit_event(&mut event) {
            return;
        }
        self.mark_started();
        self.apply(&event);
        let numbered = ExecutionEvent {
            execution_id: self.identity.id.clone(),
            seq: self.log.len() as u64 + 1,
            event,
        };
        self.subscribers.retain(Recipient::connected);
        for subscriber in &self.subscribers {
            subscriber.do_send(numbered.clone());
        }
        if numbered.is_final() {
            self.subscribers.clear();
        }
        self.log.push(numbered);
    }

    /// Replays events after `after_seq` to `subscriber`, then keeps it for live ones unless
    /// the execution already ended.
    pub fn subscribe(
        &mut self,
        after_seq: u64,
        subscriber: Recipient<ExecutionEvent>,
    ) -> Subscription {
        let replay = self
            .log
            .iter()
            .skip(usize::try_from(after_seq).unwrap_or(usize::MAX));
        let mut replayed = 0usize;
        for event in replay {
            subscriber.do_send(event.clone());
            replayed += 1;
        }
        if self.is_complete() {
            return if replayed == 0 {
                Subscription::Finished
            } else {
                Subscription::Following
            };
        }
        self.subscribers.retain(Recipient::connected);
        self.subscribers.push(subscriber);
        Subscription::Following
    }

    /// The run ended with `outcome`, its runner's final word: each step's final state it
    /// knows, then the final event derived from it. An execution already ended (declared
    /// lost meanwhile) stays as it ended.
    pub fn finish(&mut self, outcome: &RunOutcome) {
        if self.is_complete() {
            return;
        }
        self.apply_outcome(outcome);
        self.record(outcome.completion(&self.identity.workflow));
    }

    /// Takes the local runner's final word on each step: exit codes, stderr-bearing errors,
    /// and steps that never emitted an event.
    fn apply_outcome(&mut self, outcome: &RunOutcome) {
        for (name, step) in outcome.steps.iter().chain(&outcome.handlers) {
            if step.status == StepStatus::Pending && step.attempts == 0 {
                continue;
            }
            // The output an event brought is already counted (and cut); a step whose
            // output arrives only now is counted here.
            let mut output = None;
            if self
                .steps
                .get(name)
                .is_none_or(|known| known.output.is_none())
            {
                let mut text = step.output.clone();
                self.fit(&mut text, 1);
                output = Some(text);
            }
            let error = step.error.clone().map(|mut error| {
                self.fit(&mut error, 1);
                error
            });
            let snapshot = self.step_mut(name);
            merge_outcome(snapshot, step, output, error);
        }
        if self.error.is_none() {
            self.error.clone_from(&outcome.error);
        }
        for (name, value) in &outcome.outputs {
            let mut value = value.clone();
            self.fit(&mut value, 1);
            self.outputs.insert(name.clone(), value);
        }
    }

    pub fn snapshot(&self) -> ExecutionSnapshot {
        ExecutionSnapshot {
            execution_id: self.identity.id.clone(),
            workflow: self.identity.workflow.clone(),
            runner: self.identity.runner.clone(),
            status: self.status,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            duration: self
                .duration_ms
                .map(|ms| format_duration(std::time::Duration::from_millis(ms))),
            duration_ms: self.duration_ms,
            error: self.error.clone(),
            last_seq: self.log.len() as u64,
            steps: self.steps.values().cloned().collect(),
            outputs: self.outputs.clone(),
        }
    }

    fn step_mut(&mut self, name: &str) -> &mut StepSnapshot {
        self.steps
            .entry(name.to_owned())
            .or_insert_with(|| StepSnapshot::pending(name.to_owned(), Vec::new()))
    }

    fn apply(&mut self, event: &StepEvent) {
        match event {
            // Live output is in the log only; the snapshot gets the whole output at the end.
            StepEvent::StepOutput { .. } => {}
            StepEvent::StepRunning {
                step, timestamp, ..
            } => {
                let snapshot = self.step_mut(step);
                snapshot.status = StepStatus::Running;
                snapshot.attempts += 1;
                snapshot.started_at.get_or_insert(*timestamp);
                snapshot.finished_at = None;
            }
            StepEvent::StepComplete {
                step,
                output,
                duration,
                duration_ms,
                timestamp,
            } => {
                let snapshot = self.step_mut(step);
                snapshot.status = StepStatus::Success;
                snapshot.output = Some(output.clone());
                snapshot.error = None;
                snapshot.duration = Some(duration.clone());
                snapshot.duration_ms = Some(*duration_ms);
                snapshot.finished_at = Some(*timestamp);
                snapshot.attempts = snapshot.attempts.max(1);
            }
            StepEvent::StepFailed {
                step,
                error,
                will_retry,
                timestamp,
            } => {
                let snapshot = self.step_mut(step);
                snapshot.error = Some(error.clone());
                if !will_retry {
                    snapshot.status = StepStatus::Failed;
                    snapshot.finished_at = Some(*timestamp);
                    set_measured_duration(snapshot);
                }
            }
            StepEvent::StepSkipped {
                step,
                reason,
                timestamp,
            } => {
                let snapshot = self.step_mut(step);
                snapshot.status = StepStatus::Skipped;
                snapshot.error = Some(reason.clone());
                snapshot.finished_at = Some(*timestamp);
            }
            StepEvent::WorkflowComplete {
                status,
                duration_ms,
                error,
                timestamp,
                ..
            } => {
                self.status = *status;
                self.finished_at = Some(*timestamp);
                self.duration_ms = Some(*duration_ms);
                // The local runner's outcome, applied just before, may already have said why.
                if error.is_some() {
                    self.error.clone_from(error);
                }
                // A step still running when the run ended went the run's way.
                let settled = match status {
                    ExecutionStatus::Success => StepStatus::Success,
                    ExecutionStatus::Cancelled => StepStatus::Cancelled,
                    // A run that ends saying it has not ended is a failed one.
                    ExecutionStatus::Failed
                    | ExecutionStatus::Lost
                    | ExecutionStatus::Queued
                    | ExecutionStatus::Running => StepStatus::Failed,
                };
                for snapshot in self.steps.values_mut() {
                    if snapshot.status == StepStatus::Running {
                        snapshot.status = settled;
                        snapshot.finished_at = Some(*timestamp);
                    }
                }
            }
        }
    }
}

fn set_measured_duration(snapshot: &mut StepSnapshot) {
    if let (Some(started), Some(finished)) = (snapshot.started_at, snapshot.finished_at) {
        let ms = finished.saturating_sub(started);
        snapshot.duration_ms = Some(ms);
        snapshot.duration = Some(format_duration(std::time::Duration::from_millis(ms)));
    }
}

/// Takes the runner's final word on a step; `output` is the step's output when the snapshot
/// has none yet, and `error` its error, both already fitted to the budget.
fn merge_outcome(
    snapshot: &mut StepSnapshot,
    step: &StepOutcome,
    output: Option<String>,
    error: Option<String>,
) {
    snapshot.status = step.status;
    if snapshot.is_settled()
        && step.status != StepStatus::Skipped
        && let Some(output) = output
    {
        snapshot.output = Some(output);
    }
    snapshot.error = error;
    snapshot.exit_code = step.exit_code;
    snapshot.attempts = snapshot.attempts.max(step.attempts);
    if step.attempts > 0 {
        snapshot.duration_ms = Some(duration_millis(step.duration));
        snapshot.duration = Some(format_duration(step.duration));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn execution() -> Execution {
        Execution::new(
            ExecutionIdentity {
                id: ExecutionId::parse("exec_1").unwrap(),
                tenant: TenantId::parse("t").unwrap(),
                workflow: "w".to_owned(),
                runner: "local".to_owned(),
            },
            [
                ("a".to_owned(), vec![]),
                ("b".to_owned(), vec!["a".to_owned()]),
            ]
            .into_iter(),
        )
    }

    fn running(step: &str) -> StepEvent {
        StepEvent::StepRunning {
            step: step.to_owned(),
            message: "running".to_owned(),
            timestamp: 10,
        }
    }

    fn complete(status: ExecutionStatus) -> StepEvent {
        StepEvent::WorkflowComplete {
            workflow: "w".to_owned(),
            status,
            duration: "0.0s".to_owned(),
            duration_ms: 5,
            error: None,
            timestamp: 20,
        }
    }

    #[test]
    fn output_beyond_the_log_budget_is_cut_with_a_note() {
        let mut execution = execution().with_log_budget(10_000);
        for (index, step) in ["a", "b"].into_iter().enumerate() {
            execution.record(running(step));
            execution.record(StepEvent::StepComplete {
                step: step.to_owned(),
                output: "é".repeat(500_000),
                duration: "1s".to_owned(),
                duration_ms: 1000,
                timestamp: 11 + index as u64,
            });
        }
        execution.record(complete(ExecutionStatus::Success));
        assert!(
            execution.kept_bytes() < 12_000,
            "{}",
            execution.kept_bytes()
        );
        let snapshot = execution.snapshot();
        let first = snapshot.steps[0].output.as_deref().unwrap();
        assert!(first.len() < 6_000 && first.ends_with("bytes of output and events]"));
        let second = snapshot.steps[1].output.as_deref().unwrap();
        assert!(second.starts_with("\n[cut:"), "{second}");
        assert_eq!(snapshot.status, ExecutionStatus::Success);
        assert_eq!(
            execution.events_after(0).len(),
            5,
            "every event is still kept"
        );
    }

    #[test]
    fn live_output_takes_at_most_half_the_budget_and_then_stops() {
        let mut execution = execution().with_log_budget(20_000);
        execution.record(running("a"));
        for _ in 0..100 {
            execution.record(StepEvent::StepOutput {
                step: "a".to_owned(),
                stream: crate::workflow::run::event::OutputStream::Stdout,
                text: "x".repeat(1000),
                timestamp: 11,
            });
        }
        let kept = execution.events_after(0);
        let chunks: Vec<&str> = kept
            .iter()
            .filter_map(|event| match &event.event {
                StepEvent::StepOutput { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert!(chunks.len() < 12, "{}", chunks.len());
        assert!(chunks.last().unwrap().contains("[live output stops here"));
        // Half the budget, and the `step_running` event before.
        assert!(
            execution.kept_bytes() <= 10_200,
            "{}",
            execution.kept_bytes()
        );
        // The final output still has the other half.
        execution.record(StepEvent::StepComplete {
            step: "a".to_owned(),
            output: "y".repeat(8_000),
            duration: "1s".to_owned(),
            duration_ms: 1000,
            timestamp: 12,
        });
        let output = execution.snapshot().steps[0].output.clone().unwrap();
        assert!(output.len() >= 4_000, "{}", output.len());
        // Events beyond the budget cost their overhead only.
        assert!(
            execution.kept_bytes() <= 20_400,
            "{}",
            execution.kept_bytes()
        );
    }

    #[test]
    fn events_serialize_flat_with_execution_id_and_seq() {
        let event = ExecutionEvent {
            execution_id: ExecutionId::parse("exec_1").unwrap(),
            seq: 1,
            event: running("a"),
        };
        assert_eq!(
            serde_json::to_value(&event).expect("serializes"),
            json!({"execution_id":"exec_1","seq":1,"type":"step_running","step":"a","message":"running","timestamp":10})
        );
    }

    #[test]
    fn events_are_numbered_from_one_and_nothing_follows_the_final_one() {
        let mut execution = execution();
        assert_eq!(execution.status(), ExecutionStatus::Queued);
        execution.record(running("a"));
        assert_eq!(execution.status(), ExecutionStatus::Running);
        execution.record(complete(ExecutionStatus::Cancelled));
        execution.record(running("b"));
        let snapshot = execution.snapshot();
        assert_eq!(snapshot.last_seq, 2);
        assert_eq!(snapshot.status, ExecutionStatus::Cancelled);
        assert_eq!(snapshot.steps[0].status, StepStatus::Cancelled);
        assert_eq!(snapshot.steps[1].status, StepStatus::Pending);
        assert_eq!(snapshot.duration.as_deref(), Some("0.0s"));
    }

    #[test]
    fn a_retried_failure_keeps_the_step_running() {
        let mut execution = execution();
        execution.record(running("a"));
        execution.record(StepEvent::StepFailed {
            step: "a".to_owned(),
            error: "exit status 1".to_owned(),
            will_retry: true,
            timestamp: 11,
        });
        assert_eq!(execution.snapshot().steps[0].status, StepStatus::Running);
        execution.record(running("a"));
        execution.record(StepEvent::StepFailed {
            step: "a".to_owned(),
            error: "exit status 2".to_owned(),
            will_retry: false,
            timestamp: 15,
        });
        let step = &execution.snapshot().steps[0];
        assert_eq!(step.status, StepStatus::Failed);
        assert_eq!(step.attempts, 2);
        assert_eq!(step.error.as_deref(), Some("exit status 2"));
        assert_eq!(step.duration_ms, Some(5));
    }

    #[test]
    fn a_lost_snapshot_ends_with_one_numbered_final_event_and_fails_running_steps() {
        let mut execution = execution();
        execution.record(running("a"));
        let mut snapshot = execution.snapshot();
        let event = snapshot.lose("the replica running it stopped", 1_010);
        assert_eq!((event.seq, snapshot.last_seq), (2, 2));
        assert!(event.is_final());
        assert_eq!(
            serde_json::to_value(&event).expect("serializes")["status"],
            "lost"
        );
        assert_eq!(snapshot.status, ExecutionStatus::Lost);
        assert!(snapshot.status.is_finished());
        assert_eq!(snapshot.steps[0].status, StepStatus::Failed);
        assert_eq!(snapshot.steps[1].status, StepStatus::Pending);
        assert_eq!(
            snapshot.error.as_deref(),
            Some("the replica running it stopped")
        );
        assert_eq!(snapshot.finished_at, Some(1_010));
    }

    #[test]
    fn events_after_a_seq_are_the_log_past_it() {
        let mut execution = execution();
        execution.record(running("a"));
        execution.record(running("b"));
        assert_eq!(execution.last_seq(), 2);
        assert_eq!(execution.events_after(1)[0].seq, 2);
        assert!(execution.events_after(2).is_empty());
        assert!(execution.events_after(9).is_empty());
    }

    #[test]
    fn the_outcome_ends_the_execution_with_one_final_event_derived_from_it() {
        let mut execution = execution();
        execution.record(running("a"));
        let mut outcome = RunOutcome::ended(
            ExecutionStatus::Failed,
            Some("step 'a' failed: exit status 3".to_owned()),
            std::time::Duration::from_millis(1500),
        );
        outcome.steps.insert(
            "a".to_owned(),
            StepOutcome {
                status: StepStatus::Failed,
                output: "partial".to_owned(),
                error: Some("exit status 3".to_owned()),
                exit_code: Some(3),
                attempts: 1,
                ..StepOutcome::pending()
            },
        );
        outcome.steps.insert("b".to_owned(), StepOutcome::pending());
        execution.finish(&outcome);
        // A second word (or one after the execution was declared lost) changes nothing.
        execution.finish(&RunOutcome::ended(
            ExecutionStatus::Success,
            None,
            std::time::Duration::ZERO,
        ));

        let log = execution.events_after(0);
        assert_eq!(log.len(), 2);
        assert!(log[1].is_final());
        let StepEvent::WorkflowComplete {
            status,
            error,
            duration_ms,
            ..
        } = &log[1].event
        else {
            panic!("{:?}", log[1]);
        };
        assert_eq!(*status, ExecutionStatus::Failed);
        assert_eq!(error.as_deref(), Some("step 'a' failed: exit status 3"));
        assert_eq!(*duration_ms, 1500);

        let snapshot = execution.snapshot();
        assert_eq!(snapshot.status, ExecutionStatus::Failed);
        assert_eq!(
            snapshot.error.as_deref(),
            Some("step 'a' failed: exit status 3")
        );
        assert_eq!(snapshot.duration.as_deref(), Some("1.5s"));
        assert_eq!(snapshot.steps[0].status, StepStatus::Failed);
        assert_eq!(snapshot.steps[0].exit_code, Some(3));
        assert_eq!(snapshot.steps[0].output.as_deref(), Some("partial"));
        assert_eq!(snapshot.steps[1].status, StepStatus::Pending);
    }

    #[test]
    fn a_runner_that_died_ends_the_execution_failed_saying_so() {
        let mut execution = execution();
        execution.record(running("a"));
        execution.finish(&RunOutcome::ended(
            ExecutionStatus::Failed,
            Some(crate::workflow::run::runner::RUNNER_DIED.to_owned()),
            std::time::Duration::ZERO,
        ));
        let snapshot = execution.snapshot();
        assert_eq!(snapshot.last_seq, 2);
        assert_eq!(snapshot.status, ExecutionStatus::Failed);
        assert_eq!(
            snapshot.error.as_deref(),
            Some("the runner stopped without reporting the end of the run")
        );
        // The step it was running when it died failed with it.
        assert_eq!(snapshot.steps[0].status, StepStatus::Failed);
    }
}
