//! Graceful shutdown of the real binary: on SIGTERM readiness turns 503 at once, new work is
//! refused while probes still answer, open streams finish, and the process exits 0.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{ServerProcess, blocking_get, blocking_post, blocking_post_json};
use crate::mock_upstream::{MockUpstream, Reply, openai_text_stream};

#[test]
fn sigterm_turns_readiness_503_then_exits_0() {
    let mut server = ServerProcess::start(&[], &[("KUBIYA_SERVER__DRAIN_DELAY_SECS", "2")], None);
    assert_eq!(blocking_get(&server.url("/health/ready")).0, 200);

    server.signal(libc::SIGTERM);
    server.wait_for_log(|r| r["message"] == "shutdown requested: draining");

    let (status, body) = blocking_get(&server.url("/health/ready"));
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "shutting_down");
    assert_eq!(blocking_get(&server.url("/health/live")).0, 200);
    let (status, body) = blocking_get(&server.url("/v1/models"));
    assert_eq!(status, 503);
    assert_eq!(body["error"]["type"], "server_error");

    assert_eq!(server.wait_exit(Duration::from_secs(15)), 0);
}

#[test]
fn sigint_also_exits_0() {
    let mut server = ServerProcess::start(&[], &[], None);
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), 0);
}

#[test]
fn sigterm_during_a_stream_lets_it_finish_then_exits_0() {
    let pieces: Vec<String> = openai_text_stream("one two three four five six")
        .split_inclusive("\n\n")
        .map(str::to_owned)
        .collect();
    let mock = MockUpstream::start(vec![Reply::sse_chunks(
        pieces,
        Duration::from_millis(150),
        false,
    )]);
    let mut server = ServerProcess::against(&mock.base(), &[]);
    let url = server.url("/v1/chat/completions");
    let request = json!({"model": "kubiya-workflow-agent", "stream": true, "messages": [{"role": "user", "content": "count"}]});
    let streaming = std::thread::spawn(move || blocking_post(&url, request));
    mock.wait_until_blocking(
        "the turn reached the model",
        Duration::from_secs(10),
        |mock| !mock.requests().is_empty(),
    );
    server.signal(libc::SIGTERM);
    server.wait_for_log(|r| r["message"] == "shutdown requested: draining");
    let (status, new_turn) = blocking_get(&server.url("/v1/models"));
    assert_eq!(status, 503, "no new work while draining: {new_turn}");

    let (status, body) = streaming.join().unwrap();
    assert_eq!(status, 200);
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert!(body.contains("\"six\""), "the whole answer arrived: {body}");
    assert_eq!(server.wait_exit(Duration::from_secs(15)), 0);
}

/// Follows an execution's events on a thread of its own; says on `beats` when the first
/// heartbeat comment arrives (the stream is open and idle), and returns the whole body.
fn follow_execution(
    url: String,
    beats: std::sync::mpsc::Sender<()>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            use futures_util::StreamExt;
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish();
            let mut response = client.get(url).send().await.expect("request sent");
            assert_eq!(response.status().as_u16(), 200);
            let mut body = String::new();
            while let Some(chunk) = response.next().await {
                let chunk = String::from_utf8(chunk.expect("a chunk").to_vec()).expect("UTF-8");
                if chunk.starts_with(": keep-alive") {
                    let _ = beats.send(());
                }
                body.push_str(&chunk);
            }
            body
        })
    })
}

/// Starts `workflow` on a server with a 1 s heartbeat and `env`, follows its events until the
/// first heartbeat, then sends SIGTERM; once the process has exited 0, asserts the stream
/// ended with `workflow_complete` in `status`.
fn follow_through_sigterm(env: &[(&str, &str)], workflow: serde_json::Value, status: &str) {
    let env = [&[("KUBIYA_AGENT__HEARTBEAT_SECS", "1")], env].concat();
    let mut server = ServerProcess::start(&[], &env, None);
    let (code, _, started) = blocking_post_json(
        &server.url("/v1/executions"),
        &json!({ "workflow": workflow }),
    );
    assert_eq!(code, 202, "{started}");
    let events = server.url(&format!(
        "/v1/executions/{}/events",
        started["execution_id"].as_str().unwrap()
    ));
    let (beats, beat) = std::sync::mpsc::channel();
    let follower = follow_execution(events, beats);
    // The configured heartbeat (1 s), not a fixed 15 s, keeps the idle stream alive.
    beat.recv_timeout(Duration::from_secs(5))
        .expect("a heartbeat within the configured second");
    server.signal(libc::SIGTERM);
    let body = follower.join().expect("the follower ran");
    assert_eq!(server.wait_exit(Duration::from_secs(20)), 0);
    let last = crate::sse::parse_sse(&body).pop().expect("events").data;
    assert_eq!(
        (&last["type"], &last["status"]),
        (&json!("workflow_complete"), &json!(status)),
        "{body}"
    );
}

#[test]
fn sigterm_lets_a_followed_execution_finish_then_exits_0() {
    // The drain waits for the open stream, so the run finishes instead of being cancelled.
    follow_through_sigterm(
        &[],
        json!({"name": "short", "steps": [{"name": "wait", "command": "sleep 3; echo done"}]}),
        "success",
    );
}

#[test]
fn a_followed_execution_past_the_shutdown_timeout_is_cancelled_and_its_stream_ends() {
    follow_through_sigterm(
        &[("KUBIYA_SERVER__SHUTDOWN_TIMEOUT_SECS", "2")],
        json!({"name": "long", "steps": [{"name": "wait", "command": "sleep 60"}]}),
        "cancelled",
    );
}
