//! The resources, prompts and completions our MCP server offers beside the workflow tools
//! ([`super::workflow_tools`], whose execution table they read).
//!
//! - Resources: every execution this server remembers as `kubiya://executions/{id}` (status,
//!   step events, result; subscribers hear of every change) and the workflow it ran as
//!   `kubiya://executions/{id}/workflow`, both also given as URI templates.
//! - Prompts: `create_workflow` (a workflow for a task described in plain words) and
//!   `explain_execution` (an execution, embedded, to explain).
//! - Completions: runner names and execution ids for those prompts' arguments and the
//!   templates' `{execution_id}`.

use std::sync::Mutex;

use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::features::not_found;
use super::jsonrpc::{INVALID_PARAMS, RpcError};
use super::workflow_tools::Executions;

const EXECUTION_PREFIX: &str = "kubiya://executions/";
const WORKFLOW_SUFFIX: &str = "/workflow";
const JSON: &str = "application/json";
/// Runners a workflow can name.
const RUNNERS: [&str; 2] = ["local", "kubiya"];

/// The listed resources: two per execution, newest first.
pub(super) fn list(executions: &Mutex<Executions>) -> Vec<Value> {
    let Ok(executions) = executions.lock() else {
        return Vec::new();
    };
    let mut records: Vec<_> = executions.records.iter().collect();
    records.sort_by(|(a_id, a), (b_id, b)| {
        b.started_at.cmp(&a.started_at).then_with(|| a_id.cmp(b_id))
    });
    records
        .into_iter()
        .flat_map(|(id, record)| {
            [
                json!({
                    "uri": format!("{EXECUTION_PREFIX}{id}"),
                    "name": format!("execution {id}"),
                    "title": format!("Run of {}", record.workflow),
                    "description": format!("Status, step events and result of a run of workflow `{}`.", record.workflow),
                    "mimeType": JSON,
                }),
                json!({
                    "uri": format!("{EXECUTION_PREFIX}{id}{WORKFLOW_SUFFIX}"),
                    "name": format!("workflow of {id}"),
                    "title": format!("Workflow {}", record.workflow),
                    "description": format!("The workflow `{}` as execution {id} ran it (normalised).", record.workflow),
                    "mimeType": JSON,
                }),
            ]
        })
        .collect()
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

pub(super) fn read(executions: &Mutex<Executions>, uri: &str) -> Result<Vec<Value>, RpcError> {
    let target = target(uri).ok_or_else(|| not_found(uri))?;
    let executions = executions
        .lock()
        .map_err(|_| RpcError::new(INVALID_PARAMS, "the execution table is unavailable"))?;
    let body = match target {
        Target::Execution(id) => executions.records.get(id).map(|record| record.view(id, 0)),
        Target::Workflow(id) => executions
            .records
            .get(id)
            .map(|record| record.document.clone()),
    }
    .ok_or_else(|| not_found(uri))?;
    Ok(vec![json!({
        "uri": uri,
        "mimeType": JSON,
        "text": serde_json::to_string_pretty(&body).unwrap_or_default(),
    })])
}

pub(super) fn watch(
    executions: &Mutex<Executions>,
    uri: &str,
) -> Result<watch::Receiver<u64>, RpcError> {
    let Some(Target::Execution(id)) = target(uri) else {
        return Err(not_found(uri));
    };
    executions
        .lock()
        .ok()
        .and_then(|executions| {
            executions
                .records
                .get(id)
                .map(|record| record.changes.subscribe())
        })
        .ok_or_else(|| not_found(uri))
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

pub(super) fn get_prompt(
    executions: &Mutex<Executions>,
    name: &str,
    arguments: &Map<String, Value>,
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
    match name {
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
            let contents = read(executions, &uri)?;
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

pub(super) fn complete(
    executions: &Mutex<Executions>,
    reference: &Value,
    argument: &str,
    prefix: &str,
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
            .filter(|runner| runner.starts_with(prefix))
            .map(|runner| (*runner).to_owned())
            .collect();
    }
    if !wants_execution {
        return Vec::new();
    }
    let Ok(executions) = executions.lock() else {
        return Vec::new();
    };
    let mut ids: Vec<&String> = executions
        .records
        .keys()
        .filter(|id| id.starts_with(prefix))
        .collect();
    ids.sort();
    ids.into_iter().cloned().collect()
}
