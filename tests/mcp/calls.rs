//! Call timing against the everything server's long-running tool: the idle timeout and its
//! reset by progress, the hard cap, cancellation by the caller, and a server killed mid-call.

use std::time::{Duration, Instant};

use kubiya_actors::mcp::{McpError, Shutdown};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::{
    call, call_with, everything, recorded, sent_log, start, test_settings, wait_for, wait_for_line,
    wait_running,
};

/// `trigger-long-running-operation` sleeps `duration / steps` seconds per step and reports
/// progress after each.
fn long_operation(duration: u64, steps: u64) -> serde_json::Value {
    json!({"duration": duration, "steps": steps})
}

#[actix_rt::test]
async fn a_silent_call_times_out_and_is_cancelled_while_progress_keeps_one_alive_up_to_the_cap() {
    let mut settings = test_settings();
    settings.call_timeout_secs = 2;
    settings.max_call_timeout_secs = 4;
    let supervisor = start(vec![("everything", everything())], settings);
    wait_running(&supervisor, "everything").await;
    let tool = "everything__trigger-long-running-operation";

    // One step of 6 s: no progress for 6 s, so the 2 s idle timeout fires.
    let started = Instant::now();
    let silent = call(&supervisor, tool, long_operation(6, 1))
        .await
        .unwrap_err();
    assert!(matches!(silent, McpError::Timeout { .. }), "{silent:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // Progress every 0.5 s keeps a 3 s operation alive past the 2 s idle timeout.
    let lively = call(&supervisor, tool, long_operation(3, 6)).await.unwrap();
    assert!(!lively.is_error, "{lively:?}");
    assert!(lively.content.contains("completed"), "{}", lively.content);

    // ...but never past the 4 s hard cap.
    let started = Instant::now();
    let capped = call(&supervisor, tool, long_operation(8, 16))
        .await
        .unwrap_err();
    assert!(matches!(capped, McpError::Timeout { .. }), "{capped:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(6),
        "{took:?}"
    );

    // The server was told to cancel and is still fine; late progress for the cancelled calls
    // is dropped.
    let sum = call(&supervisor, "everything__get-sum", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert!(sum.content.contains('3'), "{}", sum.content);
    supervisor.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn cancelling_the_callers_token_ends_the_call_at_once() {
    let log = sent_log();
    let supervisor = start(
        vec![("everything", recorded(everything(), &log))],
        test_settings(),
    );
    wait_running(&supervisor, "everything").await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let sent = log.clone();
    // Cancelled once the call has reached the server.
    actix_rt::spawn(async move {
        wait_for_line(&sent, Duration::from_secs(10), is_long_operation_call).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let cancelled = call_with(
        &supervisor,
        "everything__trigger-long-running-operation",
        long_operation(10, 10),
        cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(cancelled, McpError::Cancelled(_)), "{cancelled:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The server was told.
    let call_id =
        wait_for_line(&log, Duration::from_secs(2), is_long_operation_call).await["id"].clone();
    wait_for_line(&log, Duration::from_secs(2), |line| {
        line["method"] == "notifications/cancelled" && line["params"]["requestId"] == call_id
    })
    .await;
    let echo = call(
        &supervisor,
        "everything__echo",
        json!({"message": "still here"}),
    )
    .await
    .unwrap();
    assert!(echo.content.contains("still here"));
    supervisor.send(Shutdown).await.unwrap();
    let _ = std::fs::remove_file(&log);
}

#[actix_rt::test]
async fn a_server_killed_mid_call_fails_the_call_fast_and_restarts() {
    let log = sent_log();
    let supervisor = start(
        vec![("everything", recorded(everything(), &log))],
        test_settings(),
    );
    let first = wait_running(&supervisor, "everything").await;
    let pid = first.pid.expect("a running server has a pid");

    // Killed, the whole process group (the recording proxy and the server behind it), once
    // the call has reached it.
    let sent = log.clone();
    let killer = actix_rt::spawn(async move {
        wait_for_line(&sent, Duration::from_secs(10), is_long_operation_call).await;
        // SAFETY: signalling the process group of the server this test started.
        unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
        Instant::now()
    });
    let failed = call(
        &supervisor,
        "everything__trigger-long-running-operation",
        long_operation(20, 20),
    )
    .await
    .unwrap_err();
    let failed_at = Instant::now();
    let killed_at = killer.await.unwrap();
    assert!(
        matches!(failed, McpError::ServerExited { .. }),
        "{failed:?}"
    );
    assert!(
        failed_at.duration_since(killed_at) < Duration::from_secs(1),
        "the call failed {:?} after the kill",
        failed_at.duration_since(killed_at)
    );

    let restarted = wait_for(&supervisor, "everything", |status| {
        status.state == kubiya_actors::mcp::ServerState::Running && status.pid != Some(pid)
    })
    .await;
    assert!(restarted.restarts >= 1, "{restarted:?}");
    assert!(
        restarted
            .last_error
            .as_deref()
            .is_some_and(|error| error.contains("signal 9")),
        "{restarted:?}"
    );
    let sum = call(
        &supervisor,
        "everything__get-sum",
        json!({"a": 20, "b": 22}),
    )
    .await
    .unwrap();
    assert!(sum.content.contains("42"), "{}", sum.content);
    supervisor.send(Shutdown).await.unwrap();
    let _ = std::fs::remove_file(&log);
}

/// The request that calls the long-running operation, as the server received it.
fn is_long_operation_call(line: &serde_json::Value) -> bool {
    line["method"] == "tools/call" && line["params"]["name"] == "trigger-long-running-operation"
}
