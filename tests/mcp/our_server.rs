//! `kubiya mcp server` with real clients: the Python SDK client in both eras (discover first,
//! and the legacy handshake), and our own supervisor.

use std::process::Command;

use kubiya_actors::mcp::{McpServerConfig, Shutdown};
use serde_json::{Value, json};

use crate::support::{call, peer_path, peers_dir, start, test_settings, wait_running};

/// Runs the Python client session against the binary and returns what it reports.
fn python_session(mode: &str) -> Value {
    let python = peer_path(".venv/bin/python");
    let output = Command::new(python)
        .arg(peers_dir().join("client_session.py"))
        .args([env!("CARGO_BIN_EXE_kubiya"), mode])
        .output()
        .expect("the Python client runs");
    assert!(
        output.status.success(),
        "client session failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "client output is not JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn assert_session(session: &Value, protocol: &str) {
    assert_eq!(session["protocol_version"], protocol, "{session}");
    assert_eq!(
        session["tools"],
        json!([
            "execute_workflow",
            "get_execution",
            "list_runners",
            "validate_workflow"
        ])
    );

    assert_eq!(session["validate"]["is_error"], false);
    assert_eq!(session["validate"]["body"]["valid"], true, "{session}");
    assert_eq!(session["invalid"]["body"]["valid"], false);
    let errors = session["invalid"]["body"]["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|error| error["path"] == "steps[0].depends[0]"),
        "{errors:?}"
    );

    let executed = &session["execute"];
    assert_eq!(executed["is_error"], false, "{session}");
    assert_eq!(executed["body"]["status"], "success", "{session}");
    assert_eq!(executed["body"]["outputs"]["GREETING"], "hello");
    let steps = executed["body"]["steps"].as_array().unwrap();
    assert_eq!(steps[1]["output"], "hello world", "{steps:?}");

    // Every step event arrived as a progress notification, what each step printed too, the
    // last one the run's end.
    let progress = session["progress"].as_array().unwrap();
    let kinds: Vec<String> = progress
        .iter()
        .map(|note| {
            let event: Value = serde_json::from_str(note["message"].as_str().unwrap()).unwrap();
            event["type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "step_running",
            "step_output",
            "step_complete",
            "step_running",
            "step_output",
            "step_complete",
            "workflow_complete"
        ]
    );
    let values: Vec<f64> = progress
        .iter()
        .map(|note| note["progress"].as_f64().unwrap())
        .collect();
    assert!(
        values.windows(2).all(|pair| pair[0] < pair[1]),
        "{values:?}"
    );

    assert_eq!(session["get_execution"]["status"], "success");
    // The execution's numbered events, its live output included, as
    // `/v1/executions/{id}/events` replays them.
    assert_eq!(session["get_execution"]["event_count"], 7);
    assert_eq!(session["runners"]["runners"][0]["name"], "local");
}

#[test]
fn a_modern_client_lists_validates_and_executes_with_progress() {
    assert_session(&python_session("auto"), "2026-07-28");
}

#[test]
fn a_legacy_client_gets_the_same_session_through_the_handshake() {
    assert_session(&python_session("legacy"), "2025-11-25");
}

#[actix_rt::test]
async fn our_supervisor_runs_our_server_in_the_modern_era() {
    let config = McpServerConfig::new(env!("CARGO_BIN_EXE_kubiya"), ["mcp", "server"]);
    let supervisor = start(vec![("kubiya", config)], test_settings());
    let status = wait_running(&supervisor, "kubiya").await;
    assert_eq!(status.protocol_version.as_deref(), Some("2026-07-28"));
    assert_eq!(status.tool_count, 4);

    let workflow = json!({"name": "w", "steps": [{"name": "a", "command": "echo ok"}]});
    let validated = call(
        &supervisor,
        "kubiya__validate_workflow",
        json!({"workflow": workflow}),
    )
    .await
    .unwrap();
    assert!(!validated.is_error);
    assert!(
        validated.content.contains("\"valid\": true"),
        "{}",
        validated.content
    );

    let failing = json!({"name": "f", "steps": [{"name": "a", "command": "exit 3"}]});
    let executed = call(
        &supervisor,
        "kubiya__execute_workflow",
        json!({"workflow": failing}),
    )
    .await
    .unwrap();
    assert!(
        executed.is_error,
        "a failed run is a tool error: {executed:?}"
    );
    assert!(
        executed.content.contains("\"status\": \"failed\""),
        "{}",
        executed.content
    );

    let started = call(
        &supervisor,
        "kubiya__execute_workflow",
        json!({"workflow": {"name": "later", "steps": [{"name": "a", "command": "echo later"}]}, "wait": false}),
    )
    .await
    .unwrap();
    let id = serde_json::from_str::<Value>(&started.content).unwrap()["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut finished = None;
    for _ in 0..100 {
        let followed = call(
            &supervisor,
            "kubiya__get_execution",
            json!({"execution_id": id}),
        )
        .await
        .unwrap();
        let body: Value = serde_json::from_str(&followed.content).unwrap();
        if !matches!(body["status"].as_str(), Some("queued" | "running")) {
            finished = Some(body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let finished = finished.expect("the detached run finished");
    assert_eq!(finished["status"], "success", "{finished}");
    assert_eq!(finished["result"]["steps"][0]["output"], "later");
    supervisor.send(Shutdown).await.unwrap();
}
