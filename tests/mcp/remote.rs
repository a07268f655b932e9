//! The supervisor with remote MCP servers over streamable HTTP: the reference `everything`
//! server (legacy era, sessions), our own `kubiya mcp server --transport http` (modern era),
//! the agent's `/mcp` behind an API key sent as a configured header, and reconnection once a
//! server that went away comes back.

use std::process::Command;

use kubiya_actors::mcp::{McpServerConfig, ServerState, Shutdown};
use serde_json::json;

use crate::support::{
    Running, call, free_port, kubiya_command, listening, peer_path, start, status_of,
    test_settings, wait_for, wait_running,
};

fn everything_over_http(port: u16) -> Running {
    let mut command = Command::new("node");
    command
        .arg(peer_path(
            "node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        ))
        .arg("streamableHttp")
        .env("PORT", port.to_string());
    listening(command, port)
}

fn kubiya(args: &[&str], port: u16) -> Running {
    let mut command = kubiya_command();
    command.args(args);
    listening(command, port)
}

#[actix_rt::test]
async fn the_reference_server_over_http_is_listed_and_called_in_the_legacy_era() {
    let port = free_port();
    let _server = everything_over_http(port);
    let supervisor = start(
        vec![(
            "remote",
            McpServerConfig::remote(format!("http://127.0.0.1:{port}/mcp")),
        )],
        test_settings(),
    );
    let status = wait_running(&supervisor, "remote").await;
    assert_eq!(status.protocol_version.as_deref(), Some("2025-11-25"));
    assert!(status.pid.is_none(), "a remote server has no process");
    assert!(status.tool_count > 5, "{status:?}");

    let sum = call(&supervisor, "remote__get-sum", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert!(sum.content.contains("42"), "{}", sum.content);
    // Progress arrives on the call's SSE stream and keeps it alive.
    let long = call(
        &supervisor,
        "remote__trigger-long-running-operation",
        json!({"duration": 1, "steps": 3}),
    )
    .await
    .unwrap();
    assert!(!long.is_error, "{}", long.content);
    supervisor.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn our_own_server_over_http_is_used_in_the_modern_era_and_reconnected_after_a_restart() {
    let port = free_port();
    let port_text = port.to_string();
    let args = [
        "mcp",
        "server",
        "--transport",
        "http",
        "--port",
        port_text.as_str(),
        "--allow-unsandboxed",
    ];
    let server = kubiya(&args, port);
    let mut settings = test_settings();
    settings.max_restart_backoff_secs = 1;
    let supervisor = start(
        vec![(
            "kubiya",
            McpServerConfig::remote(format!("http://127.0.0.1:{port}/mcp")),
        )],
        settings,
    );
    let status = wait_running(&supervisor, "kubiya").await;
    assert_eq!(status.protocol_version.as_deref(), Some("2026-07-28"));
    let workflow =
        json!({"workflow": {"name": "w", "steps": [{"name": "a", "command": "echo hi"}]}});
    let checked = call(&supervisor, "kubiya__validate_workflow", workflow.clone())
        .await
        .unwrap();
    assert!(
        checked.content.contains("\"valid\": true"),
        "{}",
        checked.content
    );

    drop(server);
    // The next call finds the server gone: the connection ends and the supervisor retries.
    let failed = call(&supervisor, "kubiya__validate_workflow", workflow.clone()).await;
    assert!(failed.is_err(), "{failed:?}");
    wait_for(&supervisor, "kubiya", |status| {
        status.state != ServerState::Running
    })
    .await;
    let _server = kubiya(&args, port);
    wait_running(&supervisor, "kubiya").await;
    let again = call(&supervisor, "kubiya__validate_workflow", workflow)
        .await
        .unwrap();
    assert!(
        again.content.contains("\"valid\": true"),
        "{}",
        again.content
    );
    assert!(status_of(&supervisor, "kubiya").await.restarts >= 1);
    supervisor.send(Shutdown).await.unwrap();
}

#[actix_rt::test]
async fn configured_headers_carry_the_agents_api_key_and_a_wrong_key_is_reported() {
    let dir = std::env::temp_dir().join(format!("kubiya-mcp-remote-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("kubiya.toml");
    std::fs::write(
        &config,
        "[[auth.api_keys]]\nkey = \"sk-remote\"\ntenant = \"remote\"\n",
    )
    .unwrap();
    let port = free_port();
    let port_text = port.to_string();
    let _agent = kubiya(
        &[
            "mcp",
            "agent",
            "--host",
            "127.0.0.1",
            "--provider",
            "offline",
            "--port",
            &port_text,
            "--config",
            config.to_str().unwrap(),
        ],
        port,
    );
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut keyed = McpServerConfig::remote(url.clone());
    keyed
        .headers
        .insert("Authorization".into(), "Bearer sk-remote".into());
    let mut wrong = McpServerConfig::remote(url);
    wrong
        .headers
        .insert("Authorization".into(), "Bearer sk-wrong".into());
    let supervisor = start(vec![("agent", keyed), ("stranger", wrong)], test_settings());
    let status = wait_running(&supervisor, "agent").await;
    assert_eq!(status.tool_count, 4);
    let refused = wait_for(&supervisor, "stranger", |status| {
        status.last_error.is_some()
    })
    .await;
    let error = refused.last_error.unwrap();
    assert!(error.contains("401"), "{error}");
    assert!(!error.contains("sk-wrong"), "the key never shows: {error}");
    supervisor.send(Shutdown).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
