//! Running one step for the local runner: check preconditions, then attempt the step (a
//! process inside the sandbox, a `docker run`, or an HTTP request through the caller's client)
//! as often as its retry settings allow, with backoff between attempts, emitting
//! `step_running`, `step_output` (as a process writes), `step_complete`, `step_failed` and
//! `step_skipped` events as it goes. The `scheduler` decides when a step starts; this file
//! decides how, and each executor's file what one attempt runs: [`command`] (and steps
//! without an executor), [`docker`], [`http`] and [`model`] (`llm_completion` and `agent`);
//! `run` steps call a sub-workflow and `get_secret` steps read a secret.
//!
//! Values reach shell text as environment variables (see `shell_env`); only the `http`
//! executor's config, the interpreter line and scripts for interpreters other than a shell
//! get values substituted as text. Each sandboxed process runs as a host uid of its own while
//! the server is root, leased for as long as the process lives.

mod command;
mod docker;
mod http;
pub mod model;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::RunContext;
use super::shell_env;
use crate::workflow::dsl::model::{
    Backoff, Executor, ExecutorKind, ExitCodes, GET_SECRET, Precondition, SCRIPT_DIR, Step,
    signal_number,
};
use crate::workflow::dsl::template::{Scope, is_var_name};
use crate::workflow::run::event::{OutputStream, format_duration};
use crate::workflow::run::http::HttpStepRequest;
use crate::workflow::run::live_output::{LiveBudget, StreamTap};
use crate::workflow::run::outcome::StepOutcome;
use crate::workflow::run::process::{
    OutputSinks, ProcessEnd, ProcessLimits, ProcessSpec, run_process, run_process_live,
};
use crate::workflow::run::sandbox::confinement::IdLease;
use crate::workflow::run::status::StepStatus;

/// Longest wait between attempts, whatever the backoff says.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
/// How much of stderr a failure message quotes.
const STDERR_IN_ERROR: usize = 2000;

/// One step to run, with the variables in scope for it.
pub(crate) struct StepJob<'a> {
    pub(crate) step: &'a Step,
    /// The name events use.
    pub(crate) label: String,
    /// Params, workflow env and dependency outputs; the step's env is added here.
    pub(crate) scope: Scope,
    /// Base name for script files, unique within the run.
    pub(crate) script_name: String,
}

/// Why an attempt did not succeed.
enum AttemptError {
    Failed {
        message: String,
        exit_code: Option<i32>,
        stdout: String,
        stderr: String,
    },
    /// The run was cancelled or timed out.
    Interrupted,
}

impl AttemptError {
    fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
        }
    }
}

/// What a successful attempt printed.
struct AttemptOutput {
    stdout: String,
    stderr: String,
}

/// Runs the step to its final state.
pub(crate) async fn run_step(
    context: &RunContext<'_>,
    job: StepJob<'_>,
    token: &CancellationToken,
) -> StepOutcome {
    match job.step.parallel() {
        Some(parallel) => super::parallel::fan_out(context, job, parallel, token).await,
        None => run_single_step(context, job, token).await,
    }
}

/// Runs one step that does not fan out (a `parallel` step's child is one).
pub(crate) async fn run_single_step(
    context: &RunContext<'_>,
    job: StepJob<'_>,
    token: &CancellationToken,
) -> StepOutcome {
    let started = Instant::now();
    let StepJob {
        step,
        label,
        mut scope,
        script_name,
    } = job;
    if let Some(env) = &step.env {
        for (name, value) in env.pairs() {
            let value = scope.substitute(&value);
            scope.set(name, value);
        }
    }
    let emitter = &context.emitter;
    let attempt_context = Attempt {
        context,
        step,
        scope: &scope,
        token,
        script_name: &script_name,
        label: &label,
        started,
    };
    let mut outcome = StepOutcome::pending();
    emitter.running(&label, context.sandbox.describe());
    match attempt_context.unmet_precondition().await {
        Ok(None) => {}
        Ok(Some(reason)) => {
            emitter.skipped(&label, &reason);
            outcome = StepOutcome::skipped(reason);
            outcome.duration = started.elapsed();
            return outcome;
        }
        Err(error) => {
            attempt_context.finish_failure(&mut outcome, error);
            outcome.duration = started.elapsed();
            return outcome;
        }
    }
    let retry = RetryPlan::of(step, context.options.default_retry_interval);
    let repeat = RepeatPlan::of(step, &context.options.workflow_limits);
    let mut runs = 0_u32;
    loop {
        runs += 1;
        if runs > 1 {
            emitter.running(
                &label,
                format!(
                    "repeating (run {runs} of at most {}); {}",
                    repeat.max_runs,
                    context.sandbox.describe()
                ),
            );
        }
        attempt_context.run_with_retries(&mut outcome, &retry).await;
        if runs >= repeat.max_runs
            || outcome.status == StepStatus::Cancelled
            || !attempt_context.repeats(&repeat, &outcome).await
        {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(repeat.interval) => {}
            () = token.cancelled() => break,
        }
    }
    outcome.duration = started.elapsed();
    outcome
}

/// A step's `repeatPolicy`: how often it runs again, how long it waits between runs, and
/// when it stops. Without a policy a step runs once.
#[derive(Debug, Clone, PartialEq)]
struct RepeatPlan {
    /// Runs in all, the first included: the policy's `limit`, capped by the workflow limits.
    max_runs: u32,
    interval: Duration,
    /// Repeat while the run's exit code is one of these (`exitCode`).
    while_exit_codes: Option<ExitCodes>,
    /// Repeat until this condition's value (a backquoted command's output) is `expected`.
    until: Option<(String, String)>,
}

impl RepeatPlan {
    fn of(step: &Step, limits: &super::limits::WorkflowLimits) -> Self {
        let Some(policy) = &step.repeat_policy else {
            return Self {
                max_runs: 1,
                interval: Duration::ZERO,
                while_exit_codes: None,
                until: None,
            };
        };
        let repeats = policy.repeat == Some(true)
            || policy.limit.is_some()
            || policy.exit_code.is_some()
            || policy.condition.is_some();
        let max_runs = if repeats {
            policy
                .limit
                .unwrap_or(limits.max_repeats)
                .clamp(1, limits.max_repeats)
        } else {
            1
        };
        Self {
            max_runs,
            interval: policy
                .interval_sec
                .as_ref()
                .and_then(|interval| interval.duration())
                .unwrap_or(limits.min_retry_interval)
                .max(limits.min_retry_interval),
            while_exit_codes: policy.exit_code.clone(),
            until: policy.condition.clone().map(|condition| {
                let expected = policy
                    .expected
                    .as_ref()
                    .map(|expected| expected.to_text())
                    .unwrap_or_default();
                (condition, expected)
            }),
        }
    }
}

/// The retry settings of a step: `retryPolicy` and `retries` (the larger limit wins).
#[derive(Debug, Clone, PartialEq)]
struct RetryPlan {
    limit: u32,
    interval: Duration,
    base: Option<f64>,
    max_interval: Option<Duration>,
    exit_codes: Option<ExitCodes>,
}

impl RetryPlan {
    fn of(step: &Step, default_interval: Duration) -> Self {
        let policy = step.retry_policy.as_ref();
        let limit = policy
            .and_then(|policy| policy.limit)
            .unwrap_or(0)
            .max(step.retries.unwrap_or(0));
        let interval = policy
            .and_then(|policy| policy.interval_sec.as_ref())
            .and_then(|interval| interval.duration())
            .unwrap_or(default_interval);
        let base = policy.and_then(|policy| {
            policy
                .exponential_base
                .as_ref()
                .and_then(serde_json::Number::as_f64)
                .or(match policy.backoff {
                    Some(Backoff::Enabled(true)) => Some(2.0),
                    Some(Backoff::Base(ref base)) => base.as_f64(),
                    _ => None,
                })
        });
        Self {
            limit,
            interval,
            base: base.filter(|base| base.is_finite() && *base > 0.0),
            max_interval: policy
                .and_then(|policy| policy.max_interval_sec.as_ref())
                .and_then(|max| max.duration()),
            exit_codes: policy.and_then(|policy| policy.exit_codes.clone()),
        }
    }

    /// Whether a failure with this exit code (none for timeouts and non-process steps) is
    /// retried.
    fn retries_on(&self, exit_code: Option<i32>) -> bool {
        match (&self.exit_codes, exit_code) {
            (None, _) => true,
            (Some(codes), Some(code)) => codes.contains(code),
            (Some(_), None) => false,
        }
    }

    /// The wait after the `failed_attempts`-th failure.
    fn delay(&self, failed_attempts: u32) -> Duration {
        let delay = match self.base {
            None => self.interval,
            Some(base) => {
                let exponent = i32::try_from(failed_attempts.saturating_sub(1)).unwrap_or(i32::MAX);
                let secs = self.interval.as_secs_f64() * base.powi(exponent);
                Duration::try_from_secs_f64(secs).unwrap_or(MAX_RETRY_DELAY)
            }
        };
        let delay = self.max_interval.map_or(delay, |max| delay.min(max));
        delay.min(MAX_RETRY_DELAY)
    }
}

/// What one attempt (or precondition check) of a step needs.
struct Attempt<'a, 'r> {
    context: &'a RunContext<'r>,
    step: &'a Step,
    scope: &'a Scope,
    token: &'a CancellationToken,
    script_name: &'a str,
    /// The step's name in events.
    label: &'a str,
    started: Instant,
}

/// What an attempt runs.
enum Work {
    Process {
        spec: ProcessSpec,
        /// Set for `docker` steps: the container to remove when the CLI is stopped.
        container: Option<String>,
        /// The host uid the process runs as, held until it ends.
        ids: Option<IdLease>,
    },
    Http(HttpStepRequest),
    /// A value known without running anything (a `get_secret` step's secret).
    Value(String),
}

impl Attempt<'_, '_> {
    /// Attempts the step as often as its retry settings allow; `outcome` gets the last
    /// attempt's result, its attempts counted on top of earlier runs'.
    async fn run_with_retries(&self, outcome: &mut StepOutcome, retry: &RetryPlan) {
        let context = self.context;
        let emitter = &context.emitter;
        let label = self.label;
        let first_attempt = outcome.attempts + 1;
        loop {
            outcome.attempts += 1;
            let attempt = outcome.attempts + 1 - first_attempt;
            if attempt > 1 {
                emitter.running(
                    label,
                    format!(
                        "retrying (attempt {attempt} of {}); {}",
                        retry.limit + 1,
                        context.sandbox.describe()
                    ),
                );
            }
            match self.attempt().await {
                Ok(output) => {
                    outcome.status = StepStatus::Success;
                    outcome.output = output.stdout.trim().to_owned();
                    outcome.stderr = output.stderr;
                    outcome.exit_code = Some(0);
                    outcome.error = None;
                    emitter.complete(label, &outcome.output, self.started.elapsed());
                    return;
                }
                Err(error) => {
                    let will_retry = match &error {
                        AttemptError::Failed { exit_code, .. } => {
                            attempt <= retry.limit
                                && retry.retries_on(*exit_code)
                                && !self.token.is_cancelled()
                        }
                        AttemptError::Interrupted => false,
                    };
                    if !will_retry {
                        self.finish_failure(outcome, error);
                        return;
                    }
                    if let AttemptError::Failed { message, .. } = &error {
                        emitter.failed(label, message, true);
                    }
                    // A backoff base below 1 shrinks the wait; it never goes under the floor.
                    let delay = retry
                        .delay(attempt)
                        .max(context.options.workflow_limits.min_retry_interval);
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.token.cancelled() => {
                            self.finish_failure(outcome, AttemptError::Interrupted);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Whether the step runs again after a run that ended as `outcome`.
    async fn repeats(&self, repeat: &RepeatPlan, outcome: &StepOutcome) -> bool {
        if let Some(codes) = &repeat.while_exit_codes {
            return outcome.exit_code.is_some_and(|code| codes.contains(code));
        }
        if outcome.status != StepStatus::Success {
            return false;
        }
        let Some((condition, expected)) = &repeat.until else {
            return true;
        };
        let expected = self.scope.substitute(expected);
        let actual = match condition
            .trim()
            .strip_prefix('`')
            .and_then(|inner| inner.strip_suffix('`'))
        {
            Some(command) => match self.condition_output(command).await {
                Ok(output) => output,
                Err(_) => return false,
            },
            None => self.scope.substitute(condition).trim().to_owned(),
        };
        actual != expected.trim()
    }

    /// Records a final failure (or cancellation) and emits its event. A failure that
    /// `continueOn` tolerates with `markSuccess` counts as a success.
    fn finish_failure(&self, outcome: &mut StepOutcome, error: AttemptError) {
        let emitter = &self.context.emitter;
        let AttemptError::Failed {
            message,
            exit_code,
            stdout,
            stderr,
        } = error
        else {
            const STOPPED: &str = "stopped: the run was cancelled or timed out";
            outcome.status = StepStatus::Cancelled;
            outcome.error = Some(STOPPED.to_owned());
            emitter.failed(self.label, STOPPED, false);
            return;
        };
        outcome.output = stdout.trim().to_owned();
        outcome.stderr = stderr;
        outcome.exit_code = exit_code;
        outcome.error = Some(message.clone());
        let marked_success = self.step.continue_on.as_ref().is_some_and(|continue_on| {
            let tolerated = continue_on.failure == Some(true)
                || exit_code
                    .zip(continue_on.exit_code.as_ref())
                    .is_some_and(|(code, codes)| codes.contains(code));
            tolerated && continue_on.mark_success == Some(true)
        });
        if marked_success {
            outcome.status = StepStatus::Success;
            emitter.complete(self.label, &outcome.output, self.started.elapsed());
        } else {
            outcome.status = StepStatus::Failed;
            emitter.failed(self.label, &message, false);
        }
    }

    /// `Some(reason)` when a precondition is not met.
    async fn unmet_precondition(&self) -> Result<Option<String>, AttemptError> {
        for precondition in self.step.preconditions.iter().flatten() {
            let (condition, expected) = match precondition {
                Precondition::Command(command) => (command, None),
                Precondition::Check(check) => (&check.condition, check.expected.as_ref()),
            };
            // Shown in messages; a command itself runs with its values in the environment.
            let condition_text = self.scope.substitute(condition);
            let Some(expected) = expected else {
                let code = self.condition_exit_code(condition).await?;
                if code != Some(0) {
                    let code = code.map_or_else(
                        || "did not finish".to_owned(),
                        |code| format!("exited with status {code}"),
                    );
                    return Ok(Some(format!(
                        "precondition not met: `{condition_text}` {code}"
                    )));
                }
                continue;
            };
            let expected = self.scope.substitute(&expected.to_text());
            // A backquoted condition is a command whose output is compared.
            let actual = match condition
                .trim()
                .strip_prefix('`')
                .and_then(|inner| inner.strip_suffix('`'))
            {
                Some(command) => self.condition_output(command).await?,
                None => condition_text.trim().to_owned(),
            };
            if actual != expected.trim() {
                return Ok(Some(format!(
                    "precondition not met: {condition:?} is {actual:?}, expected {:?}",
                    expected.trim()
                )));
            }
        }
        Ok(None)
    }

    async fn condition_exit_code(&self, command: &str) -> Result<Option<i32>, AttemptError> {
        let report = self.run_shell(command).await?;
        Ok(match report.end {
            ProcessEnd::Exited(code) => Some(code),
            ProcessEnd::Cancelled => return Err(AttemptError::Interrupted),
            ProcessEnd::Signalled(_) | ProcessEnd::TimedOut => None,
        })
    }

    async fn condition_output(&self, command: &str) -> Result<String, AttemptError> {
        let report = self.run_shell(command).await?;
        match report.end {
            ProcessEnd::Cancelled => Err(AttemptError::Interrupted),
            _ => Ok(report.stdout.trim().to_owned()),
        }
    }

    async fn run_shell(
        &self,
        command: &str,
    ) -> Result<crate::workflow::run::process::ProcessReport, AttemptError> {
        let mut args = self.shell_words();
        let program = args.remove(0);
        let (command, extra) = shell_env::prepare(command, self.scope);
        args.extend(["-c".to_owned(), command]);
        let spec = ProcessSpec {
            program,
            args,
            env: self.process_env(extra),
            cwd: self.cwd(),
            confinement: None,
        };
        let (spec, _ids) = self.sandboxed(spec)?;
        run_process(&spec, &self.limits(), self.token)
            .await
            .map_err(|error| {
                AttemptError::failed(format!("could not start the precondition check: {error}"))
            })
    }

    /// `spec` wrapped in the sandbox, with the host ids it runs as (held by the caller).
    fn sandboxed(&self, spec: ProcessSpec) -> Result<(ProcessSpec, Option<IdLease>), AttemptError> {
        let ids = self.context.step_ids().map_err(AttemptError::failed)?;
        let (lease, step_ids) = match ids {
            Some((lease, step_ids)) => (Some(lease), Some(step_ids)),
            None => (None, None),
        };
        let spec = self
            .context
            .sandbox
            .wrap(spec, &self.context.work_dir, step_ids)
            .map_err(AttemptError::failed)?;
        Ok((spec, lease))
    }

    /// The step's own timeout, else the default step timeout.
    fn timeout(&self) -> Duration {
        self.step
            .timeout_duration()
            .unwrap_or(self.context.options.step_limits.default_timeout)
    }

    fn limits(&self) -> ProcessLimits {
        ProcessLimits {
            timeout: Some(self.timeout()),
            output_limit: self.context.options.output_limit,
            kill_grace: self.context.options.kill_grace,
            // Validation refused names it does not know.
            stop_signal: self
                .step
                .signal_on_stop
                .as_deref()
                .and_then(signal_number)
                .unwrap_or(libc::SIGTERM),
        }
    }

    /// The step's `shell` as words, `sh` by default.
    fn shell_words(&self) -> Vec<String> {
        let words: Vec<String> = self
            .step
            .shell
            .as_deref()
            .unwrap_or("sh")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if words.is_empty() {
            vec!["sh".to_owned()]
        } else {
            words
        }
    }

    /// Every variable in scope and `extra`, plus `PATH` and `HOME` unless the workflow set
    /// them.
    fn process_env(&self, extra: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .scope
            .iter()
            .filter(|(name, _)| is_var_name(name))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .chain(extra)
            .collect();
        if self.scope.get("PATH").is_none() {
            env.push(("PATH".to_owned(), self.context.options.path_env.clone()));
        }
        if self.scope.get("HOME").is_none() {
            env.push((
                "HOME".to_owned(),
                self.context.work_dir.to_string_lossy().into_owned(),
            ));
        }
        env
    }

    /// The step's executor and its config with `${VAR}`s filled in.
    fn executor_config(&self) -> Result<(&Executor, Value), AttemptError> {
        let executor = self
            .step
            .executor
            .as_ref()
            .ok_or_else(|| AttemptError::failed("no executor"))?;
        let config = self
            .scope
            .substitute_json(&Value::Object(executor.config.clone().unwrap_or_default()));
        Ok((executor, config))
    }

    /// The step's `dir`, relative to the work directory unless absolute.
    fn cwd(&self) -> PathBuf {
        match &self.step.dir {
            Some(dir) => self.context.work_dir.join(self.scope.substitute(dir)),
            None => self.context.work_dir.clone(),
        }
    }

    /// Writes the script file; `body` is final (already prepared or substituted).
    async fn write_script(&self, body: &str) -> Result<PathBuf, AttemptError> {
        let path = self
            .context
            .work_dir
            .join(SCRIPT_DIR)
            .join(format!("{}.script", self.script_name));
        tokio::fs::write(&path, body).await.map_err(|error| {
            AttemptError::failed(format!("could not write the step's script: {error}"))
        })?;
        Ok(path)
    }

    async fn plan(&self) -> Result<Work, AttemptError> {
        let step = self.step;
        if let Some(name) = &step.run {
            let call = super::sub_workflow::SubWorkflowCall {
                name: name.trim(),
                params: step.extra.get("params"),
                scope: self.scope,
                label: self.label,
                library: self.context.library,
            };
            return super::sub_workflow::run(
                self.context.options,
                call,
                &self.context.emitter,
                self.token,
            )
            .await
            .map(Work::Value)
            .map_err(AttemptError::failed);
        }
        if step.kind.as_deref() == Some(GET_SECRET) {
            let name = step
                .extra
                .get("secret_name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // Every secret the workflow names was read before the run started.
            return self
                .context
                .secrets
                .get(name)
                .cloned()
                .map(Work::Value)
                .ok_or_else(|| AttemptError::failed(format!("secret {name} is not available")));
        }
        match step.executor_kind() {
            None | Some(ExecutorKind::Command) => self.command_plan().await,
            Some(ExecutorKind::Docker) => self.docker_plan().await,
            Some(ExecutorKind::Http) => self.http_plan().map(Work::Http),
            Some(ExecutorKind::LlmCompletion | ExecutorKind::Agent) => {
                self.model_answer().await.map(Work::Value)
            }
            Some(other) => Err(AttemptError::failed(format!(
                "the local runner cannot run {other} steps"
            ))),
        }
    }

    async fn attempt(&self) -> Result<AttemptOutput, AttemptError> {
        match self.plan().await? {
            Work::Process {
                spec,
                container,
                ids,
            } => {
                let result = self.run_work_process(&spec, container).await;
                drop(ids);
                result
            }
            Work::Http(request) => self.send_http(request).await,
            Work::Value(stdout) => Ok(AttemptOutput {
                stdout,
                stderr: String::new(),
            }),
        }
    }

    async fn run_work_process(
        &self,
        spec: &ProcessSpec,
        container: Option<String>,
    ) -> Result<AttemptOutput, AttemptError> {
        let limits = self.limits();
        let budget = LiveBudget::new();
        let emitter = &self.context.emitter;
        let mut stdout = StreamTap::new(self.label, OutputStream::Stdout, emitter, budget.clone());
        let mut stderr = StreamTap::new(self.label, OutputStream::Stderr, emitter, budget);
        let sinks = OutputSinks {
            stdout: &mut stdout,
            stderr: &mut stderr,
        };
        let report = run_process_live(spec, &limits, self.token, Some(sinks))
            .await
            .map_err(|error| {
                AttemptError::failed(format!("could not start {}: {error}", spec.program))
            })?;
        if let Some(container) = container
            && !matches!(report.end, ProcessEnd::Exited(_))
        {
            self.remove_container(&container).await;
        }
        let failure = |message: String, exit_code: Option<i32>| AttemptError::Failed {
            message: with_stderr(message, &report.stderr),
            exit_code,
            stdout: report.stdout.clone(),
            stderr: report.stderr.clone(),
        };
        match report.end {
            ProcessEnd::Exited(0) => Ok(AttemptOutput {
                stdout: report.stdout.clone(),
                stderr: report.stderr.clone(),
            }),
            ProcessEnd::Exited(code) => Err(failure(format!("exit status {code}"), Some(code))),
            ProcessEnd::Signalled(signal) => Err(failure(self.signal_message(signal), None)),
            ProcessEnd::TimedOut => Err(failure(
                format!(
                    "timed out after {}",
                    format_duration(limits.timeout.unwrap_or_default())
                ),
                None,
            )),
            ProcessEnd::Cancelled => Err(AttemptError::Interrupted),
        }
    }

    /// Why a process died of `signal`, naming the limit it hit when a limit sent it.
    fn signal_message(&self, signal: i32) -> String {
        let limits = &self.context.options.step_limits;
        match signal {
            libc::SIGXCPU => format!(
                "killed: the CPU time limit of {} s was reached",
                limits.cpu_secs
            ),
            libc::SIGXFSZ => format!(
                "killed: the file size limit of {} bytes was reached",
                limits.file_size_bytes
            ),
            other => format!("killed by signal {other}"),
        }
    }
}

/// `message`, followed by the end of stderr when there is any.
fn with_stderr(message: String, stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        return message;
    }
    let tail_start = stderr
        .char_indices()
        .rev()
        .nth(STDERR_IN_ERROR - 1)
        .map_or(0, |(index, _)| index);
    format!("{message}: {}", &stderr[tail_start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::dsl::model::{RetryPolicy, Seconds};

    fn step_with(policy: RetryPolicy) -> Step {
        Step {
            name: "s".to_owned(),
            retry_policy: Some(policy),
            ..Step::default()
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let step = step_with(RetryPolicy {
            limit: Some(5),
            interval_sec: Some(Seconds::from_secs(1)),
            max_interval_sec: Some(Seconds::from_secs(5)),
            backoff: Some(Backoff::Enabled(true)),
            ..RetryPolicy::default()
        });
        let plan = RetryPlan::of(&step, Duration::ZERO);
        let delays: Vec<u64> = (1..=5).map(|n| plan.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn retries_takes_the_larger_limit_and_exit_codes_filter() {
        let mut step = step_with(RetryPolicy {
            limit: Some(1),
            exit_codes: Some(ExitCodes::Many(vec![75])),
            ..RetryPolicy::default()
        });
        step.retries = Some(3);
        let plan = RetryPlan::of(&step, Duration::from_millis(10));
        assert_eq!(plan.limit, 3);
        assert_eq!(plan.delay(2), Duration::from_millis(10));
        assert!(plan.retries_on(Some(75)));
        assert!(!plan.retries_on(Some(1)));
        assert!(!plan.retries_on(None));
    }

    #[test]
    fn failure_messages_quote_the_end_of_stderr() {
        assert_eq!(
            with_stderr("exit status 1".to_owned(), "  \n"),
            "exit status 1"
        );
        assert_eq!(
            with_stderr("exit status 1".to_owned(), "boom\n"),
            "exit status 1: boom"
        );
        let long = "x".repeat(STDERR_IN_ERROR + 10);
        assert_eq!(
            with_stderr("e".to_owned(), &long).len(),
            "e: ".len() + STDERR_IN_ERROR
        );
    }
}
