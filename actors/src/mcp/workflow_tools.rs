//! The workflow tools our MCP server offers to MCP hosts: `validate_workflow`,
//! `execute_workflow`, `get_execution` and `list_runners`. [`super::server`] speaks the
//! protocol around them.
//!
//! Executions are the `ExecutionWatcher`'s, as every other run of the server: a run started
//! here takes one of the tenant's execution slots, is listed and followed like a run started
//! over HTTP (`/v1/executions` sees it, and `get_execution` sees those), is shared with other
//! replicas through Redis when they share a store, and is cancelled when the server drains. A
//! waiting `execute_workflow` streams its step events as progress notifications.

use std::sync::Arc;

use actix::Addr;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::features::ServerFeatures;
use super::jsonrpc::{INVALID_PARAMS, RpcError};
use super::notify::{CallContext, LogLevel};
use super::workflow_resources;
use crate::limits::{RateLimiter, TenantLimits};
use crate::store::TenantId;
use crate::tools::{BuiltinTool, ValidationReport, workflow_from_argument};
use crate::workflow::{
    CancelExecution, ExecutionError, ExecutionEvent, ExecutionSnapshot, ExecutionStatus,
    ExecutionWatcher, GetExecution, ListRunners, LocalRunner, StartExecution, StepEvent,
    ValidationError, Workflow, check_runnable_locally, follow, validate_value,
};

/// Events one `get_execution` answer (or execution resource) carries at most; `after` pages
/// through the rest.
const EVENTS_PER_VIEW: usize = 2000;

/// What the workflow tools of one tenant are made of.
pub struct WorkflowToolsParts {
    /// Checks workflows against this host (`validate_workflow`); runs go to `executions`,
    /// which also says which runners there are.
    pub runner: LocalRunner,
    pub executions: Addr<ExecutionWatcher>,
    /// Whose executions these tools start and see.
    pub tenant: TenantId,
    /// Counts the tenant's running executions, against `limits`.
    pub limiter: Arc<RateLimiter>,
    pub limits: TenantLimits,
}

/// The workflow tool set of one tenant.
#[derive(Clone)]
pub struct WorkflowTools {
    parts: Arc<WorkflowToolsParts>,
}

impl WorkflowTools {
    pub fn new(parts: WorkflowToolsParts) -> Self {
        Self {
            parts: Arc::new(parts),
        }
    }

    pub(super) fn executions(&self) -> &Addr<ExecutionWatcher> {
        &self.parts.executions
    }

    pub(super) fn tenant(&self) -> &TenantId {
        &self.parts.tenant
    }
}

impl ServerFeatures for WorkflowTools {
    fn tools(&self) -> Vec<Value> {
        BuiltinTool::ALL
            .into_iter()
            .map(BuiltinTool::mcp_definition)
            .collect()
    }

    fn call(
        &self,
        name: &str,
        arguments: Value,
        context: CallContext,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        let tools = self.clone();
        match BuiltinTool::named(name) {
            Some(BuiltinTool::ValidateWorkflow) => {
                Box::pin(async move { Ok(validate_tool(&tools.parts.runner, &arguments).await) })
            }
            Some(BuiltinTool::ListRunners) => {
                Box::pin(async move { Ok(tools.list_runners().await) })
            }
            Some(BuiltinTool::ExecuteWorkflow) => {
                Box::pin(async move { Ok(tools.execute(arguments, context).await) })
            }
            Some(BuiltinTool::GetExecution) => {
                Box::pin(async move { Ok(tools.get_execution(&arguments).await) })
            }
            None => {
                let error = RpcError::new(INVALID_PARAMS, format!("Unknown tool: {name}"));
                Box::pin(async move { Err(error) })
            }
        }
    }

    fn resources(&self) -> BoxFuture<'static, Vec<Value>> {
        Box::pin(workflow_resources::list(self.clone()))
    }

    fn resource_templates(&self) -> Vec<Value> {
        workflow_resources::templates()
    }

    fn read_resource(&self, uri: &str) -> BoxFuture<'static, Result<Vec<Value>, RpcError>> {
        Box::pin(workflow_resources::read(self.clone(), uri.to_owned()))
    }

    fn watch_resource(
        &self,
        uri: &str,
    ) -> BoxFuture<'static, Result<watch::Receiver<u64>, RpcError>> {
        Box::pin(workflow_resources::watch(self.clone(), uri.to_owned()))
    }

    fn prompts(&self) -> Vec<Value> {
        workflow_resources::prompts()
    }

    fn get_prompt(
        &self,
        name: &str,
        arguments: &Map<String, Value>,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        Box::pin(workflow_resources::get_prompt(
            self.clone(),
            name.to_owned(),
            arguments.clone(),
        ))
    }

    fn complete(
        &self,
        reference: &Value,
        argument: &str,
        prefix: &str,
    ) -> BoxFuture<'static, Vec<String>> {
        Box::pin(workflow_resources::complete(
            self.clone(),
            reference.clone(),
            argument.to_owned(),
            prefix.to_owned(),
        ))
    }
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
    validate_value(&workflow_from_argument(arguments)?)
}

async fn validate_tool(runner: &LocalRunner, arguments: &Value) -> Value {
    let mut report = ValidationReport::of_arguments(arguments);
    if let Some(workflow) = report.valid_workflow() {
        let host = runner.host_capabilities(workflow, &[]).await;
        report.local_runner_problems = check_runnable_locally(workflow, &host);
        report.runnable_locally = Some(report.local_runner_problems.is_empty());
    }
    result(report.to_value(), false)
}

impl WorkflowTools {
    /// The server's runners, as the chat agent's `list_runners` gives them.
    async fn list_runners(&self) -> Value {
        match self.parts.executions.send(ListRunners).await {
            Ok(runners) => result(serde_json::to_value(runners).unwrap_or_default(), false),
            Err(error) => tool_error(format!("executions are unavailable: {error}")),
        }
    }

    async fn execute(&self, arguments: Value, mut context: CallContext) -> Value {
        let workflow = match parse_workflow(&arguments) {
            Ok(workflow) => workflow,
            Err(errors) => return result(json!({"status": "invalid", "errors": errors}), true),
        };
        let params = match arguments.get("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(params)) => params.clone(),
            Some(_) => return tool_error("\"params\" must be an object of values by name"),
        };
        let runner = match arguments.get("runner") {
            None | Some(Value::Null) => None,
            Some(Value::String(runner)) => Some(runner.clone()),
            Some(_) => {
                return tool_error("\"runner\" must be a runner's name; list_runners shows them");
            }
        };
        let wait = arguments
            .get("wait")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let parts = &self.parts;
        // Held by the watcher until the run ends, as for a run started over HTTP.
        let permit = match parts
            .limiter
            .open_execution(&parts.tenant, parts.limits)
            .await
        {
            Ok(permit) => permit,
            Err(limit) => return tool_error(limit.to_string()),
        };
        let name = workflow.name.clone();
        let started = parts
            .executions
            .send(StartExecution {
                tenant: parts.tenant.clone(),
                workflow,
                params,
                runner,
                trace: tracing::Span::current(),
                permit: Some(permit),
                library: Vec::new(),
            })
            .await;
        let summary = match started {
            Ok(Ok(summary)) => summary,
            Ok(Err(ExecutionError::Invalid(errors))) => {
                return result(json!({"status": "invalid", "errors": errors}), true);
            }
            Ok(Err(error)) => return tool_error(error.to_string()),
            Err(error) => return tool_error(format!("executions are unavailable: {error}")),
        };
        let id = summary.execution_id;
        tracing::info!(execution = %id, workflow = %name, wait, "workflow execution started over MCP");
        if !wait {
            return result(json!({"execution_id": id, "status": "running"}), false);
        }
        // A waiting call follows the run to its end; cancelled with its request, it cancels
        // the run.
        let mut feed = match follow(&parts.executions, &parts.tenant, &id, 0).await {
            Ok(feed) => feed,
            Err(error) => return tool_error(error.to_string()),
        };
        while let Some(events) = feed.as_mut() {
            let event = tokio::select! {
                event = events.next() => event,
                () = context.cancel.cancelled() => {
                    parts.executions.do_send(CancelExecution {
                        tenant: parts.tenant.clone(),
                        execution_id: id.clone(),
                    });
                    return tool_error("cancelled");
                }
            };
            let Some(event) = event else { break };
            if let Some(progress) = context.progress.as_mut() {
                progress.report(serde_json::to_string(&event.event).unwrap_or_default());
            }
            if let Some(log) = context.log.as_ref() {
                log.log(
                    log_level_of(&event.event),
                    "workflow",
                    json!({"execution_id": id, "event": event.event}),
                );
            }
            if event.is_final() {
                break;
            }
        }
        match self.snapshot(&id).await {
            Ok(snapshot) => {
                let failed = snapshot.status != ExecutionStatus::Success;
                tracing::info!(execution = %id, status = snapshot.status.as_str(), "workflow execution over MCP finished");
                result(serde_json::to_value(snapshot).unwrap_or_default(), failed)
            }
            Err(error) => tool_error(error.to_string()),
        }
    }

    async fn get_execution(&self, arguments: &Value) -> Value {
        let Some(id) = arguments.get("execution_id").and_then(Value::as_str) else {
            return tool_error("\"execution_id\" is required");
        };
        let after = arguments.get("after").and_then(Value::as_u64).unwrap_or(0);
        match self.view(id, after).await {
            Ok(view) => result(view, false),
            Err(ExecutionError::NotFound(_)) => {
                tool_error(format!("no execution `{id}` for this tenant"))
            }
            Err(error) => tool_error(error.to_string()),
        }
    }

    pub(super) async fn snapshot(&self, id: &str) -> Result<ExecutionSnapshot, ExecutionError> {
        self.parts
            .executions
            .send(GetExecution {
                tenant: self.parts.tenant.clone(),
                execution_id: ExecutionError::known_id(id)?,
            })
            .await
            .map_err(|error| ExecutionError::Unavailable(format!("executions: {error}")))?
    }

    /// What `get_execution` returns and the execution resource holds: the state, the events
    /// after the first `after` (at most [`EVENTS_PER_VIEW`]) and, once it ended, the result.
    pub(super) async fn view(&self, id: &str, after: u64) -> Result<Value, ExecutionError> {
        let snapshot = self.snapshot(id).await?;
        let events = self.events(id, after, snapshot.last_seq).await?;
        let status = snapshot.status;
        Ok(json!({
            "execution_id": snapshot.execution_id,
            "workflow": snapshot.workflow,
            "status": status,
            "started_at": snapshot.started_at.unwrap_or(snapshot.created_at),
            "event_count": snapshot.last_seq,
            "events": events,
            "result": status.is_finished().then_some(snapshot),
        }))
    }

    /// The events numbered after `after` up to `last`.
    async fn events(
        &self,
        id: &str,
        after: u64,
        last: u64,
    ) -> Result<Vec<ExecutionEvent>, ExecutionError> {
        let mut events = Vec::new();
        if last <= after {
            return Ok(events);
        }
        let Some(mut feed) = follow(
            &self.parts.executions,
            &self.parts.tenant,
            &ExecutionError::known_id(id)?,
            after,
        )
        .await?
        else {
            return Ok(events);
        };
        while events.len() < EVENTS_PER_VIEW {
            let Some(event) = feed.next().await else {
                break;
            };
            let seq = event.seq;
            let last_one = event.is_final() || seq >= last;
            events.push(event);
            if last_one {
                break;
            }
        }
        Ok(events)
    }
}

/// How serious a step event is, as a log message.
fn log_level_of(event: &StepEvent) -> LogLevel {
    match event {
        StepEvent::StepFailed { .. } => LogLevel::Warning,
        StepEvent::WorkflowComplete { status, .. }
            if *status != crate::workflow::ExecutionStatus::Success =>
        {
            LogLevel::Error
        }
        _ => LogLevel::Info,
    }
}
