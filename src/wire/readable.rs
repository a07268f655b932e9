//! Tool calls, tool results and workflow events as short text lines, so a client that only
//! shows `content` still sees what the agent is doing.

use kubiya_actors::session::TurnEvent;
use serde_json::Value;

/// The line an activity event shows as, or `None` for text and markers.
pub fn line(event: &TurnEvent) -> Option<String> {
    Some(match event {
        TurnEvent::ToolCall { name, .. } => tool_call(name),
        TurnEvent::ToolResult {
            name,
            result,
            is_error,
            ..
        } => tool_result(name, result, *is_error),
        TurnEvent::Execution(event) => execution_event(event),
        TurnEvent::Workflow(data) => format!(
            "[Workflow {} is valid]\n",
            data["name"].as_str().unwrap_or("?")
        ),
        TurnEvent::ApprovalRequested { workflow, .. } => approval_question(workflow),
        TurnEvent::ValidationFailed { errors, attempt } => format!(
            "[Validation failed on attempt {attempt}: {} error(s)]\n",
            errors.as_array().map_or(0, Vec::len)
        ),
        _ => return None,
    })
}

fn tool_call(name: &str) -> String {
    format!("\n[Calling tool: {name}]\n")
}

fn tool_result(name: &str, result: &Value, is_error: bool) -> String {
    if is_error {
        let message = result["error"].as_str().unwrap_or("failed");
        return format!("[Tool {name} failed: {message}]\n");
    }
    match (name, result.get("valid"), result.get("status")) {
        (_, Some(Value::Bool(true)), _) => format!("[Tool {name}: the workflow is valid]\n"),
        (_, Some(Value::Bool(false)), _) => {
            let count = result["errors"].as_array().map_or(0, Vec::len);
            format!("[Tool {name}: {count} validation error(s)]\n")
        }
        (_, _, Some(Value::String(status))) => format!("[Tool {name}: {status}]\n"),
        _ => format!("[Tool {name} finished]\n"),
    }
}

/// `▶ step build: running`, `✓ step build (1.2s)`, `✗ step build: exit 1`, ...
fn execution_event(event: &Value) -> String {
    let step = event["step"].as_str().unwrap_or("?");
    match event["type"].as_str().unwrap_or("") {
        "step_running" => format!("▶ {step}: running\n"),
        "step_complete" => format!("✓ {step} ({})\n", duration(event)),
        "step_failed" => {
            let retry = if event["will_retry"] == true {
                " (retrying)"
            } else {
                ""
            };
            format!(
                "✗ {step}: {}{retry}\n",
                event["error"].as_str().unwrap_or("failed")
            )
        }
        "step_skipped" => format!("○ {step}: skipped\n"),
        "workflow_complete" => format!(
            "Workflow {}: {} ({})\n",
            event["workflow"].as_str().unwrap_or("?"),
            event["status"].as_str().unwrap_or("?"),
            duration(event)
        ),
        other => format!("[{other}]\n"),
    }
}

fn duration(event: &Value) -> String {
    match &event["duration"] {
        Value::String(text) => text.clone(),
        Value::Number(seconds) => format!("{seconds}s"),
        _ => "-".to_owned(),
    }
}

/// What the text protocols ask when a run waits for approval; a plain "yes" answers it.
pub fn approval_question(workflow: &str) -> String {
    format!(
        "\n[Approval needed] I am ready to run the workflow {workflow}. Reply \"yes\" to run it, or tell me what to change.\n"
    )
}
