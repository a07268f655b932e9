//! Workflows and executions over HTTP: validation, starting a run, following its events as
//! SSE (and resuming them), reading its state, cancelling it, the platform key's variables,
//! and the `kubiya workflow` commands of the real binary.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    ServerProcess, TestApp, assert_error, assert_invalid, blocking_get, blocking_post_json,
    eventually, kubiya_command, spawn_app,
};
use crate::sse::{SseEvent, kinds as types, parse_sse};

fn hello_workflow() -> Value {
    json!({
        "name": "hello-world",
        "params": {"NAME": "world"},
        "steps": [
            {"name": "greet", "command": "echo \"Hello, ${NAME}\"", "output": "GREETING"},
            {"name": "shout", "command": "echo \"${GREETING}\" | tr 'a-z' 'A-Z'"}
        ]
    })
}

impl TestApp {
    pub(crate) async fn start_execution(&self, request: Value) -> Value {
        let (status, body) = self
            .send_json("POST", "/v1/executions", request.to_string())
            .await;
        assert_eq!(status, 202, "{body}");
        body
    }

    /// Reads an execution's event stream to its end, with `Last-Event-ID` when given.
    pub(crate) async fn read_events(
        &self,
        path: &str,
        last_event_id: Option<u64>,
    ) -> (u16, Vec<SseEvent>) {
        let mut request = self.client.get(self.url(path));
        if let Some(id) = last_event_id {
            request = request.insert_header(("Last-Event-ID", id.to_string()));
        }
        let mut response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        if status == 200 {
            assert_eq!(
                response.headers().get("content-type").unwrap(),
                "text/event-stream"
            );
        }
        let body = tokio::time::timeout(
            Duration::from_secs(30),
            response.body().limit(16 * 1024 * 1024),
        )
        .await
        .expect("the stream ends")
        .expect("body read");
        (status, parse_sse(&String::from_utf8_lossy(&body)))
    }

    /// Polls the execution until `done` holds for it.
    pub(crate) async fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let what = format!("execution {id} reaches the expected state");
        eventually(&what, Duration::from_secs(15), || async {
            let (status, _, body) = self.get_json(&format!("/v1/executions/{id}")).await;
            assert_eq!(status, 200, "{body}");
            done(&body).then_some(body)
        })
        .await
    }
}

#[actix_rt::test]
async fn validation_reports_every_problem_with_its_path_and_normalises() {
    let app = spawn_app().await;
    let (status, body) = app
        .send_json(
            "POST",
            "/v1/workflows/validate",
            json!({"workflow": hello_workflow()}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], true);
    assert_eq!(body["errors"], json!([]));
    // Chain dependencies are made explicit.
    assert_eq!(body["workflow"]["steps"][1]["depends"], json!(["greet"]));

    let yaml = "name: broken\ntype: graph\nsteps:\n  - name: build\n    command: make\n  - name: test\n    depends: [biuld]\n    command: make test\n  - name: build\n    command: again\n";
    let (status, body) = app
        .send_json(
            "POST",
            "/v1/workflows/validate",
            json!({ "workflow": yaml }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], false);
    let paths: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["steps[2].name", "steps[1].depends[0]"], "{body}");
    assert!(
        body["errors"][1]["message"]
            .as_str()
            .unwrap()
            .contains("biuld")
    );
    assert_eq!(body["workflow"]["name"], "broken");

    let (status, body) = app
        .send_json("POST", "/v1/workflows/validate", r#"{"workflow": 7}"#)
        .await;
    assert_eq!((status, &body["valid"]), (200, &json!(false)), "{body}");
    assert_eq!(body["workflow"], Value::Null);

    let (status, body) = app.send_json("POST", "/v1/workflows/validate", "{}").await;
    assert_invalid(status, &body, Some("workflow"));
}

#[actix_rt::test]
async fn values_of_the_wrong_type_are_all_reported_with_the_rest_of_the_workflow_checked() {
    let app = spawn_app().await;
    let workflow = json!({
    "name": "typed",
    "timeout": "ten",
    "maxActiveSteps": 0,
    "env": {"LEVEL": ["info"]},
    "steps": [
        {"name": "a", "command": "true", "retries": "3", "depends": ["ghost", 7],
         "retryPolicy": {"backoff": "yes"}, "continueOn": {"failure": "yes"}},
        {"name": "b", "executor": {"config": {}}, "preconditions": [5]},
        {"name": "c", "command": "echo ${NOPE}"}
    ]});
    let (status, body) = app
        .send_json(
            "POST",
            "/v1/workflows/validate",
            json!({ "workflow": workflow }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], false);
    let errors: Vec<(&str, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| {
            (
                error["path"].as_str().unwrap(),
                error["message"].as_str().unwrap(),
            )
        })
        .collect();
    let paths: Vec<&str> = errors.iter().map(|(path, _)| *path).collect();
    assert_eq!(
        paths,
        [
            "steps[0].depends[1]",
            "steps[0].retryPolicy.backoff",
            "steps[0].continueOn.failure",
            "steps[0].retries",
            "steps[1].executor.type",
            "steps[1].preconditions[0]",
            "env.LEVEL",
            "timeout",
            "maxActiveSteps",
            // What the document means is still checked.
            "steps[0].depends[0]",
            "steps[2].command",
        ],
        "{body}"
    );
    assert_eq!(
        errors[3].1,
        "\"retries\" must be a whole number (0 or more), not \"3\""
    );
    assert!(errors[9].1.contains("unknown step 'ghost'"), "{body}");
    assert!(errors[10].1.contains("${NOPE} is not defined"), "{body}");
    // A workflow with values of the wrong type is not shown as one.
    assert_eq!(body["workflow"], Value::Null);
}

#[actix_rt::test]
async fn an_execution_streams_its_events_then_reports_its_steps() {
    let app = spawn_app().await;
    let started = app
        .start_execution(json!({"workflow": hello_workflow(), "params": {"NAME": "tests"}}))
        .await;
    let id = started["execution_id"].as_str().expect("an id").to_owned();
    assert!(id.starts_with("exec_"), "{started}");
    assert_eq!(started["status"], "queued");
    assert_eq!(started["runner"], "local");
    assert_eq!(started["events_url"], format!("/v1/executions/{id}/events"));

    let (status, events) = app
        .read_events(&format!("/v1/executions/{id}/events"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        types(&events),
        [
            "step_running greet",
            "step_output greet",
            "step_complete greet",
            "step_running shout",
            "step_output shout",
            "step_complete shout",
            "workflow_complete"
        ]
    );
    let ids: Vec<u64> = events.iter().map(|event| event.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
    for event in &events {
        assert_eq!(event.data["execution_id"], id.as_str());
        assert_eq!(event.data["seq"], event.id);
    }
    assert_eq!(
        (&events[1].data["stream"], &events[1].data["text"]),
        (&json!("stdout"), &json!("Hello, tests\n"))
    );
    assert_eq!(events[2].data["output"], "Hello, tests");
    assert!(events[2].data["duration"].as_str().unwrap().ends_with('s'));
    assert_eq!(events[5].data["output"], "HELLO, TESTS");
    let last = &events[6].data;
    assert_eq!(
        (&last["workflow"], &last["status"]),
        (&json!("hello-world"), &json!("success"))
    );

    let (status, _, execution) = app.get_json(&format!("/v1/executions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(execution["status"], "success", "{execution}");
    assert_eq!(execution["workflow"], "hello-world");
    assert_eq!(execution["last_seq"], 7);
    assert!(execution["finished_at"].as_u64() >= execution["started_at"].as_u64());
    let steps = execution["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (&steps[0]["name"], &steps[0]["status"], &steps[0]["output"]),
        (&json!("greet"), &json!("success"), &json!("Hello, tests"))
    );
    assert_eq!(steps[1]["output"], "HELLO, TESTS");
    assert_eq!(steps[1]["exit_code"], 0);
}

#[actix_rt::test]
async fn a_late_subscriber_resumes_exactly_after_its_last_event() {
    let app = spawn_app().await;
    let started = app
        .start_execution(json!({"workflow": hello_workflow()}))
        .await;
    let events_path = started["events_url"].as_str().unwrap().to_owned();
    let (_, all) = app.read_events(&events_path, None).await;
    assert_eq!(all.len(), 7);

    let (status, rest) = app.read_events(&events_path, Some(2)).await;
    assert_eq!(status, 200);
    assert_eq!(rest, all[2..]);

    let (_, rest) = app
        .read_events(&format!("{events_path}?after=4"), None)
        .await;
    assert_eq!(rest, all[4..]);

    // Nothing follows the final event: the stream ends at once, empty.
    let (status, rest) = app.read_events(&events_path, Some(7)).await;
    assert_eq!((status, rest.len()), (200, 0));

    let (status, body) = app
        .send_json("GET", &format!("{events_path}?after=soon"), "")
        .await;
    assert_invalid(status, &body, Some("after"));
}

#[actix_rt::test]
async fn a_running_steps_output_streams_live_masked_and_resumable() {
    let dir = std::env::temp_dir().join(format!("kubiya-live-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let secrets = dir.join("secrets.json");
    std::fs::write(&secrets, r#"{"DB_PASS": "hunter22"}"#).unwrap();
    let secrets_file = secrets.to_string_lossy().into_owned();
    let app = crate::helpers::spawn_app_with(move |settings| {
        settings.runner.local.secrets_file = secrets_file;
    })
    .await;
    // A line, then the secret written in two parts a second apart ("hu", then "nter22"),
    // then another line, and a line on stderr.
    let workflow = json!({"name": "talker", "env": {"P": "{{secret:DB_PASS}}"}, "steps": [{
        "name": "talk",
        "command": "echo first; printf 'pass=%s' \"${P%??????}\"; sleep 1; printf '%s\\n' \"${P#??}\"; echo second; echo warned >&2",
    }]});
    let started = app.start_execution(json!({"workflow": workflow})).await;
    let events_path = started["events_url"].as_str().unwrap().to_owned();
    let (status, all) = app.read_events(&events_path, None).await;
    assert_eq!(status, 200);
    let kinds = types(&all);
    assert_eq!(kinds.first().unwrap(), "step_running talk");
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["step_complete talk", "workflow_complete"]
    );
    let chunks: Vec<&SseEvent> = all
        .iter()
        .filter(|event| event.data["type"] == "step_output")
        .collect();
    let stdout: String = chunks
        .iter()
        .filter(|event| event.data["stream"] == "stdout")
        .map(|event| event.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(stdout, "first\npass=***\nsecond\n", "{all:#?}");
    assert!(
        chunks
            .iter()
            .any(|event| event.data["stream"] == "stderr" && event.data["text"] == "warned\n"),
        "{all:#?}"
    );
    // The first line was sent on its own while the step still ran.
    let first = chunks[0];
    assert_eq!(first.data["text"], "first\n");
    assert_eq!(first.data["step"], "talk");
    let complete = &all[all.len() - 2];
    assert!(
        complete.data["timestamp"].as_u64().unwrap()
            >= first.data["timestamp"].as_u64().unwrap() + 800,
        "{all:#?}"
    );
    assert_eq!(complete.data["output"], "first\npass=***\nsecond");
    // Neither the secret nor its second half was ever sent.
    let everything = format!("{all:?}");
    assert!(
        !everything.contains("hunter22") && !everything.contains("nter22"),
        "{everything}"
    );
    // A client that saw the first chunk resumes after it, missing nothing.
    let (_, rest) = app.read_events(&events_path, Some(first.id)).await;
    assert_eq!(rest, all[usize::try_from(first.id).unwrap()..]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn delete_cancels_a_long_running_execution() {
    let app = spawn_app().await;
    let started = app
        .start_execution(json!({"workflow": {
            "name": "slow",
            "steps": [{"name": "wait", "command": "sleep 60"}, {"name": "after", "command": "echo never"}]
        }}))
        .await;
    let id = started["execution_id"].as_str().unwrap().to_owned();
    // A subscriber following live sees the end too.
    let follower = {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let url = app.url(&format!("/v1/executions/{id}/events"));
        actix_rt::spawn(async move {
            let mut response = client.get(url).send().await.expect("request sent");
            let body = response.body().limit(1 << 20).await.expect("body");
            parse_sse(&String::from_utf8_lossy(&body))
        })
    };
    app.wait_for(&id, |execution| {
        execution["steps"][0]["status"] == "running"
    })
    .await;

    let (status, body) = app
        .send_json("DELETE", &format!("/v1/executions/{id}"), "")
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["execution_id"], id.as_str());
    assert_eq!(body["cancel_requested"], true);

    let execution = app
        .wait_for(&id, |execution| execution["status"] != "running")
        .await;
    assert_eq!(execution["status"], "cancelled", "{execution}");
    assert_eq!(execution["steps"][0]["status"], "cancelled");
    assert_eq!(execution["steps"][1]["status"], "skipped");

    let events = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .expect("the live stream ends")
        .expect("the follower ran");
    let last = &events.last().expect("events").data;
    assert_eq!(
        (&last["type"], &last["status"]),
        (&json!("workflow_complete"), &json!("cancelled"))
    );
}

#[actix_rt::test]
async fn unknown_executions_are_404_and_bad_requests_are_400() {
    let app = spawn_app().await;
    for (method, path) in [
        ("GET", "/v1/executions/exec_nope"),
        ("DELETE", "/v1/executions/exec_nope"),
        ("GET", "/v1/executions/exec_nope/events"),
    ] {
        let (status, body) = app.send_json(method, path, "").await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_error(&body, "invalid_request_error", "not_found", None);
    }

    let (status, body) = app
        .send_json(
            "POST",
            "/v1/executions",
            json!({"workflow": {"name": "w", "steps": [{"name": "a", "command": "x", "depends": ["b"]}]}})
                .to_string(),
        )
        .await;
    assert_invalid(status, &body, Some("workflow"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("steps[0].depends[0]"),
        "{body}"
    );

    // A Kubiya runner needs a platform key, which this server has not.
    let (status, body) = app
        .send_json(
            "POST",
            "/v1/executions",
            json!({"workflow": hello_workflow(), "runner": "kubiya-hosted"}).to_string(),
        )
        .await;
    assert_invalid(status, &body, Some("runner"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("KUBIYA_API_KEY")
    );

    // Steps this host cannot run are refused before anything starts.
    let (status, body) = app
        .send_json(
            "POST",
            "/v1/executions",
            json!({"workflow": {"name": "w", "steps": [
                {"name": "ask", "executor": {"type": "tool", "config": {"name": "slack"}}}
            ]}})
            .to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("steps[0].executor.type"),
        "{body}"
    );

    let (status, _) = app.send_json("PUT", "/v1/executions/exec_nope", "").await;
    assert_eq!(status, 405);
}

#[test]
fn the_platform_key_and_url_come_from_their_own_variables() {
    let server = ServerProcess::start(
        &[],
        &[
            ("KUBIYA_API_KEY", "uk-from-env"),
            // Nothing listens on port 1: the run fails, naming the URL it tried.
            ("KUBIYA_API_URL", "http://127.0.0.1:1"),
        ],
        None,
    );
    let (status, _, started) = blocking_post_json(
        &server.url("/v1/executions"),
        &json!({"workflow": hello_workflow(), "runner": "edge-runner"}),
    );
    assert_eq!(status, 202, "the key was picked up: {started}");
    let path = format!(
        "/v1/executions/{}",
        started["execution_id"].as_str().unwrap()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let execution = loop {
        let (status, execution) = blocking_get(&server.url(&path));
        assert_eq!(status, 200, "{execution}");
        if execution["status"] == "failed" {
            break execution;
        }
        assert!(std::time::Instant::now() < deadline, "{execution}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let error = execution["error"].as_str().unwrap();
    assert!(
        error.contains("http://127.0.0.1:1/api/v1/workflow"),
        "{error}"
    );
    assert!(!error.contains("uk-from-env"), "{error}");
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/workflows")
        .join(name)
}

/// Runs `kubiya workflow ARGS…` and returns its exit code and stdout.
fn kubiya_workflow(args: &[&str]) -> (i32, String) {
    let output = kubiya_command()
        .arg("workflow")
        .args(args)
        .output()
        .expect("kubiya runs");
    (
        output.status.code().expect("exited"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn the_validate_command_prints_each_problem_with_its_path() {
    let valid = fixture("hello.yaml");
    let (code, out) = kubiya_workflow(&["validate", valid.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("workflow 'hello-world' is valid (2 steps)"),
        "{out}"
    );

    let invalid = fixture("invalid.yaml");
    let (code, out) = kubiya_workflow(&["validate", invalid.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("2 problems"), "{out}");
    assert!(
        out.contains("  steps[2].name: duplicate step name 'build'"),
        "{out}"
    );
    assert!(out.contains("  steps[1].depends[0]: "), "{out}");

    let (code, _) = kubiya_workflow(&["validate", "/nonexistent/workflow.yaml"]);
    assert_eq!(code, 2);
}

#[test]
fn the_validate_command_refuses_a_workflow_over_the_step_limit_at_once() {
    let dir = std::env::temp_dir().join(format!("kubiya-steps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("huge.yaml");
    let mut yaml = String::from("name: huge\nsteps:\n");
    for index in 0..50_000 {
        yaml.push_str(&format!(
            "  - name: s{index}\n    command: echo ${{OUT}}\n    output: OUT\n"
        ));
    }
    std::fs::write(&file, yaml).unwrap();
    let (code, out) = kubiya_workflow(&["validate", file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("steps: a workflow may have at most 1000 steps; this one has 50000"),
        "{out}"
    );
    assert!(out.contains("1 problem"), "{out}");
}

#[test]
fn the_run_command_shows_each_step_and_exits_by_the_outcome() {
    let passing = fixture("hello.yaml");
    let (code, out) = kubiya_workflow(&["run", passing.to_str().unwrap(), "--param", "NAME=cli"]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "▶ greet", "{out}");
    assert!(lines[1].starts_with("✓ greet ("), "{out}");
    assert_eq!(lines[2], "    Hello, cli", "{out}");
    assert_eq!(lines[3], "▶ shout", "{out}");
    assert_eq!(lines[5], "    HELLO, CLI", "{out}");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("✓ workflow hello-world succeeded in "),
        "{out}"
    );

    let failing = fixture("failing.json");
    let (code, out) = kubiya_workflow(&["run", failing.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✓ prepare ("), "{out}");
    assert!(out.contains("✗ check: exit status 3: disk full"), "{out}");
    assert!(
        out.contains("↷ publish skipped: dependency 'check' failed"),
        "{out}"
    );
    assert!(
        out.contains("  stdout of check:\n    checking /data"),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("✗ workflow disk-check failed after "),
        "{out}"
    );

    let (code, out) = kubiya_workflow(&["run", passing.to_str().unwrap(), "--param", "oops"]);
    assert_eq!(code, 2, "{out}");
}
