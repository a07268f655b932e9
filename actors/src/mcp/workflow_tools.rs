//! The workflow tools `kubiya mcp server` offers to MCP hosts: `validate_workflow`,
//! `execute_workflow`, `get_execution` and `list_runners`. They sit on the workflow domain
//! (validation and the [`LocalRunner`]); [`super::server`] speaks the protocol around them.
//!
//! Executions run in this process, each in its own task, and are remembered here (the last
//! [`KEPT_EXECUTIONS`]) so `get_execution` can follow one started with `wait: false`. A
//! waiting `execute_workflow` streams its step events as progress notifications.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::features::ServerFeatures;
use super::jsonrpc::{INVALID_PARAMS, RpcError};
use super::notify::{CallContext, LogLevel, Logger, ProgressReporter};
use super::workflow_resources;
use crate::workflow::dsl::model::parse_document;
use crate::workflow::run::event::now_millis;
use crate::workflow::{
    LocalRunner, RunOutcome, RunRequest, StepEvent, StepOutcome, ValidationError, Workflow,
    check_runnable_locally, normalised, validate_value,
};

/// Finished executions remembered for `get_execution`.
pub const KEPT_EXECUTIONS: usize = 100;
/// Events kept per execution; older ones are dropped (the count says how many).
const KEPT_EVENTS: usize = 2000;

/// The workflow tool set.
pub struct WorkflowTools {
    runner: LocalRunner,
    /// Whether a Kubiya platform key is configured (`KUBIYA_API_KEY`).
    kubiya_configured: bool,
    executions: Arc<Mutex<Executions>>,
    /// Executions that may run at once (0: no limit); one more is refused.
    max_running: usize,
}

#[derive(Default)]
pub(super) struct Executions {
    pub(super) records: HashMap<String, ExecutionRecord>,
    /// Finished ids, oldest first, for eviction.
    finished: VecDeque<String>,
}

pub(super) struct ExecutionRecord {
    pub(super) workflow: String,
    /// The workflow as it ran (normalised), for the `.../workflow` resource.
    pub(super) document: Value,
    pub(super) started_at: u64,
    events: VecDeque<StepEvent>,
    dropped_events: usize,
    /// The final result once the run ended.
    result: Option<Value>,
    /// Rises with every event, for resource subscriptions.
    pub(super) changes: watch::Sender<u64>,
}

impl ExecutionRecord {
    /// What `get_execution` and the execution resource show, events after the first `after`.
    pub(super) fn view(&self, id: &str, after: usize) -> Value {
        let total = self.dropped_events + self.events.len();
        let skip = after.saturating_sub(self.dropped_events);
        let status = self
            .result
            .as_ref()
            .and_then(|result| result.get("status").cloned())
            .unwrap_or_else(|| Value::from("running"));
        json!({
            "execution_id": id,
            "workflow": self.workflow,
            "status": status,
            "started_at": self.started_at,
            "event_count": total,
            "events": self.events.iter().skip(skip).collect::<Vec<_>>(),
            "result": self.result,
        })
    }
}

impl WorkflowTools {
    pub fn new(runner: LocalRunner, kubiya_configured: bool) -> Self {
        Self {
            runner,
            kubiya_configured,
            executions: Arc::new(Mutex::new(Executions::default())),
            max_running: 0,
        }
    }

    /// At most `max_running` executions at once (0: no limit).
    #[must_use]
    pub fn with_max_running(mut self, max_running: usize) -> Self {
        self.max_running = max_running;
        self
    }
}

impl ServerFeatures for WorkflowTools {
    fn tools(&self) -> Vec<Value> {
        tool_definitions()
    }

    fn call(
        &self,
        name: &str,
        arguments: Value,
        context: CallContext,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        let runner = self.runner.clone();
        let executions = self.executions.clone();
        let kubiya_configured = self.kubiya_configured;
        match name {
            "validate_workflow" => {
                Box::pin(async move { Ok(validate_tool(&runner, &arguments).await) })
            }
            "list_runners" => {
                Box::pin(async move { Ok(list_runners(&runner, kubiya_configured).await) })
            }
            "execute_workflow" => {
                let max_running = self.max_running;
                Box::pin(execute(runner, executions, max_running, arguments, context))
            }
            "get_execution" => Box::pin(async move { Ok(get_execution(&executions, &arguments)) }),
            other => {
                let error = RpcError::new(INVALID_PARAMS, format!("Unknown tool: {other}"));
                Box::pin(async move { Err(error) })
            }
        }
    }

    fn resources(&self) -> Vec<Value> {
        workflow_resources::list(&self.executions)
    }

    fn resource_templates(&self) -> Vec<Value> {
        workflow_resources::templates()
    }

    fn read_resource(&self, uri: &str) -> Result<Vec<Value>, RpcError> {
        workflow_resources::read(&self.executions, uri)
    }

    fn watch_resource(&self, uri: &str) -> Result<watch::Receiver<u64>, RpcError> {
        workflow_resources::watch(&self.executions, uri)
    }

    fn prompts(&self) -> Vec<Value> {
        workflow_resources::prompts()
    }

    fn get_prompt(&self, name: &str, arguments: &Map<String, Value>) -> Result<Value, RpcError> {
        workflow_resources::get_prompt(&self.executions, name, arguments)
    }

    fn complete(&self, reference: &Value, argument: &str, prefix: &str) -> Vec<String> {
        workflow_resources::complete(&self.executions, reference, argument, prefix)
    }
}

fn tool_definitions() -> Vec<Value> {
    let workflow_schema = json!({
        "description": "The workflow: an object with \"name\" and \"steps\" (each step has \"name\" and a \"command\", \"script\" or \"executor\"; \"depends\" lists earlier steps), or the same as JSON or YAML text.",
        "type": ["object", "string"],
    });
    vec![
        json!({
            "name": "validate_workflow",
            "title": "Validate a workflow",
            "description": "Checks a workflow without running it and lists every problem with its JSON path. Also says whether the local runner can run it on this host.",
            "inputSchema": {
                "type": "object",
                "properties": {"workflow": workflow_schema},
                "required": ["workflow"],
                "additionalProperties": false,
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "valid": {"type": "boolean"},
                    "workflow": {"type": "string"},
                    "steps": {"type": "integer"},
                    "runnable_locally": {"type": "boolean"},
                    "local_runner_problems": {"type": "array"},
                    "normalised": {"type": "object"},
                    "errors": {"type": "array", "items": {"type": "object", "properties": {"path": {"type": "string"}, "message": {"type": "string"}}}},
                },
                "required": ["valid"],
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false},
        }),
        json!({
            "name": "execute_workflow",
            "title": "Run a workflow",
            "description": "Validates and runs a workflow on a runner (\"local\": this host, sandboxed). By default waits for the end and returns the final status, step results and outputs, sending each step event as a progress notification; with \"wait\": false returns the execution id at once (follow it with get_execution).",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "workflow": workflow_schema,
                    "params": {"type": "object", "description": "Values for the workflow's params, by name.", "additionalProperties": true},
                    "runner": {"type": "string", "description": "Where to run; see list_runners. Default \"local\".", "default": "local"},
                    "wait": {"type": "boolean", "description": "Wait for the run to end (default true).", "default": true},
                },
                "required": ["workflow"],
                "additionalProperties": false,
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "execution_id": {"type": "string"},
                    "status": {"type": "string", "description": "running (wait: false), success, failed, cancelled or invalid"},
                    "error": {"type": ["string", "null"]},
                    "duration_ms": {"type": "integer"},
                    "outputs": {"type": "object"},
                    "steps": {"type": "array", "items": {"type": "object"}},
                    "handlers": {"type": "array", "items": {"type": "object"}},
                    "validation_errors": {"type": "array"},
                    "sandboxed": {"type": "boolean"},
                    "errors": {"type": "array"},
                },
                "required": ["status"],
            },
            "annotations": {"readOnlyHint": false, "destructiveHint": true, "openWorldHint": true},
        }),
        json!({
            "name": "get_execution",
            "title": "Follow an execution",
            "description": "The status, step events and (once finished) result of an execution started by execute_workflow in this server.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "execution_id": {"type": "string"},
                    "after": {"type": "integer", "minimum": 0, "description": "Return only events after this many (to poll for new ones)."},
                },
                "required": ["execution_id"],
                "additionalProperties": false,
            },
            "outputSchema": execution_view_schema(),
            "annotations": {"readOnlyHint": true, "openWorldHint": false},
        }),
        json!({
            "name": "list_runners",
            "title": "List runners",
            "description": "The runners workflows can run on, with whether each is usable now.",
            "inputSchema": {"type": "object", "properties": {}, "additionalProperties": false},
            "outputSchema": {
                "type": "object",
                "properties": {"runners": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "status": {"type": "string"}, "description": {"type": "string"}},
                    "required": ["name", "status"],
                }}},
                "required": ["runners"],
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false},
        }),
    ]
}

/// What `get_execution` returns and the execution resource holds.
pub(super) fn execution_view_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "execution_id": {"type": "string"},
            "workflow": {"type": "string"},
            "status": {"type": "string"},
            "started_at": {"type": "integer", "description": "Unix time in milliseconds"},
            "event_count": {"type": "integer"},
            "events": {"type": "array", "items": {"type": "object"}},
            "result": {"type": ["object", "null"]},
        },
        "required": ["execution_id", "status", "events"],
    })
}

/// A `CallToolResult` whose text is `value` as JSON (and whose structured content is `value`).
fn result(value: Value, is_error: bool) -> Value {
    json!({
        "content": [{"type": "text", "text": serde_json::to_string_pretty(&value).unwrap_or_default()}],
        "structuredContent": value,
        "isError": is_error,
    })
}

fn tool_error(message: impl Into<String>) -> Value {
    json!({"content": [{"type": "text", "text": message.into()}], "isError": true})
}

/// The workflow argument as a validated workflow, or the problems to report.
fn parse_workflow(arguments: &Value) -> Result<Workflow, Vec<ValidationError>> {
    let document = match arguments.get("workflow") {
        Some(Value::String(text)) => parse_document(text)
            .map_err(|error| vec![ValidationError::new("", error.to_string())])?,
        Some(value @ Value::Object(_)) => value.clone(),
        Some(_) | None => {
            return Err(vec![ValidationError::new(
                "",
                "\"workflow\" is required: a workflow object, or its JSON or YAML text",
            )]);
        }
    };
    validate_value(&document)
}

async fn validate_tool(runner: &LocalRunner, arguments: &Value) -> Value {
    match parse_workflow(arguments) {
        Ok(workflow) => {
            let host = runner.host_capabilities(&workflow, &[]).await;
            let local_problems = check_runnable_locally(&workflow, &host);
            result(
                json!({
                    "valid": true,
                    "workflow": workflow.name,
                    "steps": workflow.steps.len(),
                    "runnable_locally": local_problems.is_empty(),
                    "local_runner_problems": local_problems,
                    "normalised": normalised(&workflow).to_value(),
                }),
                false,
            )
        }
        Err(errors) => result(json!({"valid": false, "errors": errors}), false),
    }
}

async fn list_runners(runner: &LocalRunner, kubiya_configured: bool) -> Value {
    let options = runner.options();
    let sandbox = runner.probe_sandbox().await;
    let (status, isolation) = match &sandbox {
        Ok(()) => ("available", "bubblewrap".to_owned()),
        Err(_) if options.allow_unsandboxed => {
            ("available", "none (bubblewrap unavailable)".to_owned())
        }
        Err(reason) => ("unavailable", format!("bubblewrap unavailable: {reason}")),
    };
    let mut runners = vec![json!({
        "name": "local",
        "type": "local",
        "status": status,
        "description": "Runs command, script and plain-http steps on this host in a private work directory.",
        "isolation": isolation,
        "network": options.allow_network,
    })];
    if kubiya_configured {
        runners.push(json!({
            "name": "kubiya",
            "type": "kubiya-hosted",
            "status": "configured",
            "description": "Kubiya platform runners (KUBIYA_API_KEY is set); workflows run there through the agent server.",
            "executable_here": false,
        }));
    }
    result(json!({"runners": runners}), false)
}

async fn execute(
    runner: LocalRunner,
    executions: Arc<Mutex<Executions>>,
    max_running: usize,
    arguments: Value,
    context: CallContext,
) -> Result<Value, RpcError> {
    let workflow = match parse_workflow(&arguments) {
        Ok(workflow) => workflow,
        Err(errors) => {
            return Ok(result(json!({"status": "invalid", "errors": errors}), true));
        }
    };
    match arguments
        .get("runner")
        .and_then(Value::as_str)
        .unwrap_or("local")
    {
        "local" => {}
        "kubiya" => {
            return Ok(tool_error(
                "the kubiya runner cannot be used from this MCP server; run with runner \"local\", or through the agent server",
            ));
        }
        other => {
            return Ok(tool_error(format!(
                "unknown runner `{other}`; list_runners shows the runners available"
            )));
        }
    }
    let params = match arguments.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params.clone(),
        Some(_) => return Ok(tool_error("\"params\" must be an object of values by name")),
    };
    let wait = arguments
        .get("wait")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let id = format!("exec_{}", uuid::Uuid::new_v4().simple());
    if let Ok(mut executions) = executions.lock() {
        let running = executions
            .records
            .values()
            .filter(|record| record.result.is_none())
            .count();
        if max_running > 0 && running >= max_running {
            return Ok(tool_error(format!(
                "{running} executions are running, the most allowed at once; wait for one to finish (get_execution shows them)"
            )));
        }
        executions.records.insert(
            id.clone(),
            ExecutionRecord {
                workflow: workflow.name.clone(),
                document: normalised(&workflow).to_value(),
                started_at: now_millis(),
                events: VecDeque::new(),
                dropped_events: 0,
                result: None,
                changes: watch::channel(0).0,
            },
        );
    }
    tracing::info!(execution = %id, workflow = %workflow.name, wait, "workflow execution started");

    // A waiting call is cancelled with its request; a detached run ends with the process.
    let cancel = if wait {
        context.cancel.clone()
    } else {
        CancellationToken::new()
    };
    let progress = if wait { context.progress } else { None };
    let log = if wait { context.log } else { None };
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(run_execution(RunJob {
        runner,
        executions,
        id: id.clone(),
        workflow,
        params,
        cancel,
        progress,
        log,
        done: done_tx,
    }));
    if !wait {
        return Ok(result(
            json!({"execution_id": id, "status": "running"}),
            false,
        ));
    }
    let summary = done_rx.await.unwrap_or_else(|_| {
        json!({"execution_id": id, "status": "failed", "error": "the run ended without a result"})
    });
    let failed = summary.get("status").and_then(Value::as_str) != Some("success");
    Ok(result(summary, failed))
}

/// One run and where its events and result go.
struct RunJob {
    runner: LocalRunner,
    executions: Arc<Mutex<Executions>>,
    id: String,
    workflow: Workflow,
    params: Map<String, Value>,
    cancel: CancellationToken,
    progress: Option<ProgressReporter>,
    /// Step logs as `notifications/message`, when the client wants them.
    log: Option<Logger>,
    done: oneshot::Sender<Value>,
}

async fn run_execution(job: RunJob) {
    let RunJob {
        runner,
        executions,
        id,
        workflow,
        params,
        cancel,
        mut progress,
        log,
        done,
    } = job;
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let run = runner.run(RunRequest {
        workflow,
        params,
        events: events_tx,
        cancel,
        library: Vec::new(),
    });
    tokio::pin!(run);
    let mut record_event = |event: StepEvent| {
        if let Some(progress) = progress.as_mut() {
            progress.report(serde_json::to_string(&event).unwrap_or_default());
        }
        if let Some(log) = log.as_ref() {
            log.log(
                log_level_of(&event),
                "workflow",
                json!({"execution_id": id, "event": event}),
            );
        }
        // Live output is streamed above, not kept: the step's final event holds its output.
        if let Ok(mut executions) = executions.lock()
            && let Some(record) = executions.records.get_mut(&id)
            && !matches!(event, StepEvent::StepOutput { .. })
        {
            if record.events.len() >= KEPT_EVENTS {
                record.events.pop_front();
                record.dropped_events += 1;
            }
            record.events.push_back(event);
            record.changes.send_modify(|count| *count += 1);
        }
    };
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            Some(event) = events_rx.recv() => record_event(event),
        }
    };
    while let Ok(event) = events_rx.try_recv() {
        record_event(event);
    }
    let summary = summarise(&id, &outcome);
    tracing::info!(execution = %id, status = %summary["status"], "workflow execution finished");
    if let Ok(mut executions) = executions.lock() {
        if let Some(record) = executions.records.get_mut(&id) {
            record.result = Some(summary.clone());
            record.changes.send_modify(|count| *count += 1);
        }
        executions.finished.push_back(id.clone());
        while executions.finished.len() > KEPT_EXECUTIONS {
            if let Some(old) = executions.finished.pop_front() {
                executions.records.remove(&old);
            }
        }
    }
    let _ = done.send(summary);
}

/// How serious a step event is, as a log message.
fn log_level_of(event: &StepEvent) -> LogLevel {
    match event {
        StepEvent::StepFailed { .. } => LogLevel::Warning,
        StepEvent::WorkflowComplete { status, .. }
            if *status != crate::workflow::RunStatus::Success =>
        {
            LogLevel::Error
        }
        _ => LogLevel::Info,
    }
}

fn summarise(id: &str, outcome: &RunOutcome) -> Value {
    let step = |(name, step): (&String, &StepOutcome)| {
        json!({
            "name": name,
            "status": step.status,
            "output": step.output,
            "error": step.error,
            "exit_code": step.exit_code,
            "attempts": step.attempts,
            "duration_ms": u64::try_from(step.duration.as_millis()).unwrap_or(u64::MAX),
        })
    };
    json!({
        "execution_id": id,
        "status": outcome.status,
        "error": outcome.error,
        "duration_ms": u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
        "outputs": outcome.outputs,
        "steps": outcome.steps.iter().map(step).collect::<Vec<_>>(),
        "handlers": outcome.handlers.iter().map(step).collect::<Vec<_>>(),
        "validation_errors": outcome.validation_errors,
        "sandboxed": outcome.sandboxed,
    })
}

fn get_execution(executions: &Mutex<Executions>, arguments: &Value) -> Value {
    let Some(id) = arguments.get("execution_id").and_then(Value::as_str) else {
        return tool_error("\"execution_id\" is required");
    };
    let after = arguments
        .get("after")
        .and_then(Value::as_u64)
        .and_then(|after| usize::try_from(after).ok())
        .unwrap_or(0);
    let Ok(executions) = executions.lock() else {
        return tool_error("the execution table is unavailable");
    };
    let Some(record) = executions.records.get(id) else {
        return tool_error(format!(
            "no execution `{id}` in this server (only the last {KEPT_EXECUTIONS} finished ones are kept)"
        ));
    };
    result(record.view(id, after), false)
}
