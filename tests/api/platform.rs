//! The Kubiya platform runner against a mock platform speaking the original's stream
//! (reference §3): plain and `2:`-prefixed records, comments and heartbeats. Each test picks
//! the platform's behaviour by the runner it names: a good run, an error record and then the
//! end of the body, a stream of heartbeats only, a busy platform asking to retry later.

use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::sse::kinds as types;

/// What the mock platform saw of a request.
#[derive(Debug, Clone)]
struct PlatformRequest {
    path: String,
    query: String,
    authorization: String,
    accept: String,
    body: Value,
}

/// A realistic platform stream (reference §3.2): comments, retry lines, plain JSON and a
/// Vercel-style `2:` record, `step` as an object, split at awkward chunk boundaries.
const PLATFORM_STREAM: &[&str] = &[
    ": heartbeat\n\nretry: 3000\n\n",
    "data: {\"type\":\"workflow_start\",\"requestId\":\"req-1\",\"workflowId\":\"wf-1\",\"progress\":{\"completed\":0,\"total\":2,\"currentStep\":\"build\",\"percentage\":0}}\n\n",
    "data: {\"type\":\"step_running\",\"step\":{\"name\":\"build\",\"status\":\"running\",\"logs\":[]}}\n\n",
    "data: {\"type\":\"log\",\"step\":{\"name\":\"build\"},\"message\":\"compiling 3 packages\\n\"}\n\n",
    "data: {\"type\":\"heartbeat\"}\n\ndata: {\"type\":\"step_complete\",\"step\":{\"name\":\"build\",\"status\":\"fin",
    "ished\",\"output\":\"built 3 packages\\n\",\"exitCode\":0,\"startedAt\":\"2025-07-22T10:00:00Z\",\"finishedAt\":\"2025-07-22T10:00:01Z\",\"duration\":\"1.5s\"}}\n\n",
    "data: 2:{\"type\":\"step_running\",\"step\":{\"name\":\"test\",\"status\":\"running\"}}\n\n",
    "data: {\"type\":\"step_failed\",\"step\":{\"name\":\"test\",\"error\":\"exit status 1\",\"canRetry\":true,\"logs\":[\"FAIL flaky_test\"]}}\n\n",
    "data: {\"type\":\"step_running\",\"step\":{\"name\":\"test\",\"status\":\"running\",\"retryCount\":1}}\n\n",
    "data: {\"type\":\"step_complete\",\"step\":{\"name\":\"test\",\"status\":\"completed\",\"output\":\"42 passed\",\"retryCount\":1,\"duration\":\"2s\"}}\n\n",
    "data: {\"type\":\"workflow_complete\",\"requestId\":\"req-1\",\"status\":\"finished\",\"success\":true}\n\n",
    "data: [DONE]\n\n",
];

/// The platform starts the first step, reports an error in its own words, and the body ends
/// without a `workflow_complete`; the error comes as a plain and as a `2:` record.
const ERROR_THEN_END: &[&str] = &[
    ": heartbeat\n\n",
    "data: 2:{\"type\":\"step_running\",\"step\":{\"name\":\"build\",\"status\":\"running\"}}\n\n",
    "data: 2:{\"type\":\"error\",\"error\":{\"code\":\"RUNNER_LOST\",\"message\":\"runner core-7 lost its pod: OOMKilled\"}}\n\n",
];

const PLAIN_ERROR_THEN_END: &[&str] = &[
    "data: {\"type\":\"step_running\",\"step\":{\"name\":\"build\"}}\n\n",
    "data: {\"type\":\"error\",\"message\":\"workflow quota exceeded for org acme\"}\n\n",
];

/// The platform's answer for the runner the request names.
fn script(runner: &str) -> HttpResponse {
    let stream = |chunks: &'static [&'static str]| {
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .streaming(futures_util::stream::iter(chunks.iter().map(|chunk| {
                Ok::<_, Infallible>(Bytes::from_static(chunk.as_bytes()))
            })))
    };
    match runner {
        "error-then-end" => stream(ERROR_THEN_END),
        "plain-error-then-end" => stream(PLAIN_ERROR_THEN_END),
        // One step starts, then nothing but heartbeats (comments and records), forever.
        "heartbeats-only" => {
            let first = futures_util::stream::iter([Ok::<_, Infallible>(Bytes::from_static(
                b"data: {\"type\":\"step_running\",\"step\":{\"name\":\"build\"}}\n\n",
            ))]);
            let beats = futures_util::stream::unfold(0_u64, |beat| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let chunk = if beat % 2 == 0 {
                    Bytes::from_static(b": heartbeat\n\n")
                } else {
                    Bytes::from_static(b"data: 2:{\"type\":\"heartbeat\"}\n\n")
                };
                Some((Ok::<_, Infallible>(chunk), beat + 1))
            });
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .streaming(first.chain(beats))
        }
        _ => stream(PLATFORM_STREAM),
    }
}

async fn platform(
    req: HttpRequest,
    body: web::Bytes,
    seen: web::Data<Mutex<Vec<PlatformRequest>>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let runner =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|query| query.get("runner").cloned())
            .unwrap_or_default();
    let attempts = {
        let mut seen = seen.lock().expect("not poisoned");
        seen.push(PlatformRequest {
            path: req.path().to_owned(),
            query: req.query_string().to_owned(),
            authorization: header("authorization"),
            accept: header("accept"),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        seen.len()
    };
    // A busy platform: the first attempt is told to come back in a second.
    if runner == "busy" && attempts == 1 {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .body("the scheduler is at capacity");
    }
    script(&runner)
}

/// Starts the mock platform on port 0; returns its base URL and what it saw.
fn start_mock_platform() -> (String, Arc<Mutex<Vec<PlatformRequest>>>) {
    let seen = web::Data::new(Mutex::new(Vec::new()));
    let recorded = seen.clone().into_inner();
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(seen.clone())
            .route("/api/v1/workflow", web::post().to(platform))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listens")
    .run();
    actix_rt::spawn(server);
    (address, recorded)
}

/// The server, its platform pointing at a fresh mock, with the given idle timeout.
async fn app_with_platform(idle_timeout_secs: u64) -> (TestApp, Arc<Mutex<Vec<PlatformRequest>>>) {
    let (platform_url, seen) = start_mock_platform();
    let app = spawn_app_with(|settings| {
        settings.runner.kubiya.api_url = platform_url;
        settings.runner.kubiya.api_key = "test-key".into();
        settings.runner.kubiya.idle_timeout_secs = idle_timeout_secs;
    })
    .await;
    (app, seen)
}

fn three_steps(runner: &str) -> Value {
    json!({
        "name": "release",
        "runner": runner,
        "steps": [
            {"name": "build", "command": "make"},
            {"name": "test", "command": "make test"},
            {"name": "deploy", "command": "make deploy"}
        ]
    })
}

#[actix_rt::test]
async fn the_kubiya_runner_follows_the_platform_stream() {
    let (app, seen) = app_with_platform(1).await;
    let workflow = json!({
        "name": "ci",
        "runner": "core-testing-2",
        "steps": [
            {"name": "build", "executor": {"type": "docker", "config": {"image": "python:3.11-slim", "content": "make"}}},
            {"name": "test", "command": "make test", "retryPolicy": {"limit": 2, "intervalSec": 1}}
        ]
    });
    let started = app
        .start_execution(json!({"workflow": workflow, "params": {"BRANCH": "main"}}))
        .await;
    assert_eq!(started["runner"], "core-testing-2");
    let id = started["execution_id"].as_str().unwrap().to_owned();

    let (_, events) = app
        .read_events(started["events_url"].as_str().unwrap(), None)
        .await;
    assert_eq!(
        types(&events),
        [
            "step_running build",
            "step_output build",
            "step_complete build",
            "step_running test",
            "step_failed test",
            "step_running test",
            "step_complete test",
            "workflow_complete"
        ]
    );
    // The platform's log record, live.
    assert_eq!(
        (&events[1].data["stream"], &events[1].data["text"]),
        (&json!("stdout"), &json!("compiling 3 packages\n"))
    );
    assert_eq!(events[2].data["output"], "built 3 packages");
    assert_eq!(events[2].data["duration"], "1.5s");
    assert_eq!(events[4].data["error"], "exit status 1");
    assert_eq!(events[4].data["will_retry"], true);
    assert_eq!(events[6].data["output"], "42 passed");
    assert_eq!(
        (&events[7].data["workflow"], &events[7].data["status"]),
        (&json!("ci"), &json!("success"))
    );

    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(request.path, "/api/v1/workflow");
    let mut query: Vec<&str> = request.query.split('&').collect();
    query.sort_unstable();
    assert_eq!(
        query,
        [
            "native_sse=true",
            "operation=execute_workflow",
            "runner=core-testing-2"
        ]
    );
    assert_eq!(request.authorization, "UserKey test-key");
    assert_eq!(request.accept, "text/event-stream");
    let mut expected_body = workflow.clone();
    expected_body.as_object_mut().unwrap().remove("runner");
    expected_body["parameters"] = json!({"BRANCH": "main"});
    assert_eq!(request.body, expected_body);

    let (_, _, execution) = app.get_json(&format!("/v1/executions/{id}")).await;
    assert_eq!(execution["status"], "success", "{execution}");
    assert_eq!(execution["steps"][0]["output"], "built 3 packages");
    assert_eq!(execution["steps"][1]["attempts"], 2);
}

/// Runs `three_steps(runner)` to its end: its events and its final state.
async fn run_to_end(app: &TestApp, runner: &str) -> (Vec<crate::sse::SseEvent>, Value) {
    let started = app
        .start_execution(json!({"workflow": three_steps(runner)}))
        .await;
    let id = started["execution_id"].as_str().unwrap().to_owned();
    let (_, events) = app
        .read_events(started["events_url"].as_str().unwrap(), None)
        .await;
    let execution = app
        .wait_for(&id, |execution| execution["status"] != "running")
        .await;
    (events, execution)
}

/// The events of `three_steps` when the run ends while `build` runs: `build` fails, the
/// steps that never ran are skipped.
const FAILED_WHILE_BUILDING: [&str; 5] = [
    "step_running build",
    "step_failed build",
    "step_skipped test",
    "step_skipped deploy",
    "workflow_complete",
];

fn step_states(execution: &Value) -> Vec<String> {
    execution["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            format!(
                "{} {}",
                step["name"].as_str().unwrap(),
                step["status"].as_str().unwrap()
            )
        })
        .collect()
}

#[actix_rt::test]
async fn the_platforms_error_reaches_the_events_and_the_execution_when_the_stream_ends() {
    let (app, _) = app_with_platform(1).await;
    for (runner, said) in [
        ("error-then-end", "runner core-7 lost its pod: OOMKilled"),
        (
            "plain-error-then-end",
            "workflow quota exceeded for org acme",
        ),
    ] {
        let (events, execution) = run_to_end(&app, runner).await;
        assert_eq!(types(&events), FAILED_WHILE_BUILDING, "{runner}");
        let last = &events.last().unwrap().data;
        assert_eq!(last["status"], "failed");
        assert_eq!(last["error"], said, "{runner}");
        assert!(
            events[2].data["reason"].as_str().unwrap().contains(said),
            "{:?}",
            events[2].data
        );
        assert_eq!(execution["status"], "failed");
        assert_eq!(execution["error"], said);
        assert_eq!(
            step_states(&execution),
            ["build failed", "test skipped", "deploy skipped"],
            "no step stays pending: {execution}"
        );
    }
}

#[actix_rt::test]
async fn heartbeats_alone_do_not_keep_a_platform_run_alive() {
    let (app, _) = app_with_platform(1).await;
    let started_at = std::time::Instant::now();
    let (events, execution) = run_to_end(&app, "heartbeats-only").await;
    // The mock would beat forever; the 1 s idle timeout ended the run.
    assert!(started_at.elapsed() < Duration::from_secs(20));
    assert_eq!(types(&events), FAILED_WHILE_BUILDING);
    let error = execution["error"].as_str().unwrap();
    assert!(error.contains("no progress for 1s"), "{error}");
    assert!(error.contains("idle_timeout_secs"), "{error}");
    assert_eq!(
        step_states(&execution),
        ["build failed", "test skipped", "deploy skipped"]
    );
}

#[actix_rt::test]
async fn a_busy_platform_is_retried_after_the_time_it_asks_for() {
    let (app, seen) = app_with_platform(1).await;
    let (events, execution) = run_to_end(&app, "busy").await;
    assert_eq!(execution["status"], "success", "{execution}");
    assert_eq!(events.last().unwrap().data["status"], "success");
    assert_eq!(seen.lock().unwrap().len(), 2, "one refusal, one retry");
}

#[actix_rt::test]
async fn a_cancelled_platform_run_leaves_no_step_pending() {
    let (app, _) = app_with_platform(300).await;
    let started = app
        .start_execution(json!({"workflow": three_steps("heartbeats-only")}))
        .await;
    let id = started["execution_id"].as_str().unwrap().to_owned();
    app.wait_for(&id, |execution| {
        execution["steps"][0]["status"] == "running"
    })
    .await;
    let (status, _) = app
        .send_json("DELETE", &format!("/v1/executions/{id}"), "")
        .await;
    assert!(status < 300, "{status}");
    let execution = app
        .wait_for(&id, |execution| execution["status"] != "running")
        .await;
    assert_eq!(execution["status"], "cancelled");
    assert_eq!(
        step_states(&execution),
        ["build cancelled", "test skipped", "deploy skipped"]
    );
    let (_, events) = app
        .read_events(started["events_url"].as_str().unwrap(), None)
        .await;
    assert_eq!(events[1].data["reason"], "the run was cancelled");
}
