//! The supervisor against real third-party servers: catalog, calls, both error styles, the
//! modern era, and result truncation.

use kubiya_actors::mcp::{ListTools, McpError, Shutdown};
use serde_json::json;

use crate::support::{
    call, everything, filesystem, start, status_of, test_settings, time, wait_running,
};

#[actix_rt::test]
async fn the_catalog_holds_both_peers_tools_namespaced_and_calls_reach_them() {
    let sandbox = std::env::temp_dir().join(format!("kubiya-mcp-fs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&sandbox).unwrap();
    std::fs::write(sandbox.join("note.txt"), "hello from the sandbox").unwrap();
    let supervisor = start(
        vec![
            ("everything", everything()),
            ("filesystem", filesystem(&sandbox)),
        ],
        test_settings(),
    );
    let everything_status = wait_running(&supervisor, "everything").await;
    let filesystem_status = wait_running(&supervisor, "filesystem").await;
    assert_eq!(
        everything_status.protocol_version.as_deref(),
        Some("2025-11-25")
    );
    assert!(everything_status.pid.is_some());

    let tools = supervisor.send(ListTools::default()).await.unwrap();
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    assert!(names.contains(&"everything__get-sum"), "{names:?}");
    assert!(names.contains(&"filesystem__read_text_file"), "{names:?}");
    // Task-only tools are left out: a plain call to them always fails.
    assert!(
        !names.contains(&"everything__simulate-research-query"),
        "{names:?}"
    );
    assert_eq!(
        tools.len(),
        everything_status.tool_count + filesystem_status.tool_count
    );
    let get_sum = tools
        .iter()
        .find(|tool| tool.name == "everything__get-sum")
        .unwrap();
    assert_eq!(get_sum.parameters["properties"]["a"]["type"], "number");
    assert!(get_sum.parameters.get("$schema").is_none());

    let sum = call(&supervisor, "everything__get-sum", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert!(!sum.is_error && !sum.truncated);
    assert!(sum.content.contains("42"), "{}", sum.content);

    let path = sandbox.join("note.txt").to_string_lossy().into_owned();
    let read = call(
        &supervisor,
        "filesystem__read_text_file",
        json!({"path": path}),
    )
    .await
    .unwrap();
    assert_eq!(read.content, "hello from the sandbox");

    // A tool that ran and failed is a result the model sees, not an error.
    let outside = call(
        &supervisor,
        "filesystem__read_text_file",
        json!({"path": "/etc/hostname"}),
    )
    .await
    .unwrap();
    assert!(outside.is_error, "{outside:?}");
    assert!(
        outside.content.contains("Access denied"),
        "{}",
        outside.content
    );

    let unknown = call(&supervisor, "everything__nope", json!({}))
        .await
        .unwrap_err();
    assert_eq!(unknown, McpError::UnknownTool("everything__nope".into()));
    let no_server = call(&supervisor, "nobody__tool", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(no_server, McpError::UnknownTool(_)),
        "{no_server:?}"
    );

    supervisor.send(Shutdown).await.unwrap();
    assert_eq!(
        status_of(&supervisor, "everything").await.state,
        kubiya_actors::mcp::ServerState::Stopped
    );
    assert!(
        supervisor
            .send(ListTools::default())
            .await
            .unwrap()
            .is_empty()
    );
    std::fs::remove_dir_all(&sandbox).unwrap();
}

#[actix_rt::test]
async fn a_dual_era_server_is_spoken_to_in_the_modern_era() {
    let supervisor = start(vec![("time", time())], test_settings());
    let status = wait_running(&supervisor, "time").await;
    assert_eq!(status.protocol_version.as_deref(), Some("2026-07-28"));
    assert!(
        status.tools.contains(&"time__get_current_time".to_owned()),
        "{status:?}"
    );

    let now = call(
        &supervisor,
        "time__get_current_time",
        json!({"timezone": "UTC"}),
    )
    .await
    .unwrap();
    assert!(!now.is_error, "{now:?}");
    assert!(now.content.contains("UTC"), "{}", now.content);

    let bad = call(
        &supervisor,
        "time__get_current_time",
        json!({"timezone": "Nowhere/Void"}),
    )
    .await;
    // However the server reports a bad zone, the call comes back rather than hanging.
    match bad {
        Ok(output) => assert!(output.is_error, "{output:?}"),
        Err(error) => assert!(matches!(error, McpError::Rpc { .. }), "{error:?}"),
    }
    supervisor.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn an_oversized_result_is_cut_to_the_configured_size_with_a_note() {
    let mut settings = test_settings();
    settings.max_result_bytes = 2000;
    let supervisor = start(vec![("everything", everything())], settings);
    wait_running(&supervisor, "everything").await;
    let message = format!("{}THE-END", "abcdefghij".repeat(1000));
    let echoed = call(&supervisor, "everything__echo", json!({"message": message}))
        .await
        .unwrap();
    assert!(echoed.truncated);
    assert!(echoed.content.len() <= 2000, "{}", echoed.content.len());
    assert!(echoed.content.contains("bytes cut"), "{}", echoed.content);
    assert!(echoed.content.ends_with("THE-END"), "the tail is kept");

    let small = call(&supervisor, "everything__echo", json!({"message": "hi"}))
        .await
        .unwrap();
    assert!(!small.truncated);
    supervisor.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn servers_get_an_allowlisted_environment_with_references_expanded() {
    let home = std::env::var("HOME").expect("HOME is set");
    assert!(
        std::env::var("CARGO_MANIFEST_DIR").is_ok(),
        "cargo sets CARGO_MANIFEST_DIR for tests"
    );
    let mut config = everything();
    config
        .env
        .insert("EXPANDED".into(), "${HOME}/inside".into());
    let supervisor = start(vec![("everything", config)], test_settings());
    wait_running(&supervisor, "everything").await;
    let env = call(&supervisor, "everything__get-env", json!({}))
        .await
        .unwrap();
    assert!(
        env.content
            .contains(&format!("\"EXPANDED\": \"{home}/inside\"")),
        "{}",
        env.content
    );
    assert!(env.content.contains("\"PATH\""), "{}", env.content);
    assert!(
        !env.content.contains("CARGO_MANIFEST_DIR"),
        "{}",
        env.content
    );
    supervisor.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn a_servers_question_to_the_user_is_declined_cleanly() {
    let supervisor = start(vec![("everything", everything())], test_settings());
    wait_running(&supervisor, "everything").await;
    // The server offers its elicitation tool only to clients that declare elicitation.
    let answer = call(
        &supervisor,
        "everything__trigger-elicitation-request",
        json!({}),
    )
    .await
    .unwrap();
    assert!(!answer.is_error, "{}", answer.content);
    assert!(answer.content.contains("declined"), "{}", answer.content);
    supervisor.send(Shutdown).await.unwrap();
}
