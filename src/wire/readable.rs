//! Tool calls, tool results and workflow events as short text lines, so a client that only
//! shows `content` still sees what the agent is doing.

use serde_json::Value;

pub fn tool_call(name: &str) -> String {
    format!("\n[Calling tool: {name}]\n")
}

pub fn tool_result(name: &str, result: &Value, is_error: bool) -> String {
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
pub fn execution_event(event: &Value) -> String {
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

/// A compose event (`workflow`, `validation_error`) as a line.
pub fn compose_event(event: &Value) -> String {
    match event["type"].as_str() {
        Some("workflow") => format!(
            "[Workflow {} is valid]\n",
            event["data"]["name"].as_str().unwrap_or("?")
        ),
        Some("validation_error") => format!(
            "[Validation failed on attempt {}: {} error(s)]\n",
            event["attempt"],
            event["errors"].as_array().map_or(0, Vec::len)
        ),
        _ => String::new(),
    }
}
