//! A client that stops reading its stream while the model keeps talking: the server holds no
//! more for it than its channel bound (the upstream read waits instead), and once nothing has
//! left for the stall timeout the turn is cut off: the upstream call is dropped and the
//! client's connection closed. A client that falls behind a loud workflow run holds the
//! Session to its queue too, and once it reads gets every event of the run, once, in order.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{ServerProcess, blocking_post};
use crate::mock_upstream::{
    MockUpstream, Reply, openai_chunk, openai_text_stream, openai_tool_call_stream,
};
use crate::sse;

/// Deltas of 1 KiB the model would send: 40 MiB if the server read them all, which it would
/// then hold twice (the answer's text, and the events waiting for the client).
const DELTAS: usize = 40_000;

fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Sends a streamed chat request on a socket of its own, which the test then reads (or not)
/// byte by byte.
fn send_streamed_chat(port: u16, content: &str) -> TcpStream {
    let body = json!({"model": "kubiya-workflow-agent", "stream": true,
        "messages": [{"role": "user", "content": content}]})
    .to_string();
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        socket,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    socket
}

#[test]
fn a_client_that_stops_reading_holds_only_the_channel_bound_and_is_cut_off() {
    let delta = openai_chunk(json!({"content": "x".repeat(1024)}), None);
    let chunks = vec![delta; DELTAS];
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_text_stream("Warming up.")),
        Reply::sse_chunks(chunks, Duration::ZERO, true),
    ]);
    let server = ServerProcess::against(
        &mock.base(),
        &[
            ("KUBIYA_AGENT__STALLED_READER_SECS", "3"),
            ("KUBIYA_SERVER__WORKERS", "1"),
        ],
    );
    // One whole turn first, so what a first turn sets up once is not counted as growth.
    let (status, _) = blocking_post(
        &server.url("/v1/chat/completions"),
        json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(status, 200);
    let before = resident_kib(server.child.id());

    // A streamed request, then only the first bytes of the answer are read.
    let mut socket = send_streamed_chat(server.port, "talk a lot");
    let mut head = [0; 512];
    let read = socket.read(&mut head).unwrap();
    assert!(
        String::from_utf8_lossy(&head[..read]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..read])
    );

    // The model keeps talking for as long as it is read; the server must not keep reading.
    // The wait is the scenario: time in which an unbounded server would keep buffering.
    std::thread::sleep(Duration::from_secs(2));
    let grown_mib = resident_kib(server.child.id()).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 24,
        "the server grew by {grown_mib} MiB for one client that reads nothing"
    );

    // Cut off after the stall timeout: the upstream call is dropped and the connection
    // closed; what the kernel still buffered for the client reads out, then the end.
    mock.wait_until_blocking(
        "the upstream stream abandoned",
        Duration::from_secs(15),
        |mock| mock.abandoned_streams() == 1,
    );
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buffer = vec![0; 1 << 16];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(
                Instant::now() < deadline,
                "the connection of a client that stopped reading stayed open"
            ),
        }
    }
}

/// Steps of the loud workflow, each printing `STEP_OUTPUT` bytes: far more than the socket
/// buffers between the server and a client that does not read take.
const STEPS: usize = 100;
const STEP_OUTPUT: usize = 200_000;

#[test]
fn a_client_that_falls_behind_a_loud_run_gets_every_step_event_in_order() {
    let steps: Vec<_> = (0..STEPS)
        .map(|n| {
            json!({"name": format!("step-{n}"),
                   "command": format!("head -c {STEP_OUTPUT} /dev/zero | tr '\\0' x")})
        })
        .collect();
    let workflow = json!({"name": "loud", "type": "chain", "steps": steps});
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_tool_call_stream(
            "call_run",
            "execute_workflow",
            &json!({"workflow": workflow}),
        )),
        Reply::sse(openai_text_stream("It ran.")),
    ]);
    let server = ServerProcess::against(
        &mock.base(),
        &[
            ("KUBIYA_RUNNER__LOCAL__ALLOW_UNSANDBOXED", "true"),
            // Every step's output kept whole, so the events outgrow the socket buffers.
            ("KUBIYA_RUNNER__MAX_LOG_BYTES", "67108864"),
        ],
    );
    let mut socket = send_streamed_chat(server.port, "run it");

    // Read up to the run's id, then nothing while the run goes on: the Session stops taking
    // its events once its queue is full, and takes them again from the run's log once the
    // client reads.
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut raw = Vec::new();
    let execution_id = loop {
        let mut buffer = [0; 4096];
        let read = socket.read(&mut buffer).unwrap();
        assert!(read > 0, "the stream ended before the run started");
        raw.extend_from_slice(&buffer[..read]);
        let seen = String::from_utf8_lossy(&raw);
        if let Some(at) = seen.find("\"execution_id\":\"exec_") {
            let id = &seen[at + 16..];
            if let Some(end) = id.find('"') {
                break id[..end].to_owned();
            }
        }
    };
    // The run's last event, from its own stream, which ends with it.
    let mut events = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        events,
        "GET /v1/executions/{execution_id}/events?after={} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
        2 * STEPS
    )
    .unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut last = Vec::new();
    events.read_to_end(&mut last).unwrap();
    assert!(
        String::from_utf8_lossy(&last).contains("workflow_complete"),
        "the run did not end: {}",
        String::from_utf8_lossy(&last)
    );
    socket.read_to_end(&mut raw).unwrap();
    let text = dechunked(&raw);
    let events: Vec<(u64, String)> = sse::json_data(&text)
        .into_iter()
        .filter_map(|chunk| {
            let event = &chunk["x_kubiya"];
            Some((event["seq"].as_u64()?, event["type"].as_str()?.to_owned()))
        })
        .collect();
    // Every event once, in order (this stream leaves out live output chunks: each step's
    // output shows when it completes), up to the run's end.
    let seqs: Vec<u64> = events.iter().map(|(seq, _)| *seq).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "events out of order or repeated: {seqs:?}"
    );
    for kind in ["step_running", "step_complete"] {
        let seen = events.iter().filter(|(_, seen)| seen == kind).count();
        assert_eq!(seen, STEPS, "{kind} events");
    }
    assert_eq!(events.last().unwrap().1, "workflow_complete");
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the turn did not finish"
    );
}

/// The body of a raw HTTP/1.1 response with chunked transfer encoding.
fn dechunked(raw: &[u8]) -> String {
    let find = |bytes: &[u8], from: usize| {
        bytes[from..]
            .windows(2)
            .position(|pair| pair == b"\r\n")
            .map(|at| from + at)
    };
    let head_end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a response head");
    let (mut at, mut body) = (head_end + 4, Vec::new());
    while let Some(line_end) = find(raw, at) {
        let size = std::str::from_utf8(&raw[at..line_end]).unwrap().trim();
        let size = usize::from_str_radix(size, 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        body.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        at = line_end + 2 + size + 2;
    }
    String::from_utf8(body).expect("a UTF-8 body")
}
