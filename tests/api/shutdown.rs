//! Graceful shutdown of the real binary: on SIGTERM readiness turns 503 at once, new work is
//! refused while probes still answer, and the process exits 0.

use std::time::Duration;

use crate::helpers::{ServerProcess, blocking_get};

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
