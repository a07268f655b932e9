//! The built-in tools the agent offers the model — `validate_workflow`, `execute_workflow`,
//! `get_execution`, `list_runners` — as [`ToolSpec`]s, plus the parts of running them that
//! need no actor. The Session actor runs the calls; tools from MCP servers join the same
//! catalog under `server__tool` names.

use serde_json::{Value, json};

use crate::provider::ToolSpec;
use crate::workflow::{normalised, validate_value};

pub const VALIDATE_WORKFLOW: &str = "validate_workflow";
pub const EXECUTE_WORKFLOW: &str = "execute_workflow";
pub const GET_EXECUTION: &str = "get_execution";
pub const LIST_RUNNERS: &str = "list_runners";

pub fn builtin_catalog() -> Vec<ToolSpec> {
    let workflow = json!({"type": "object", "description": "The workflow JSON: name, steps, and optional description, type, params, env"});
    vec![
        ToolSpec {
            name: VALIDATE_WORKFLOW.into(),
            description: "Validate a workflow. Returns {valid, errors: [{path, message}], workflow}: fix every error and validate again.".into(),
            parameters: json!({"type": "object", "properties": {"workflow": workflow}, "required": ["workflow"]}),
        },
        ToolSpec {
            name: EXECUTE_WORKFLOW.into(),
            description: "Run a valid workflow and wait for it to finish. The user sees each step live. Returns the execution id, final status and step outputs.".into(),
            parameters: json!({"type": "object", "properties": {
                "workflow": workflow,
                "params": {"type": "object", "description": "Values for the workflow's params"},
                "runner": {"type": "string", "description": "Where to run it; default: the configured runner"}
            }, "required": ["workflow"]}),
        },
        ToolSpec {
            name: GET_EXECUTION.into(),
            description: "The status, step states and outputs of an execution.".into(),
            parameters: json!({"type": "object", "properties": {"execution_id": {"type": "string"}}, "required": ["execution_id"]}),
        },
        ToolSpec {
            name: LIST_RUNNERS.into(),
            description: "The runners workflows can run on.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
    ]
}

/// `validate_workflow`'s result: `{valid, errors, workflow}` with the workflow normalised
/// when it parsed.
pub fn validate_workflow(arguments: &Value) -> Value {
    let workflow = workflow_argument(arguments);
    match validate_value(workflow) {
        Ok(parsed) => {
            json!({"valid": true, "errors": [], "workflow": normalised(&parsed).to_value()})
        }
        Err(errors) => json!({"valid": false, "errors": errors, "workflow": workflow}),
    }
}

/// The `workflow` argument; models sometimes send it as a JSON string, or send the workflow
/// itself as the arguments.
pub fn workflow_argument(arguments: &Value) -> &Value {
    match arguments.get("workflow") {
        Some(workflow) => workflow,
        None => arguments,
    }
}

/// `list_runners`' result.
pub fn runners() -> Value {
    json!({"runners": [{"name": "local", "description": "this host, each step sandboxed"}]})
}

/// A workflow written as JSON in the model's text (a fenced block or a bare object), for
/// models that answer in prose instead of calling the tool.
pub fn workflow_in_text(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let candidate: Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let workflow = workflow_argument(&candidate);
    workflow.get("steps").is_some().then(|| workflow.clone())
}
