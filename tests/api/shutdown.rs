//! Graceful shutdown of the real binary: on SIGTERM readiness turns 503 at once, new work is
//! refused while probes still answer, open streams finish, and the process exits 0.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{ServerProcess, blocking_get, blocking_post};
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
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the turn never reached the model"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
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
