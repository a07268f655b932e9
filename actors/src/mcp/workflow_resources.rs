//! The resources, prompts and completions our MCP server offers beside the workflow tools
//! ([`super::workflow_tools`], through which they ask the `ExecutionWatcher`).
//!
//! - Resources: every execution of the tenant this replica runs or remembers as
//!   `kubiya://executions/{id}` (status, step events, result; subscribers hear of every
//!   change) and the workflow it ran as `kubiya://executions/{id}/workflow`, both also given
//!   as URI templates (an execution another replica runs is read and followed through them).
//! - Prompts: `create_workflow` (a workflow for a task described in plain words) and
//!   `explain_execution` (an execution, embedded, to explain).
//! - Completions: runner names and execution ids for those prompts' arguments and the
//!   templates' `{execution_id}`.

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::features::not_found;
use super::jsonrpc::{INVALID_PARAMS, RpcError};
use super::workflow_tools::WorkflowTools;
use crate::workflow::{ExecutionError, ExecutionSummary, GetWorkflow, ListExecutions, follow};

const EXECUTION_PREFIX: &str = "kubiya://executions/";
const WORKFLOW_SUFFIX: &str = "/workflow";
const JSON: &str = "application/json";
/// Runners a workflow can name.
const RUNNERS: [&str; 2] = ["local", "kubiya"];

/// The listed resources: two per execution, newest first.
pub(super) async fn list(tools: WorkflowTools) -> Vec<Value> {
    summaries(&tools)
        .await
        .into_iter()
        .flat_map(|summary| {
            let id = &summary.execution_id;
            let workflow = &summary.workflow;
            [
                json!({
                    "uri": format!("{EXECUTION_PREFIX}{id}"),
                    "name": format!("execution {id}"),
                    "title": format!("Run of {workflow}"),
                    "description": format!("Status, step events and result of a run of workflow `{workflow}`."),
                    "mimeType": JSON,
                }),
                json!({
                    "uri": format!("{EXECUTION_PREFIX}{id}{WORKFLOW_SUFFIX}"),
                    "name": format!("workflow of {id}"),
                    "title": format!("Workflow {workflow}"),
                    "description": format!("The workflow `{workflow}` as execution {id} ran it (normalised)."),
                    "mimeType": JSON,
                }),
            ]
        })
        .collect()
}

/// The tenant's executions this replica knows, newest first.
async fn summaries(tools: &WorkflowTools) -> Vec<ExecutionSummary> {
    tools
        .executions()
        .send(ListExecutions {
            tenant: tools.tenant().to_owned(),
        })
        .await
        .unwrap_or_default()
}

pub(super) fn templates() -> Vec<Value> {
    vec![
        json!({
            "uriTemplate": format!("{EXECUTION_PREFIX}{{execution_id}}"),
            "name": "execution",
            "title": "Workflow execution",
            "description": "Status, step events and result of an execution started by execute_workflow.",
            "mimeType": JSON,
        }),
        json!({
            "uriTemplate": format!("{EXECUTION_PREFIX}{{execution_id}}{WORKFLOW_SUFFIX}"),
            "name": "execution_workflow",
            "title": "Workflow of an execution",
            "description": "The workflow an execution ran, normalised.",
            "mimeType": JSON,
        }),
    ]
}

/// What a URI names: an execution, or the workflow it ran.
enum Target<'a> {
    Execution(&'a str),
    Workflow(&'a str),
}

fn target(uri: &str) -> Option<Target<'_>> {
    let rest = uri.strip_prefix(EXECUTION_PREFIX)?;
    match rest.strip_suffix(WORKFLOW_SUFFIX) {
        Some(id) if !id.is_empty() && !id.contains('/') => Some(Target::Workflow(id)),
        None if !rest.is_empty() && !rest.contains('/') => Some(Target::Execution(rest)),
        _ => None,
    }
}

pub(super) async fn read(tools: WorkflowTools, uri: String) -> Result<Vec<Value>, RpcError> {
    let target = target(&uri).ok_or_else(|| not_found(&uri))?;
    let body = match target {
        Target::Execution(id) => tools.view(id, 0).await,
        Target::Workflow(id) => tools
            .executions()
            .send(GetWorkflow {
                tenant: tools.tenant().to_owned(),
                execution_id: id.to_owned(),
            })
            .await
            .map_err(|error| ExecutionError::Unavailable(format!("executions: {error}")))
            .and_then(|workflow| workflow)
            .map(|workflow| workflow.to_value()),
    }
    .map_err(|error| match error {
        ExecutionError::NotFound(_) => not_found(&uri),
        other => RpcError::new(INVALID_PARAMS, other.to_string()),
    })?;
    Ok(vec![json!({
        "uri": uri,
        "mimeType": JSON,
        "text": serde_json::to_string_pretty(&body).unwrap_or_default(),
    })])
}

/// A counter that rises with every event of the execution `uri` names, until its end.
pub(super) async fn watch(
    tools: WorkflowTools,
    uri: String,
) -> Result<watch::Receiver<u64>, RpcError> {
    let Some(Target::Execution(id)) = target(&uri) else {
        return Err(not_found(&uri));
    };
    let feed = follow(tools.executions(), tools.tenant(), id, 0)
        .await
        .map_err(|_| not_found(&uri))?;
    let (changes, watching) = watch::channel(0);
    if let Some(mut feed) = feed {
        tokio::spawn(async move {
            while let Some(event) = feed.next().await {
                changes.send_modify(|count| *count += 1);
                if event.is_final() || changes.is_closed() {
                    break;
                }
            }
        });
    }
    Ok(watching)
}

pub(super) fn prompts() -> Vec<Value> {
    vec![
        json!({
            "name": "create_workflow",
            "title": "Create a workflow",
            "description": "Write a Kubiya workflow for a task described in plain words, check it and optionally run it.",
            "arguments": [
                {"name": "task", "description": "What the workflow should do, in plain words.", "required": true},
                {"name": "runner", "description": "Where it will run: local (this host) or kubiya.", "required": false},
            ],
        }),
        json!({
            "name": "explain_execution",
            "title": "Explain an execution",
            "description": "Explain what happened in a workflow execution and how to fix what failed.",
            "arguments": [
                {"name": "execution_id", "description": "An execution started by execute_workflow.", "required": true},
            ],
        }),
    ]
}

pub(super) async fn get_prompt(
    tools: WorkflowTools,
    name: String,
    arguments: Map<String, Value>,
) -> Result<Value, RpcError> {
    let argument = |key: &str| {
        arguments
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let missing = |key: &str| {
        RpcError::new(
            INVALID_PARAMS,
            format!("prompt `{name}` needs the argument `{key}`"),
        )
    };
    match name.as_str() {
        "create_workflow" => {
            let task = argument("task").ok_or_else(|| missing("task"))?;
            let runner = argument("runner").unwrap_or("local");
            Ok(json!({
                "description": "Create a workflow for a task",
                "messages": [{
                    "role": "user",
                    "content": {"type": "text", "text": format!(
                        "Create a Kubiya workflow that does this: {task}\n\n\
                         Write it as a DAG of named steps (each with a `command` or `script`, and \
                         `depends` naming earlier steps), keep each step small and safe to re-run, \
                         and pass values between steps through `output` variables. Check it with \
                         the validate_workflow tool and fix every problem it reports. Then show \
                         the workflow, and run it with execute_workflow on the `{runner}` runner \
                         only if I confirm."
                    )},
                }],
            }))
        }
        "explain_execution" => {
            let id = argument("execution_id").ok_or_else(|| missing("execution_id"))?;
            let uri = format!("{EXECUTION_PREFIX}{id}");
            let contents = read(tools, uri).await?;
            let resource = contents.into_iter().next().unwrap_or(Value::Null);
            Ok(json!({
                "description": format!("Explain execution {id}"),
                "messages": [
                    {"role": "user", "content": {"type": "resource", "resource": resource}},
                    {"role": "user", "content": {"type": "text", "text":
                        "Explain what happened in this workflow execution, step by step. If it \
                         failed, say which step failed and why, and propose a corrected workflow."}},
                ],
            }))
        }
        other => Err(RpcError::new(
            INVALID_PARAMS,
            format!("Unknown prompt: {other}"),
        )),
    }
}

pub(super) async fn complete(
    tools: WorkflowTools,
    reference: Value,
    argument: String,
    prefix: String,
) -> Vec<String> {
    let kind = reference.get("type").and_then(Value::as_str);
    let name = reference
        .get("name")
        .or_else(|| reference.get("uri"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let wants_execution = match kind {
        Some("ref/prompt") => name == "explain_execution" && argument == "execution_id",
        Some("ref/resource") => name.starts_with(EXECUTION_PREFIX) && argument == "execution_id",
        _ => false,
    };
    if kind == Some("ref/prompt") && name == "create_workflow" && argument == "runner" {
        return RUNNERS
            .iter()
            .filter(|runner| runner.starts_with(prefix.as_str()))
            .map(|runner| (*runner).to_owned())
            .collect();
    }
    if !wants_execution {
        return Vec::new();
    }
    let mut ids: Vec<String> = summaries(&tools)
        .await
        .into_iter()
        .map(|summary| summary.execution_id)
        .filter(|id| id.starts_with(&prefix))
        .collect();
    ids.sort();
    ids
}
