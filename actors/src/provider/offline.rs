//! The built-in offline planner behind `--provider offline`: no network, no key, fully
//! deterministic. It reads the conversation the way a model would and answers through the
//! same events a real model produces — text, then tool calls to the workflow tools when the
//! request offers them — proposing a workflow from a small catalog chosen by keywords. Its
//! text says plainly that it is a built-in planner, not a language model.

use serde_json::{Value, json};

use super::event::{FinishReason, LlmEvent, Usage};
use super::message::{ChatMessage, ChatRequest, ToolCall};

use crate::tools::{EXECUTE_WORKFLOW as EXECUTE, VALIDATE_WORKFLOW as VALIDATE};

struct CatalogEntry {
    title: &'static str,
    keywords: &'static [&'static str],
    workflow: fn() -> Value,
}

/// Tried in order; the last entry is the fallback when nothing matches.
const CATALOG: [CatalogEntry; 5] = [
    CatalogEntry {
        title: "disk usage report",
        keywords: &["disk", "storage", "space", "du ", "df"],
        workflow: disk_usage,
    },
    CatalogEntry {
        title: "directory backup",
        keywords: &["backup", "back up", "archive", "snapshot"],
        workflow: backup,
    },
    CatalogEntry {
        title: "HTTP endpoint check",
        keywords: &["http", "endpoint", "url", "website", "api", "reachable"],
        workflow: endpoint_check,
    },
    CatalogEntry {
        title: "system health check",
        keywords: &[
            "health", "cpu", "memory", "load", "uptime", "system", "monitor",
        ],
        workflow: health_check,
    },
    CatalogEntry {
        title: "hello world",
        keywords: &[],
        workflow: hello_world,
    },
];

fn command_step(name: &str, command: &str) -> Value {
    json!({"name": name, "command": command, "executor": {"type": "command", "config": {}}})
}

fn hello_world() -> Value {
    json!({
        "name": "hello-world",
        "description": "Say hello and show the time",
        "type": "chain",
        "params": {"NAME": "world"},
        "steps": [
            command_step("say-hello", "echo \"Hello, ${NAME}!\""),
            command_step("show-time", "date -u"),
        ],
    })
}

fn health_check() -> Value {
    json!({
        "name": "system-health-check",
        "description": "Uptime, load, memory and root filesystem usage of this host",
        "type": "graph",
        "steps": [
            command_step("uptime", "uptime"),
            command_step("load", "cat /proc/loadavg"),
            command_step("memory", "head -n 3 /proc/meminfo"),
            command_step("root-disk", "df -h /"),
            {"name": "summary", "command": "echo \"health check complete\"",
             "executor": {"type": "command", "config": {}},
             "depends": ["uptime", "load", "memory", "root-disk"]},
        ],
    })
}

fn disk_usage() -> Value {
    json!({
        "name": "disk-usage-report",
        "description": "Filesystem usage and the largest entries of a directory",
        "type": "chain",
        "params": {"TARGET_DIR": "."},
        "steps": [
            command_step("filesystems", "df -h"),
            command_step("largest-entries", "du -sh \"${TARGET_DIR}\"/* 2>/dev/null | sort -rh | head -n 10"),
        ],
    })
}

fn backup() -> Value {
    json!({
        "name": "directory-backup",
        "description": "Archive a directory into a compressed tarball and verify it",
        "type": "chain",
        "params": {"SOURCE_DIR": ".", "BACKUP_FILE": "/tmp/kubiya-backup.tar.gz"},
        "steps": [
            command_step("create-archive", "tar -czf \"${BACKUP_FILE}\" -C \"${SOURCE_DIR}\" ."),
            {"name": "verify-archive", "command": "tar -tzf \"${BACKUP_FILE}\" | wc -l",
             "executor": {"type": "command", "config": {}}, "output": "FILE_COUNT"},
            command_step("report", "echo \"archived ${FILE_COUNT} entries into ${BACKUP_FILE}\""),
        ],
    })
}

fn endpoint_check() -> Value {
    json!({
        "name": "http-endpoint-check",
        "description": "Check that an HTTP endpoint answers",
        "type": "chain",
        "params": {"URL": "http://localhost:8000/health"},
        "steps": [
            {"name": "request", "executor": {"type": "http", "config": {"url": "${URL}", "method": "GET"}},
             "output": "RESPONSE"},
            command_step("report", "echo \"endpoint answered: ${RESPONSE}\""),
        ],
    })
}

const DISCLAIMER: &str = "I am the built-in offline planner, not a language model: I match your request to a \
                          workflow from a small catalog.";

/// The whole answer to `request`, as the events a model would stream.
pub fn plan(request: &ChatRequest) -> Vec<LlmEvent> {
    let user_text = last_user_text(&request.messages).to_lowercase();
    let offered = |tool: &str| request.tools.iter().any(|spec| spec.name == tool);
    let mut events = Vec::new();
    let (text, call) = match last_tool_result(&request.messages) {
        None => {
            let entry = CATALOG
                .iter()
                .find(|entry| entry.keywords.iter().any(|word| user_text.contains(word)))
                .unwrap_or(&CATALOG[CATALOG.len() - 1]);
            let workflow = (entry.workflow)();
            if offered(VALIDATE) {
                (
                    format!(
                        "{DISCLAIMER} This looks like a {}; let me validate it.",
                        entry.title
                    ),
                    Some(call(VALIDATE, json!({ "workflow": workflow }))),
                )
            } else {
                (
                    format!(
                        "{DISCLAIMER} This looks like a {}:\n\n```json\n{}\n```",
                        entry.title,
                        serde_json::to_string_pretty(&workflow).unwrap_or_default()
                    ),
                    None,
                )
            }
        }
        Some((name, content)) if name == VALIDATE => {
            let result: Value = serde_json::from_str(content).unwrap_or(Value::Null);
            let valid = result["valid"].as_bool().unwrap_or(false);
            let wants_run = ["run", "execute", "start", "go ahead", "do it"]
                .iter()
                .any(|word| user_text.contains(word));
            match (
                valid,
                wants_run && offered(EXECUTE),
                last_call_arguments(&request.messages, VALIDATE),
            ) {
                (true, true, Some(arguments)) => (
                    "The workflow is valid. Running it now.".to_owned(),
                    Some(call(
                        EXECUTE,
                        json!({ "workflow": arguments["workflow"], "params": {} }),
                    )),
                ),
                (true, _, _) => (
                    "The workflow is valid. Ask me to run it when you are ready.".to_owned(),
                    None,
                ),
                (false, _, _) => (
                    format!("The workflow did not validate: {}", result["errors"]),
                    None,
                ),
            }
        }
        Some((name, content)) if name == EXECUTE && content.contains("\"declined\":true") => (
            "Understood: I did not run the workflow. Tell me what to change, or ask me to run it again."
                .to_owned(),
            None,
        ),
        Some((name, content)) if name == EXECUTE => {
            let result: Value = serde_json::from_str(content).unwrap_or(Value::Null);
            let status = result["status"].as_str().unwrap_or("unknown");
            (
                format!(
                    "The workflow finished with status {status} (execution {}).",
                    result["execution_id"].as_str().unwrap_or("-")
                ),
                None,
            )
        }
        Some((name, content)) => (format!("The tool {name} returned: {content}"), None),
    };
    let output_chars = text.len();
    // Stream the text in a few pieces, as a model would.
    for piece in text.split_inclusive(". ") {
        events.push(LlmEvent::TextDelta(piece.to_owned()));
    }
    let finish = if call.is_some() {
        FinishReason::ToolCalls
    } else {
        FinishReason::Stop
    };
    events.extend(call.map(LlmEvent::ToolCall));
    events.push(LlmEvent::Usage(Usage {
        input: approximate_tokens(request),
        output: (output_chars / 4).max(1) as u64,
    }));
    events.push(LlmEvent::Finished { reason: finish });
    events
}

fn call(name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        id: format!("call_offline_{name}"),
        name: name.to_owned(),
        arguments,
    }
}

fn last_user_text(messages: &[ChatMessage]) -> &str {
    messages
        .iter()
        .rev()
        .find_map(|message| match message {
            ChatMessage::User { content } => Some(content.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

/// The newest tool result, if it came after the newest user message.
fn last_tool_result(messages: &[ChatMessage]) -> Option<(&str, &str)> {
    for message in messages.iter().rev() {
        match message {
            ChatMessage::Tool { name, content, .. } => return Some((name, content)),
            ChatMessage::User { .. } => return None,
            ChatMessage::Assistant { .. } => {}
        }
    }
    None
}

fn last_call_arguments<'a>(messages: &'a [ChatMessage], tool: &str) -> Option<&'a Value> {
    messages.iter().rev().find_map(|message| match message {
        ChatMessage::Assistant { tool_calls, .. } => tool_calls
            .iter()
            .find(|call| call.name == tool)
            .map(|call| &call.arguments),
        _ => None,
    })
}

/// A stable estimate (four characters a token) so usage is never zero.
fn approximate_tokens(request: &ChatRequest) -> u64 {
    let chars: usize = request.system.as_deref().map_or(0, str::len)
        + request
            .messages
            .iter()
            .map(|message| match message {
                ChatMessage::User { content } => content.len(),
                ChatMessage::Assistant { content, .. } => content.as_deref().map_or(0, str::len),
                ChatMessage::Tool { content, .. } => content.len(),
            })
            .sum::<usize>();
    (chars / 4).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::message::ToolSpec;
    use crate::workflow::validate_value;

    fn request(messages: Vec<ChatMessage>, tools: &[&str]) -> ChatRequest {
        ChatRequest {
            model: String::new(),
            system: None,
            messages: messages.into(),
            tools: tools
                .iter()
                .map(|name| ToolSpec {
                    name: (*name).to_owned(),
                    description: String::new(),
                    parameters: Value::Null,
                })
                .collect(),
            max_tokens: None,
            temperature: None,
            stream: true,
        }
    }

    fn tool_call(events: &[LlmEvent]) -> Option<&ToolCall> {
        events.iter().find_map(|event| match event {
            LlmEvent::ToolCall(call) => Some(call),
            _ => None,
        })
    }

    #[test]
    fn every_catalog_workflow_is_valid() {
        for entry in &CATALOG {
            let workflow = (entry.workflow)();
            assert!(
                validate_value(&workflow).is_ok(),
                "{}: {:?}",
                entry.title,
                validate_value(&workflow).err()
            );
        }
    }

    #[test]
    fn keywords_pick_the_workflow_and_the_text_says_it_is_not_a_model() {
        let events = plan(&request(
            vec![ChatMessage::user("How much disk space is left?")],
            &[VALIDATE],
        ));
        let text: String = events
            .iter()
            .filter_map(|event| match event {
                LlmEvent::TextDelta(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert!(text.contains("not a language model"), "{text}");
        let call = tool_call(&events).unwrap();
        assert_eq!(call.name, VALIDATE);
        assert_eq!(call.arguments["workflow"]["name"], "disk-usage-report");
        assert_eq!(
            events.last(),
            Some(&LlmEvent::Finished {
                reason: FinishReason::ToolCalls
            })
        );
    }

    #[test]
    fn after_a_valid_result_it_executes_when_asked_to_run() {
        let first = plan(&request(
            vec![ChatMessage::user("run a backup of my files")],
            &[VALIDATE, EXECUTE],
        ));
        let validate = tool_call(&first).unwrap().clone();
        let messages = vec![
            ChatMessage::user("run a backup of my files"),
            ChatMessage::Assistant {
                content: None,
                tool_calls: vec![validate.clone()],
            },
            ChatMessage::tool_result(&validate, r#"{"valid":true,"errors":[]}"#, false),
        ];
        let second = plan(&request(messages, &[VALIDATE, EXECUTE]));
        let execute = tool_call(&second).unwrap();
        assert_eq!(execute.name, EXECUTE);
        assert_eq!(execute.arguments["workflow"]["name"], "directory-backup");
    }

    #[test]
    fn without_tools_it_answers_with_the_workflow_as_text() {
        let events = plan(&request(vec![ChatMessage::user("hi")], &[]));
        assert!(tool_call(&events).is_none());
        assert_eq!(
            events.last(),
            Some(&LlmEvent::Finished {
                reason: FinishReason::Stop
            })
        );
        assert!(
            matches!(&events[events.len() - 2], LlmEvent::Usage(usage) if usage.input > 0 && usage.output > 0)
        );
    }
}
