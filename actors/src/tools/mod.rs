//! The built-in tools the agent offers the model — `validate_workflow`, `execute_workflow`,
//! `get_execution`, `list_runners` — written once in the [`catalog`] that the Session, our
//! MCP server and the offline planner all use; reading a workflow out of a call's arguments
//! ([`argument`]) and the [`report`] validation gives, in one shape for every caller; which
//! runners there are is the `ExecutionWatcher`'s to say (`ListRunners`). The Session actor
//! runs the calls; tools from MCP servers join the same catalog under
//! `server__tool` names.

pub mod argument;
pub mod catalog;
pub mod report;

use serde_json::Value;

pub use argument::{workflow_document, workflow_from_argument};
pub use catalog::{
    BuiltinTool, EXECUTE_WORKFLOW, GET_EXECUTION, LIST_RUNNERS, VALIDATE_WORKFLOW, builtin_catalog,
};
pub use report::ValidationReport;

/// A workflow written as JSON in the model's text (a fenced block or a bare object), for
/// models that answer in prose instead of calling the tool.
pub fn workflow_in_text(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let candidate: Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let workflow = candidate.get("workflow").unwrap_or(&candidate);
    workflow.get("steps").is_some().then(|| workflow.clone())
}
