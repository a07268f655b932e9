//! What one execution may consume on this host: per step (memory, processes, CPU time, file
//! size, open files, the private `/tmp`, wall time) and per workflow (wall time, steps, steps
//! at once, retries). The defaults are what the README's "Security model" lists; the
//! `[runner.local]` settings change them.
//!
//! Step limits become rlimits that the process layer sets on the sandbox before it starts
//! ([`crate::workflow::run::sandbox::confinement`]) and a tmpfs size for the sandbox. Workflow limits are checked by
//! [`check_workflow_limits`] before anything runs, so a model gets every violation with its
//! JSON path and can fix the workflow; the runner applies the default timeouts.

use std::time::Duration;

use crate::workflow::dsl::error::ValidationError;
use crate::workflow::dsl::model::{Parallel, ParallelItems, Step, Workflow};
use crate::workflow::dsl::validate::handler_steps;

/// Bounds on every sandboxed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimits {
    /// Address space of each process, in bytes (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Processes and threads at once (`RLIMIT_NPROC`, counted per sandbox user).
    pub max_processes: u64,
    /// CPU seconds of each process (`RLIMIT_CPU`).
    pub cpu_secs: u64,
    /// Largest file a process may write, in bytes (`RLIMIT_FSIZE`).
    pub file_size_bytes: u64,
    /// Open files of each process (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Size of the private `/tmp`, in bytes.
    pub tmp_bytes: u64,
    /// Wall time of a step that sets no `timeout`.
    pub default_timeout: Duration,
}

impl Default for StepLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 2 << 30,
            max_processes: 256,
            cpu_secs: 600,
            file_size_bytes: 1 << 30,
            open_files: 1024,
            tmp_bytes: 256 << 20,
            default_timeout: Duration::from_secs(600),
        }
    }
}

/// Bounds on a whole workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowLimits {
    /// Wall time of a workflow that sets no `timeout`.
    pub default_timeout: Duration,
    /// Steps in one workflow (handlers included).
    pub max_steps: usize,
    /// Highest `maxActiveSteps` a workflow may ask for.
    pub max_active_steps: u32,
    /// Highest `retryPolicy.limit` (and `retries`) a step may ask for.
    pub max_retries: u32,
    /// Shortest `retryPolicy.intervalSec` of a step that retries (and `repeatPolicy`'s).
    pub min_retry_interval: Duration,
    /// Most runs of a step with a `repeatPolicy` (its `limit`, or this when it sets none).
    pub max_repeats: u32,
    /// Most items a `parallel` step fans out over.
    pub max_parallel_items: usize,
    /// Total bytes of the workflow's `files`.
    pub max_files_bytes: usize,
}

impl Default for WorkflowLimits {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(3600),
            max_steps: 100,
            max_active_steps: 16,
            max_retries: 10,
            min_retry_interval: Duration::from_secs(1),
            max_repeats: 100,
            max_parallel_items: 100,
            max_files_bytes: 1024 * 1024,
        }
    }
}

/// Every way `workflow` asks for more than `limits` allow, with JSON paths.
pub fn check_workflow_limits(workflow: &Workflow, limits: &WorkflowLimits) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let handlers: Vec<(String, &Step)> = workflow
        .handler_on
        .iter()
        .flat_map(handler_steps)
        .map(|(event, step)| (format!("handlerOn.{event}"), step))
        .collect();
    let total = workflow.steps.len() + handlers.len();
    if total > limits.max_steps {
        errors.push(ValidationError::new(
            "steps",
            format!(
                "the workflow has {total} steps; at most {} are allowed; merge or remove steps",
                limits.max_steps
            ),
        ));
    }
    if let Some(asked) = workflow.max_active_steps
        && asked > limits.max_active_steps
    {
        errors.push(ValidationError::new(
            "maxActiveSteps",
            format!(
                "maxActiveSteps is {asked}; at most {} steps may run at once",
                limits.max_active_steps
            ),
        ));
    }
    let steps = workflow
        .steps
        .iter()
        .enumerate()
        .map(|(index, step)| (format!("steps[{index}]"), step));
    for (path, step) in steps.chain(handlers) {
        check_retries(step, &path, limits, &mut errors);
        check_repeats(step, &path, limits, &mut errors);
        check_parallel(step, &path, limits, &mut errors);
    }
    let files_bytes: usize = workflow
        .files()
        .map(|(name, content)| name.len() + content.len())
        .sum();
    if files_bytes > limits.max_files_bytes {
        errors.push(ValidationError::new(
            "files",
            format!(
                "the workflow's files hold {files_bytes} bytes; at most {} are allowed",
                limits.max_files_bytes
            ),
        ));
    }
    errors
}

fn check_parallel(
    step: &Step,
    path: &str,
    limits: &WorkflowLimits,
    errors: &mut Vec<ValidationError>,
) {
    let Some(value) = &step.parallel else {
        return;
    };
    let Some(parallel) = Parallel::of(value) else {
        errors.push(ValidationError::new(
            format!("{path}.parallel"),
            "parallel must be a list of items, {\"items\": [...], \"maxConcurrent\": N}, or a ${VAR} holding a list",
        ));
        return;
    };
    if let ParallelItems::Listed(items) = &parallel.items
        && items.len() > limits.max_parallel_items
    {
        errors.push(ValidationError::new(
            format!("{path}.parallel.items"),
            format!(
                "parallel has {} items; at most {} are allowed",
                items.len(),
                limits.max_parallel_items
            ),
        ));
    }
    if let Some(max) = parallel.max_concurrent
        && (max == 0 || max > u64::from(limits.max_active_steps))
    {
        errors.push(ValidationError::new(
            format!("{path}.parallel.maxConcurrent"),
            format!(
                "maxConcurrent is {max}; it must be between 1 and {}",
                limits.max_active_steps
            ),
        ));
    }
}

fn check_repeats(
    step: &Step,
    path: &str,
    limits: &WorkflowLimits,
    errors: &mut Vec<ValidationError>,
) {
    let Some(policy) = &step.repeat_policy else {
        return;
    };
    if let Some(limit) = policy.limit
        && limit > limits.max_repeats
    {
        errors.push(ValidationError::new(
            format!("{path}.repeatPolicy.limit"),
            format!(
                "repeatPolicy.limit is {limit}; a step may run at most {} times",
                limits.max_repeats
            ),
        ));
    }
    if let Some(interval) = &policy.interval_sec
        && interval
            .duration()
            .is_none_or(|interval| interval < limits.min_retry_interval)
    {
        errors.push(ValidationError::new(
            format!("{path}.repeatPolicy.intervalSec"),
            format!(
                "repeatPolicy.intervalSec must be at least {} second(s) between runs",
                limits.min_retry_interval.as_secs_f64()
            ),
        ));
    }
}

fn check_retries(
    step: &Step,
    path: &str,
    limits: &WorkflowLimits,
    errors: &mut Vec<ValidationError>,
) {
    if let Some(retries) = step.retries
        && retries > limits.max_retries
    {
        errors.push(ValidationError::new(
            format!("{path}.retries"),
            format!(
                "retries is {retries}; at most {} retries are allowed",
                limits.max_retries
            ),
        ));
    }
    let Some(policy) = &step.retry_policy else {
        return;
    };
    let limit = policy.limit.unwrap_or(0);
    if limit > limits.max_retries {
        errors.push(ValidationError::new(
            format!("{path}.retryPolicy.limit"),
            format!(
                "retryPolicy.limit is {limit}; at most {} retries are allowed",
                limits.max_retries
            ),
        ));
    }
    let retries = limit.max(step.retries.unwrap_or(0));
    let interval = policy
        .interval_sec
        .as_ref()
        .map(|interval| interval.duration());
    if retries > 0
        && let Some(interval) = interval
        && interval.is_none_or(|interval| interval < limits.min_retry_interval)
    {
        errors.push(ValidationError::new(
            format!("{path}.retryPolicy.intervalSec"),
            format!(
                "retryPolicy.intervalSec must be at least {} second(s) between retries",
                limits.min_retry_interval.as_secs_f64()
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::validate_value;

    fn paths(workflow: serde_json::Value, limits: &WorkflowLimits) -> Vec<String> {
        let workflow = validate_value(&workflow).expect("a valid workflow");
        check_workflow_limits(&workflow, limits)
            .into_iter()
            .map(|error| error.path)
            .collect()
    }

    #[test]
    fn retry_and_parallelism_caps_are_errors_with_paths() {
        let found = paths(
            serde_json::json!({
                "name": "w",
                "maxActiveSteps": 100000,
                "steps": [
                    {"name": "a", "command": "true",
                     "retryPolicy": {"limit": 1000000000, "intervalSec": 0}},
                    {"name": "b", "command": "true", "retries": 3,
                     "retryPolicy": {"intervalSec": 0.5}},
                    {"name": "c", "command": "true", "retryPolicy": {"limit": 2, "intervalSec": 5}}
                ]
            }),
            &WorkflowLimits::default(),
        );
        assert_eq!(
            found,
            [
                "maxActiveSteps",
                "steps[0].retryPolicy.limit",
                "steps[0].retryPolicy.intervalSec",
                "steps[1].retryPolicy.intervalSec",
            ]
        );
    }

    #[test]
    fn too_many_steps_is_an_error() {
        let steps: Vec<_> = (0..4)
            .map(|index| serde_json::json!({"name": format!("s{index}"), "command": "true"}))
            .collect();
        let limits = WorkflowLimits {
            max_steps: 3,
            ..WorkflowLimits::default()
        };
        assert_eq!(
            paths(serde_json::json!({"name": "w", "steps": steps}), &limits),
            ["steps"]
        );
    }
}
