//! Tool calls, tool results and workflow events as short text lines, so a client that only
//! shows `content` still sees what the agent is doing: each finished step with the first
//! lines of its output (live `step_output` chunks have no line), and (through
//! [`WorkflowEcho`]) the workflow itself when the model's answer did not show it.

use kubiya_actors::session::TurnEvent;
use kubiya_actors::workflow::StepEvent;
use kubiya_actors::workflow::yaml_document;
use serde_json::Value;

/// Lines of a step's output shown under it; the rest is counted, not shown.
const OUTPUT_LINES: usize = 5;
/// Characters of one output line shown; longer lines are cut with `…`.
const OUTPUT_LINE_CHARS: usize = 200;

/// The line an activity event shows as, or `None` for text, markers and live step output
/// (the step's output shows when it ends: streamed into the answer's text as well, it would
/// be shown twice and kept in the conversation).
pub fn line(event: &TurnEvent) -> Option<String> {
    Some(match event {
        TurnEvent::Execution(event) if matches!(event.event, StepEvent::StepOutput { .. }) => {
            return None;
        }
        TurnEvent::ToolCall { name, .. } => tool_call(name),
        TurnEvent::ToolResult {
            name,
            result,
            is_error,
            ..
        } => tool_result(name, result, *is_error),
        TurnEvent::Execution(event) => {
            execution_event(&serde_json::to_value(event).unwrap_or_default())
        }
        TurnEvent::Workflow(workflow) => format!("[Workflow {} is valid]\n", workflow.name),
        TurnEvent::ApprovalRequested { workflow, .. } => approval_question(workflow),
        TurnEvent::ValidationFailed { errors, attempt } => format!(
            "[Validation failed on attempt {attempt}: {} error(s)]\n",
            errors.len()
        ),
        _ => return None,
    })
}

/// Remembers the last valid workflow of a turn and whether the model's text showed a code
/// block; at the end of the turn, [`block`](WorkflowEcho::block) is the workflow as a fenced
/// YAML block when the model did not show one.
#[derive(Debug, Default)]
pub struct WorkflowEcho {
    workflow: Option<Value>,
    /// Backticks at the end of the text so far (a fence may be split across deltas).
    trailing_backticks: usize,
    fenced: bool,
}

impl WorkflowEcho {
    pub fn observe(&mut self, event: &TurnEvent) {
        match event {
            TurnEvent::Text(text) => self.observe_text(text),
            TurnEvent::Workflow(workflow) => self.workflow = Some(workflow.to_value()),
            TurnEvent::ToolResult {
                result,
                is_error: false,
                ..
            } if result["valid"] == true && result["workflow"].is_object() => {
                self.workflow = Some(result["workflow"].clone());
            }
            _ => {}
        }
    }

    fn observe_text(&mut self, text: &str) {
        if self.fenced {
            return;
        }
        for byte in text.bytes() {
            if byte == b'`' {
                self.trailing_backticks += 1;
                if self.trailing_backticks >= 3 {
                    self.fenced = true;
                    return;
                }
            } else {
                self.trailing_backticks = 0;
            }
        }
    }

    /// The workflow as a fenced YAML block, unless the turn had none or the model showed a
    /// code block itself.
    pub fn block(&self) -> Option<String> {
        if self.fenced {
            return None;
        }
        let yaml = yaml_document(self.workflow.as_ref()?)?;
        Some(format!("\n```yaml\n{yaml}```\n"))
    }
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

/// `▶ build: running`, `✓ build (1.2s)` and its first output lines, `✗ build: exit 1`, ...
fn execution_event(event: &Value) -> String {
    let step = event["step"].as_str().unwrap_or("?");
    match event["type"].as_str().unwrap_or("") {
        "step_running" => format!("▶ {step}: running\n"),
        "step_complete" => {
            let mut line = format!("✓ {step} ({})\n", duration(event));
            output_excerpt(event["output"].as_str().unwrap_or(""), &mut line);
            line
        }
        "step_failed" => {
            let retry = if event["will_retry"] == true {
                " (retrying)"
            } else {
                ""
            };
            let error = event["error"].as_str().unwrap_or("failed");
            let mut lines = error.lines();
            let mut line = format!("✗ {step}: {}{retry}\n", lines.next().unwrap_or("failed"));
            output_excerpt(&lines.collect::<Vec<_>>().join("\n"), &mut line);
            line
        }
        "step_skipped" => match event["reason"].as_str() {
            Some(reason) if !reason.is_empty() => format!("○ {step}: skipped ({reason})\n"),
            _ => format!("○ {step}: skipped\n"),
        },
        "workflow_complete" => {
            let mut line = format!(
                "Workflow {}: {} ({})",
                event["workflow"].as_str().unwrap_or("?"),
                event["status"].as_str().unwrap_or("?"),
                duration(event)
            );
            if let Some(error) = event["error"].as_str() {
                line.push_str(": ");
                line.push_str(error);
            }
            line.push('\n');
            line
        }
        other => format!("[{other}]\n"),
    }
}

/// Appends the first [`OUTPUT_LINES`] non-empty lines of `output`, indented, each cut at
/// [`OUTPUT_LINE_CHARS`], then how many lines were left out.
fn output_excerpt(output: &str, into: &mut String) {
    let mut lines = output.lines().filter(|line| !line.trim().is_empty());
    for line in lines.by_ref().take(OUTPUT_LINES) {
        into.push_str("    ");
        match line.char_indices().nth(OUTPUT_LINE_CHARS) {
            Some((cut, _)) => {
                into.push_str(&line[..cut]);
                into.push('…');
            }
            None => into.push_str(line),
        }
        into.push('\n');
    }
    let more = lines.count();
    if more > 0 {
        into.push_str(&format!("    … {more} more line(s)\n"));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn execution(event: Value) -> String {
        line(&super::super::test_execution_event(event)).expect("a line")
    }

    #[test]
    fn a_finished_step_shows_the_first_lines_of_its_output() {
        assert_eq!(
            execution(
                json!({"type": "step_complete", "step": "load", "duration": "0.0s",
                             "output": "CPU: 45%\n\nMemory: 60%\n"})
            ),
            "✓ load (0.0s)\n    CPU: 45%\n    Memory: 60%\n"
        );
        let long: String = (1..=12).map(|n| format!("line {n}\n")).collect();
        let shown = execution(
            json!({"type": "step_complete", "step": "s", "duration": "1.0s",
                                     "output": long}),
        );
        assert_eq!(shown.lines().count(), 1 + OUTPUT_LINES + 1, "{shown}");
        assert!(shown.ends_with("    … 7 more line(s)\n"), "{shown}");
        let wide = execution(
            json!({"type": "step_complete", "step": "s", "duration": "1.0s",
                                    "output": "é".repeat(1000)}),
        );
        assert_eq!(
            wide.lines().nth(1).unwrap().chars().count(),
            4 + OUTPUT_LINE_CHARS + 1
        );
    }

    #[test]
    fn live_output_is_not_a_line() {
        let chunk = json!({"type": "step_output", "step": "s", "stream": "stdout", "text": "hi\n"});
        assert_eq!(line(&super::super::test_execution_event(chunk)), None);
    }

    #[test]
    fn failures_and_the_end_say_why() {
        assert_eq!(
            execution(
                json!({"type": "step_failed", "step": "b", "error": "exit status 1\nno such file", "will_retry": false})
            ),
            "✗ b: exit status 1\n    no such file\n"
        );
        assert_eq!(
            execution(
                json!({"type": "workflow_complete", "workflow": "w", "status": "failed",
                             "duration": "1.0s", "error": "step 'b' failed"})
            ),
            "Workflow w: failed (1.0s): step 'b' failed\n"
        );
    }

    #[test]
    fn the_workflow_is_shown_as_yaml_unless_the_model_showed_a_code_block() {
        let workflow = json!({"name": "w", "steps": [{"name": "a", "command": "echo hi"}]});
        let mut echo = WorkflowEcho::default();
        assert_eq!(echo.block(), None, "no workflow, nothing to show");
        echo.observe(&TurnEvent::Text("Here it is.".into()));
        echo.observe(&TurnEvent::ToolResult {
            id: "1".into(),
            name: "validate_workflow".into(),
            result: json!({"valid": true, "workflow": workflow}),
            is_error: false,
        });
        let block = echo.block().expect("shown");
        assert!(block.starts_with("\n```yaml\nname: w\n"), "{block}");
        assert!(block.ends_with("command: echo hi\n```\n"), "{block}");

        // A fence split across deltas counts as the model showing it.
        echo.observe(&TurnEvent::Text("``".into()));
        echo.observe(&TurnEvent::Text("`yaml\nname: w\n```".into()));
        assert_eq!(echo.block(), None);
    }
}
