//! Sub-workflows on the local runner: a step `{"run": "other", "params": "A=1 B=${X}"}` runs
//! the workflow `other` — the newest of that name among the run's library (the session's own
//! workflows), else the file `other.yaml`, `.yml` or `.json` of the configured workflows
//! directory — as a nested run — validated, sandboxed and limited like any run, with its own work
//! directory — at most [`MAX_DEPTH`] levels deep. The child's step events are forwarded under
//! the parent step as `parent/child-step`; the parent completes with the child's `output`
//! variables as a JSON object, or fails with the child's error.

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::sync::mpsc::unbounded_channel;
use tokio_util::sync::CancellationToken;

use super::scheduler::{LocalRunner, RunOptions, RunRequest};
use crate::workflow::dsl::model::Workflow;
use crate::workflow::dsl::template::Scope;
use crate::workflow::run::event::StepEvent;
use crate::workflow::run::outcome::RunOutcome;
use crate::workflow::run::status::ExecutionStatus;

/// Levels of sub-workflows below the top workflow.
pub const MAX_DEPTH: u32 = 3;

/// What a sub-workflow step asks for.
pub(crate) struct SubWorkflowCall<'a> {
    pub(crate) name: &'a str,
    /// The step's `params`: `"A=1 B=2"` or an object; values may use `${VAR}`.
    pub(crate) params: Option<&'a Value>,
    pub(crate) scope: &'a Scope,
    /// The parent step's name in events.
    pub(crate) label: &'a str,
    /// Workflows callable by name before the directory is searched.
    pub(crate) library: &'a [Workflow],
}

/// Why a sub-workflow step did not succeed, or its output.
pub(crate) async fn run(
    options: &RunOptions,
    call: SubWorkflowCall<'_>,
    emitter: &super::context::Emitter,
    token: &CancellationToken,
) -> Result<String, String> {
    if options.sub_workflow_depth >= MAX_DEPTH {
        return Err(format!(
            "sub-workflows may nest at most {MAX_DEPTH} levels deep"
        ));
    }
    let known = call
        .library
        .iter()
        .rev()
        .find(|workflow| workflow.name == call.name)
        .cloned();
    let workflow = match (known, options.workflows_dir.as_deref()) {
        (Some(workflow), _) => workflow,
        (None, Some(dir)) => load(dir, call.name).await?,
        (None, None) => {
            return Err(format!(
                "no workflow named {:?} in this session, and no workflows directory is configured (runner.local.workflows_dir)",
                call.name
            ));
        }
    };
    let params = params(call.params, call.scope);
    let nested = RunOptions {
        sub_workflow_depth: options.sub_workflow_depth + 1,
        ..options.clone()
    };
    let (events, mut receiver) = unbounded_channel();
    let request = RunRequest {
        workflow,
        params,
        events,
        cancel: token.child_token(),
        library: call.library.to_vec(),
    };
    let forward = async {
        while let Some(event) = receiver.recv().await {
            forward_event(emitter, call.label, event);
        }
    };
    let (outcome, ()) = tokio::join!(run_boxed(LocalRunner::new(nested), request), forward);
    match outcome.status {
        ExecutionStatus::Success => Ok(Value::Object(
            outcome
                .outputs
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect(),
        )
        .to_string()),
        _ => Err(format!(
            "sub-workflow {:?} {}: {}",
            call.name,
            match outcome.status {
                ExecutionStatus::Cancelled => "was cancelled",
                _ => "failed",
            },
            outcome.error.as_deref().unwrap_or("unknown error")
        )),
    }
}

/// The nested run behind a box: a run's future contains its steps', so it cannot contain
/// itself unboxed.
fn run_boxed(runner: LocalRunner, request: RunRequest) -> BoxFuture<'static, RunOutcome> {
    Box::pin(async move { runner.run(request).await })
}

/// A child's step event under the parent step's name (runs send no `workflow_complete`: the
/// child's outcome is the parent step's own business).
fn forward_event(emitter: &super::context::Emitter, parent: &str, event: StepEvent) {
    let nested = |step: &str| format!("{parent}/{step}");
    match event {
        StepEvent::StepRunning { step, message, .. } => emitter.running(&nested(&step), message),
        StepEvent::StepOutput {
            step, stream, text, ..
        } => emitter.output(&nested(&step), stream, &text),
        StepEvent::StepComplete {
            step,
            output,
            duration_ms,
            ..
        } => emitter.complete(
            &nested(&step),
            &output,
            std::time::Duration::from_millis(duration_ms),
        ),
        StepEvent::StepFailed {
            step,
            error,
            will_retry,
            ..
        } => emitter.failed(&nested(&step), &error, will_retry),
        StepEvent::StepSkipped { step, reason, .. } => emitter.skipped(&nested(&step), &reason),
        StepEvent::WorkflowComplete { .. } => {}
    }
}

/// Whether `name` can name a workflow file: no paths, nothing hidden.
fn is_workflow_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

async fn load(dir: &Path, name: &str) -> Result<Workflow, String> {
    if !is_workflow_name(name) {
        return Err(format!(
            "{name:?} is not a workflow name (letters, digits, -, _ and ., no paths)"
        ));
    }
    let candidates: Vec<PathBuf> = ["yaml", "yml", "json"]
        .iter()
        .map(|extension| dir.join(format!("{name}.{extension}")))
        .collect();
    for path in &candidates {
        match tokio::fs::read_to_string(path).await {
            Ok(text) => {
                return Workflow::parse(&text)
                    .map_err(|error| format!("sub-workflow {name:?} does not parse: {error}"));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("cannot read sub-workflow {name:?}: {error}")),
        }
    }
    Err(format!(
        "no workflow named {name:?} in the workflows directory"
    ))
}

/// `"A=1 B=${X}"` or `{"A": 1}`, values substituted from the parent step's scope.
fn params(params: Option<&Value>, scope: &Scope) -> Map<String, Value> {
    match params {
        Some(Value::String(text)) => text
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, value)| {
                let value = value.trim_matches(|c| c == '"' || c == '\'');
                (name.to_owned(), Value::String(scope.substitute(value)))
            })
            .collect(),
        Some(Value::Object(fields)) => fields
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Value::String(text) => Value::String(scope.substitute(text)),
                    other => other.clone(),
                };
                (name.clone(), value)
            })
            .collect(),
        _ => Map::new(),
    }
}
