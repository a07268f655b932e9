//! Real client SDKs read our output: the official `openai` Python package (whole answers,
//! streams, `include_usage`, errors) and the AI SDK 4's own data-stream parser (`ai` on npm).
//! Both are pinned in `tests/clients/` and installed by `make deps`.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::spawn_app_against;
use crate::mock_upstream::{
    MockUpstream, Reply, openai_text_stream, openai_tool_call_stream, validate_run_answer,
};

pub fn clients_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients"))
}

/// Runs a client program off the test's runtime thread and parses the JSON it prints.
pub async fn run_client(program: &str, args: Vec<String>) -> Value {
    let program = program.to_owned();
    let output = actix_web::rt::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .current_dir(clients_dir())
            .output()
            .unwrap_or_else(|err| panic!("{program} could not start ({err}); run `make deps`"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("client printed: {stdout}"))
}

#[actix_rt::test]
async fn the_openai_python_package_reads_answers_streams_usage_and_errors() {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_text_stream("Hello from the agent.")),
        Reply::sse(openai_text_stream("Streamed hello.")),
        Reply::sse(openai_text_stream("Counted hello.")),
    ]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let seen = run_client(python, vec!["openai_client.py".into(), app.address.clone()]).await;
    assert_eq!(seen["whole"], "Hello from the agent.");
    assert_eq!(seen["whole_usage"]["total_tokens"], 18);
    assert_eq!(seen["stream"], "Streamed hello.");
    assert_eq!(seen["finish"], "stop");
    assert_eq!(seen["usage"]["prompt_tokens"], 11);
    assert_eq!(seen["usage"]["completion_tokens"], 7);
    assert_eq!(seen["models"], json!(["kubiya-workflow-agent"]));
    assert_eq!(
        seen["error"],
        json!({"class": "NotFoundError", "status": 404})
    );
}

#[actix_rt::test]
async fn the_ai_sdk_parses_text_tool_calls_and_step_events_with_its_own_parser() {
    let workflow = json!({"name": "hello", "steps": [{"name": "say", "command": "echo hi"}]});
    let mock = MockUpstream::start(validate_run_answer(&workflow, "It is valid."));
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let request = json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": "hello workflow"}]});
    let seen = run_client(
        "node",
        vec![
            "vercel_client.mjs".into(),
            app.url("/v1/chat/completions"),
            request.to_string(),
        ],
    )
    .await;
    assert_eq!(seen["status"], 200);
    assert_eq!(seen["header"], "v1");
    assert_eq!(seen["errors"], json!([]));
    assert_eq!(seen["text"], "It is valid.");
    assert_eq!(seen["toolCalls"][0]["toolName"], "validate_workflow");
    assert_eq!(seen["toolCalls"][0]["args"]["workflow"]["name"], "hello");
    assert_eq!(seen["toolResults"][0]["toolCallId"], "call_v");
    assert_eq!(seen["toolResults"][0]["result"]["valid"], true);
    assert_eq!(
        seen["toolCalls"][1]["toolName"], "execute_workflow",
        "{seen}"
    );
    assert_eq!(seen["toolResults"][1]["result"]["status"], "success");
    let step_events: Vec<(&str, &str)> = seen["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["type"].as_str().unwrap(),
                event["step"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        step_events,
        [
            ("step_running", "say"),
            ("step_output", "say"),
            ("step_complete", "say"),
            ("workflow_complete", "")
        ]
    );
    assert_eq!(seen["data"][1]["text"], "hi\n");
    assert_eq!(seen["data"][2]["output"], "hi");
    assert_eq!(seen["steps"][0]["finishReason"], "tool-calls");
    assert_eq!(seen["finish"]["finishReason"], "stop");
    assert_eq!(seen["finish"]["usage"]["promptTokens"], 51);
}

#[actix_rt::test]
async fn a_plain_openai_client_reads_step_output_and_the_workflow_it_asked_for() {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let load = json!({"name": "system-load", "steps": [
        {"name": "load", "command": "echo 'CPU: 45%'; echo 'Memory: 60%'"},
        {"name": "report", "command": "echo all good", "depends": ["load"]}
    ]});
    let disk = json!({"name": "disk-check", "description": "How full the disks are",
        "steps": [{"name": "usage", "command": "df -h /"}]});
    let validate = |id: &str, workflow: &Value| {
        Reply::sse(openai_tool_call_stream(
            id,
            "validate_workflow",
            &json!({"workflow": workflow}),
        ))
    };
    let mock = MockUpstream::start(vec![
        validate("call_1", &load),
        Reply::sse(openai_tool_call_stream(
            "call_2",
            "execute_workflow",
            &json!({"workflow": load}),
        )),
        Reply::sse(openai_text_stream("The load is fine.")),
        validate("call_3", &disk),
        Reply::sse(openai_text_stream("I created the workflow disk-check.")),
        validate("call_4", &disk),
        Reply::sse(openai_text_stream("I created the workflow disk-check.")),
    ]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let seen = run_client(
        python,
        vec!["openai_readable.py".into(), app.address.clone()],
    )
    .await;

    let ran = seen["ran"].as_str().unwrap();
    for line in [
        "▶ load: running\n",
        "✓ load (",
        "    CPU: 45%\n    Memory: 60%\n",
        "    all good\n",
        "Workflow system-load: success (",
        "The load is fine.",
    ] {
        assert!(ran.contains(line), "{line:?} missing from:\n{ran}");
    }
    // The model's text had no code block: the workflow it made is shown as YAML, once,
    // after the model's own words, in a whole answer and in a stream alike.
    // Keys in the original's order: `name` and `steps` first.
    let yaml = "```yaml\nname: disk-check\nsteps:\n- name: usage\n  command: df -h /\ndescription: How full the disks are\n```";
    for created in [&seen["created"], &seen["created_streamed"]] {
        let created = created.as_str().unwrap();
        assert!(
            created.contains("I created the workflow disk-check."),
            "{created}"
        );
        assert_eq!(created.matches("```yaml").count(), 1, "{created}");
        assert!(created.contains(yaml), "{created}");
        assert!(created.trim_end().ends_with("```"), "{created}");
    }
    assert!(
        ran.contains("```yaml\nname: system-load"),
        "an answer that ran a workflow shows it too:\n{ran}"
    );
}
