//! The `kubiya workflow` commands, for people at a terminal: `validate FILE` prints every
//! problem with its JSON path; `run FILE` runs the workflow with the local runner (the
//! `[runner.local]` settings, loosened by `--allow-unsandboxed` / `--allow-network`) and
//! prints a line per step as it runs. Human output goes to stdout; logs still go through
//! tracing to stderr (warnings only, unless `LOG_LEVEL` says otherwise). Exit status: 0
//! valid / succeeded, 1 invalid / failed / cancelled, 2 unreadable file or bad settings.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a terminal command: what it prints is its answer"
)]

use std::path::Path;
use std::process::ExitCode;

use kubiya_actors::workflow::{
    ExecutionStatus, LocalRunner, RunOutcome, RunRequest, StepEvent, StepStatus, ValidationError,
    Workflow, validate_text,
};
use serde_json::{Map, Value};
use tokio::sync::mpsc::unbounded_channel;
use tokio_util::sync::CancellationToken;

use crate::cli::{RunArgs, ValidateArgs, WorkflowCommand};
use crate::config::{FlagOverrides, LocalRunnerSettings, LogLevel, Settings};
use crate::{execution_setup, telemetry};

/// The workflow is invalid or its run did not succeed.
const FAILED: u8 = 1;
/// The file or the settings could not be read.
const USAGE_ERROR: u8 = 2;

pub fn run(command: WorkflowCommand) -> ExitCode {
    match command {
        WorkflowCommand::Validate(args) => validate_file(&args),
        WorkflowCommand::Run(args) => run_file(&args),
    }
}

fn read(file: &Path) -> Result<String, ExitCode> {
    std::fs::read_to_string(file).map_err(|error| {
        eprintln!("kubiya: cannot read {}: {error}", file.display());
        ExitCode::from(USAGE_ERROR)
    })
}

fn validate_file(args: &ValidateArgs) -> ExitCode {
    let text = match read(&args.file) {
        Ok(text) => text,
        Err(code) => return code,
    };
    match validate_text(&text) {
        Ok(workflow) => {
            println!(
                "✓ {}: workflow '{}' is valid ({})",
                args.file.display(),
                workflow.name,
                plural(workflow.steps.len(), "step")
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!(
                "✗ {}: {}",
                args.file.display(),
                plural(problems.len(), "problem")
            );
            print_problems(&problems);
            ExitCode::from(FAILED)
        }
    }
}

fn print_problems(problems: &[ValidationError]) {
    for problem in problems {
        let path = if problem.path.is_empty() {
            "(document)"
        } else {
            &problem.path
        };
        println!("  {path}: {}", problem.message);
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn run_file(args: &RunArgs) -> ExitCode {
    let text = match read(&args.file) {
        Ok(text) => text,
        Err(code) => return code,
    };
    let workflow = match validate_text(&text) {
        Ok(workflow) => workflow,
        Err(problems) => {
            println!("✗ {}: the workflow is invalid", args.file.display());
            print_problems(&problems);
            return ExitCode::from(FAILED);
        }
    };
    let flags = FlagOverrides {
        config_file: args.config.clone(),
        ..FlagOverrides::default()
    };
    let settings = match Settings::load(&flags) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("kubiya: {error}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let mut log = settings.log.clone();
    if std::env::var_os("LOG_LEVEL").is_none() {
        // Info lines would interleave with the progress display.
        log.level = LogLevel::Warn;
    }
    let _log_guard = telemetry::init(&log);
    let local = LocalRunnerSettings {
        allow_unsandboxed: settings.runner.local.allow_unsandboxed || args.allow_unsandboxed,
        allow_network: settings.runner.local.allow_network || args.allow_network,
        ..settings.runner.local.clone()
    };
    let params: Map<String, Value> = args
        .params
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    let outcome =
        actix_web::rt::System::new().block_on(run_locally(workflow.clone(), params, &local));
    report(&workflow, &outcome);
    if outcome.status == ExecutionStatus::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

/// Runs the workflow, printing its events as they come; Ctrl-C cancels the run.
async fn run_locally(
    workflow: Workflow,
    params: Map<String, Value>,
    local: &LocalRunnerSettings,
) -> RunOutcome {
    let runner = LocalRunner::new(execution_setup::local_run_options(local, None));
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    actix_web::rt::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
        }
    });
    let (events, mut received) = unbounded_channel();
    let show_progress = async move {
        while let Some(event) = received.recv().await {
            show(&event);
        }
    };
    let request = RunRequest {
        workflow,
        params,
        events,
        cancel,
        library: Vec::new(),
    };
    let (outcome, ()) = tokio::join!(runner.run(request), show_progress);
    outcome
}

/// One line per event, marked: ▶ running, ↻ retrying, ✓ done, ✗ failed, ↷ skipped.
fn show(event: &StepEvent) {
    match event {
        StepEvent::StepRunning { step, message, .. } => match message.strip_prefix("retrying") {
            Some(_) => {
                let attempt = message.split(';').next().unwrap_or(message);
                println!("↻ {step}: {attempt}");
            }
            None => println!("▶ {step}"),
        },
        StepEvent::StepComplete {
            step,
            duration,
            output,
            ..
        } => {
            println!("✓ {step} ({duration})");
            print_indented(output);
        }
        StepEvent::StepFailed {
            step,
            error,
            will_retry,
            ..
        } => {
            let retry = if *will_retry { " (will retry)" } else { "" };
            let mut lines = error.lines();
            println!("✗ {step}: {}{retry}", lines.next().unwrap_or_default());
            for line in lines {
                println!("    {line}");
            }
        }
        StepEvent::StepSkipped { step, reason, .. } => println!("↷ {step} skipped: {reason}"),
        // The output is shown whole under the step's line when it ends.
        StepEvent::StepOutput { .. } => {}
        // The final line comes from `report`, which also has the outcome's details.
        StepEvent::WorkflowComplete { .. } => {}
    }
}

/// Lines of a step's output shown under it; the rest is counted, not shown.
const OUTPUT_LINES_SHOWN: usize = 20;

fn print_indented(output: &str) {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    for line in lines.iter().take(OUTPUT_LINES_SHOWN) {
        println!("    {line}");
    }
    if lines.len() > OUTPUT_LINES_SHOWN {
        println!("    … ({} more lines)", lines.len() - OUTPUT_LINES_SHOWN);
    }
}

/// The failed steps' output, the problems that stopped the run, and the final line.
fn report(workflow: &Workflow, outcome: &RunOutcome) {
    for (name, step) in outcome.steps.iter().chain(&outcome.handlers) {
        if step.status != StepStatus::Failed {
            continue;
        }
        for (stream, text) in [("stdout", &step.output), ("stderr", &step.stderr)] {
            let already_shown = step
                .error
                .as_deref()
                .is_some_and(|error| error.contains(text.trim()));
            if text.trim().is_empty() || already_shown {
                continue;
            }
            println!("  {stream} of {name}:");
            print_indented(text);
        }
    }
    print_problems(&outcome.validation_errors);
    let duration = format!("{:.1}s", outcome.duration.as_secs_f64());
    let name = &workflow.name;
    match outcome.status {
        ExecutionStatus::Success => println!("✓ workflow {name} succeeded in {duration}"),
        // A local run is never lost, nor still going once it returned; the arm only keeps
        // the match whole.
        ExecutionStatus::Failed
        | ExecutionStatus::Lost
        | ExecutionStatus::Queued
        | ExecutionStatus::Running => println!(
            "✗ workflow {name} failed after {duration}: {}",
            outcome.error.as_deref().unwrap_or("unknown error")
        ),
        ExecutionStatus::Cancelled => println!("■ workflow {name} cancelled after {duration}"),
    }
}
