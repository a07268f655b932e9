//! Processes: a wrapper tree (npx → sh → node) is gone after shutdown, a server that ignores
//! stdin EOF is still stopped, a stderr flood does not stall a server, and a command that cannot
//! start is reported as failed and retried.

use std::time::{Duration, Instant};

use kubiya_actors::mcp::{McpServerConfig, ServerState, Shutdown};
use serde_json::json;

use crate::support::{
    call, flood_server, group_members, peer_path, peers_dir, recorded, sent_log, start, status_of,
    test_settings, wait_for, wait_for_line, wait_group_gone, wait_running,
};

#[actix_rt::test]
async fn an_npx_wrapper_tree_is_fully_killed_at_shutdown() {
    // npx → sh -c mcp-server-everything → node: the real server is a grandchild (of the
    // recording proxy, which shows when the call reached it).
    peer_path("node_modules/.bin/mcp-server-everything");
    let log = sent_log();
    let mut config = recorded(
        McpServerConfig::new("npx", ["--no-install", "mcp-server-everything", "stdio"]),
        &log,
    );
    config.cwd = Some(peers_dir());
    let supervisor = start(vec![("wrapped", config)], test_settings());
    let status = wait_running(&supervisor, "wrapped").await;
    let pgid = status.pid.unwrap();
    let members = group_members(pgid);
    assert!(
        members.len() >= 2,
        "the wrapper and the server: {members:?}"
    );

    // A call in flight at shutdown must not keep anything alive.
    let in_flight = {
        let supervisor = supervisor.clone();
        actix_rt::spawn(async move {
            call(
                &supervisor,
                "wrapped__trigger-long-running-operation",
                json!({"duration": 30, "steps": 30}),
            )
            .await
        })
    };
    wait_for_line(&log, Duration::from_secs(10), |line| {
        line["method"] == "tools/call"
    })
    .await;
    let started = Instant::now();
    supervisor.send(Shutdown).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(in_flight.await.unwrap().is_err());
    let left = wait_group_gone(pgid, Duration::from_secs(2)).await;
    assert!(left.is_empty(), "processes left in the group: {left:?}");
    assert_eq!(
        status_of(&supervisor, "wrapped").await.state,
        ServerState::Stopped
    );
    let _ = std::fs::remove_file(&log);
}

#[actix_rt::test]
async fn a_server_that_ignores_stdin_eof_is_terminated() {
    let mut config = flood_server();
    config.env.insert("HOLD_ON_EOF".into(), "1".into());
    let supervisor = start(vec![("stubborn", config)], test_settings());
    let pgid = wait_running(&supervisor, "stubborn").await.pid.unwrap();
    let started = Instant::now();
    supervisor.send(Shutdown).await.unwrap();
    let took = started.elapsed();
    // stdin close (2 s grace), then SIGTERM ends it.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let left = wait_group_gone(pgid, Duration::from_secs(2)).await;
    assert!(left.is_empty(), "{left:?}");
}

#[actix_rt::test]
async fn a_stderr_flood_does_not_stall_the_server() {
    let mut config = flood_server();
    // 4 MiB before the handshake: far past a pipe's 64 KiB.
    config.env.insert("FLOOD_AT_START".into(), "4096".into());
    let mut settings = test_settings();
    settings.call_timeout_secs = 10;
    let supervisor = start(vec![("flood", config)], settings);
    wait_running(&supervisor, "flood").await;
    let started = Instant::now();
    for _ in 0..3 {
        let answer = call(&supervisor, "flood__flood", json!({"lines": 8192}))
            .await
            .unwrap();
        assert_eq!(answer.content, "flooded 8192 lines");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    supervisor.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn a_command_that_cannot_start_is_failed_and_retried() {
    let supervisor = start(
        vec![(
            "ghost",
            McpServerConfig::new("/nonexistent/mcp-server", Vec::<String>::new()),
        )],
        test_settings(),
    );
    let failed = wait_for(&supervisor, "ghost", |status| {
        status.state == ServerState::Failed && status.restarts >= 1
    })
    .await;
    let error = failed.last_error.unwrap();
    assert!(
        error.contains("cannot start") && error.contains("No such file"),
        "{error}"
    );
    assert_eq!(failed.tool_count, 0);
    assert!(failed.pid.is_none());
    let unavailable = call(&supervisor, "ghost__anything", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            unavailable,
            kubiya_actors::mcp::McpError::ServerUnavailable { .. }
        ),
        "{unavailable:?}"
    );
    supervisor.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn env_references_are_expanded_and_unset_ones_fail_the_start() {
    let mut config = McpServerConfig::new("node", [peer_path("flood-server.js")]);
    config.env.insert(
        "FLOOD_AT_START".into(),
        "${KUBIYA_TEST_UNSET_VARIABLE}".into(),
    );
    let supervisor = start(vec![("unset", config)], test_settings());
    let failed = wait_for(&supervisor, "unset", |status| {
        status.state == ServerState::Failed
    })
    .await;
    let error = failed.last_error.unwrap();
    assert!(error.contains("KUBIYA_TEST_UNSET_VARIABLE"), "{error}");
    supervisor.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn a_list_changed_notification_refreshes_the_catalog() {
    let supervisor = start(vec![("flood", flood_server())], test_settings());
    let before = wait_running(&supervisor, "flood").await;
    assert!(!before.tools.contains(&"flood__extra".to_owned()));
    let grown = call(&supervisor, "flood__grow", json!({})).await.unwrap();
    assert_eq!(grown.content, "grown");
    let after = wait_for(&supervisor, "flood", |status| {
        status.tools.contains(&"flood__extra".to_owned())
    })
    .await;
    assert_eq!(after.tool_count, before.tool_count + 1);
    assert_eq!(after.restarts, 0);
    supervisor.send(Shutdown).await.unwrap();
}
