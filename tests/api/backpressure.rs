//! A client that stops reading its stream while the model keeps talking: the server holds no
//! more for it than its channel bound (the upstream read waits instead), and once nothing has
//! left for the stall timeout the turn is cut off: the upstream call is dropped and the
//! client's connection closed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{ServerProcess, blocking_post};
use crate::mock_upstream::{MockUpstream, Reply, openai_chunk, openai_text_stream};

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
    let body = json!({"model": "kubiya-workflow-agent", "stream": true,
        "messages": [{"role": "user", "content": "talk a lot"}]})
    .to_string();
    let mut socket = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        socket,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = [0; 512];
    let read = socket.read(&mut head).unwrap();
    assert!(
        String::from_utf8_lossy(&head[..read]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..read])
    );

    // The model keeps talking for as long as it is read; the server must not keep reading.
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
