//! The real `kubiya mcp agent` process: servers from `--mcp-config`, and SIGTERM stopping
//! them (whole process groups) before the process exits 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{peer_path, wait_group_gone};

#[actix_rt::test]
async fn servers_from_a_desktop_config_file_run_and_stop_with_the_agent() {
    let dir = std::env::temp_dir().join(format!("kubiya-mcp-agent-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("claude_desktop_config.json");
    let document = json!({"mcpServers": {"flood": {"command": "node", "args": [peer_path("flood-server.js")]}}});
    std::fs::write(&config, document.to_string()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubiya"));
    command
        .args([
            "mcp",
            "agent",
            "--host",
            "127.0.0.1",
            "--provider",
            "offline",
        ])
        .args(["--port", &port.to_string()])
        .arg("--mcp-config")
        .arg(&config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut agent = command.spawn().expect("kubiya starts");

    let client = awc::Client::default();
    let url = format!("http://127.0.0.1:{port}/v1/mcp/servers");
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid = loop {
        let body: Option<Value> = match client.get(&url).send().await {
            Ok(mut response) => response.json().await.ok(),
            Err(_) => None,
        };
        if let Some(server) = body.as_ref().and_then(|body| body["servers"].get(0))
            && server["state"] == "running"
        {
            break u32::try_from(server["pid"].as_u64().unwrap()).unwrap();
        }
        if Instant::now() >= deadline {
            let _ = agent.kill();
            panic!("the flood server never ran: {body:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let agent_pid = libc::pid_t::try_from(agent.id()).unwrap();
    // SAFETY: signalling the process this test started.
    assert_eq!(unsafe { libc::kill(agent_pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = agent.kill();
            panic!("the agent did not exit after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    let left = wait_group_gone(pid, Duration::from_secs(2)).await;
    assert!(left.is_empty(), "MCP server processes left: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
