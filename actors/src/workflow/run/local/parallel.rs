//! `parallel` steps on the local runner: the step runs once per item, as children named
//! `step[0]`, `step[1]`, … with the item in `${ITEM}`, at most `maxConcurrent` at once (the
//! workflow's `maxActiveSteps` cap bounds it, `runner.local.max_parallel_items` bounds the
//! items). Each child is an ordinary step run — sandboxed, retried, repeated, with its own
//! events; the parent step reports `step_running` first and then `step_complete` with the
//! children's outputs as a JSON array, or `step_failed` naming the children that failed.

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::RunContext;
use super::step::{StepJob, run_single_step};
use crate::workflow::dsl::model::{PARALLEL_ITEM, Parallel, ParallelItems, Step, item_text};
use crate::workflow::dsl::template::Scope;
use crate::workflow::run::outcome::StepOutcome;
use crate::workflow::run::status::StepStatus;

/// Runs every item of a `parallel` step; the parent's outcome.
pub(crate) async fn fan_out(
    context: &RunContext<'_>,
    job: StepJob<'_>,
    parallel: Parallel,
    token: &CancellationToken,
) -> StepOutcome {
    let started = Instant::now();
    let emitter = &context.emitter;
    let limits = &context.options.workflow_limits;
    let items = match items(&parallel.items, &job.scope, limits.max_parallel_items) {
        Ok(items) => items,
        Err(error) => {
            emitter.running(&job.label, context.sandbox.describe());
            emitter.failed(&job.label, &error, false);
            let mut outcome = StepOutcome::pending();
            outcome.status = StepStatus::Failed;
            outcome.error = Some(error);
            return outcome;
        }
    };
    let at_once = parallel
        .max_concurrent
        .and_then(|max| usize::try_from(max).ok())
        .unwrap_or(items.len())
        .clamp(
            1,
            usize::try_from(limits.max_active_steps).unwrap_or(1).max(1),
        );
    emitter.running(
        &job.label,
        format!(
            "fanning out over {} item(s), {at_once} at once",
            items.len()
        ),
    );
    let child = Step {
        parallel: None,
        ..job.step.clone()
    };
    let mut pending = items.iter().enumerate();
    let mut running: FuturesUnordered<BoxFuture<'_, (usize, StepOutcome)>> =
        FuturesUnordered::new();
    let mut outcomes: Vec<Option<StepOutcome>> = vec![None; items.len()];
    loop {
        while running.len() < at_once && !token.is_cancelled() {
            let Some((index, item)) = pending.next() else {
                break;
            };
            let mut scope = job.scope.clone();
            scope.set(PARALLEL_ITEM.to_owned(), item.clone());
            let child_job = StepJob {
                step: &child,
                label: format!("{}[{index}]", job.label),
                scope,
                script_name: format!("{}-{index}", job.script_name),
            };
            running.push(Box::pin(async move {
                (index, run_single_step(context, child_job, token).await)
            }));
        }
        match running.next().await {
            Some((index, outcome)) => outcomes[index] = Some(outcome),
            None => break,
        }
    }
    settle(&job.label, context, outcomes, started)
}

/// The parent's outcome from its children's; emits its final event.
fn settle(
    label: &str,
    context: &RunContext<'_>,
    outcomes: Vec<Option<StepOutcome>>,
    started: Instant,
) -> StepOutcome {
    let emitter = &context.emitter;
    let mut outcome = StepOutcome::pending();
    outcome.duration = started.elapsed();
    outcome.attempts = 1;
    let total = outcomes.len();
    let mut outputs = Vec::with_capacity(total);
    let mut failures = Vec::new();
    let mut stopped = false;
    for (index, child) in outcomes.into_iter().enumerate() {
        match child {
            Some(child) if child.status == StepStatus::Success => {
                outputs.push(Value::String(child.output));
            }
            Some(child) if child.status == StepStatus::Skipped => outputs.push(Value::Null),
            Some(child) if child.status == StepStatus::Failed => {
                outputs.push(Value::Null);
                failures.push(format!(
                    "{label}[{index}]: {}",
                    child.error.as_deref().unwrap_or("failed")
                ));
            }
            _ => {
                outputs.push(Value::Null);
                stopped = true;
            }
        }
    }
    outcome.output = Value::Array(outputs).to_string();
    if stopped {
        let error = "stopped: the run was cancelled or timed out".to_owned();
        emitter.failed(label, &error, false);
        outcome.status = StepStatus::Cancelled;
        outcome.error = Some(error);
    } else if let Some(first) = failures.first() {
        let error = format!("{} of {total} item(s) failed; {first}", failures.len());
        emitter.failed(label, &error, false);
        outcome.status = StepStatus::Failed;
        outcome.error = Some(error);
    } else {
        emitter.complete(label, &outcome.output, outcome.duration);
        outcome.status = StepStatus::Success;
    }
    outcome
}

/// The items as text: listed ones as written, a variable's as a JSON array or one per line
/// (or word); at most `max`.
fn items(items: &ParallelItems, scope: &Scope, max: usize) -> Result<Vec<String>, String> {
    let items: Vec<String> = match items {
        ParallelItems::Listed(items) => items.iter().map(item_text).collect(),
        ParallelItems::Variable(reference) => {
            let text = scope.substitute(reference);
            match serde_json::from_str::<Value>(text.trim()) {
                Ok(Value::Array(items)) => items.iter().map(item_text).collect(),
                _ if text.contains('\n') => text
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .map(str::to_owned)
                    .collect(),
                _ => text.split_whitespace().map(str::to_owned).collect(),
            }
        }
    };
    if items.len() > max {
        return Err(format!(
            "parallel has {} items; at most {max} are allowed",
            items.len()
        ));
    }
    Ok(items)
}
