//! What the MCP tests share: where the installed peers are, server configurations for them,
//! starting a supervisor and waiting for its servers, and counting the processes of a group.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix::Addr;
use kubiya_actors::mcp::{
    CallTool, McpAccess, McpError, McpServerConfig, McpServerStatus, McpSettings, McpSupervisor,
    ServerState, ServerStatuses, ToolOutput,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The folder the Makefile installs the peers into.
pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp-peers")
}

/// A file inside the peers folder, which must exist.
pub fn peer_path(relative: &str) -> String {
    let path = peers_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `make deps` (it installs the MCP test peers into tests/mcp-peers/)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

pub fn everything() -> McpServerConfig {
    McpServerConfig::new(
        "node",
        [
            peer_path("node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
            "stdio".to_owned(),
        ],
    )
}

/// A fresh path for [`recorded`]'s log.
pub fn sent_log() -> PathBuf {
    std::env::temp_dir().join(format!("kubiya-mcp-sent-{}.jsonl", uuid::Uuid::new_v4()))
}

/// `server` behind the recording proxy, which appends every message its client sends it to
/// `log` (one JSON line each), so a test can wait until a request has reached the server.
pub fn recorded(server: McpServerConfig, log: &std::path::Path) -> McpServerConfig {
    let mut args = vec![
        peer_path("recording-proxy.js"),
        log.to_string_lossy().into_owned(),
        server.command,
    ];
    args.extend(server.args);
    McpServerConfig {
        command: "node".to_owned(),
        args,
        ..server
    }
}

/// Waits up to `within` for a JSON line in `log` that satisfies `wanted`.
pub async fn wait_for_line(
    log: &std::path::Path,
    within: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let sent = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = sent
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| wanted(line))
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "nothing of the kind reached the MCP server within {within:?}; it was sent:\n{sent}"
        );
        // Polled: the proxy appends to a file, which nothing can wait on.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn filesystem(allowed: &std::path::Path) -> McpServerConfig {
    McpServerConfig::new(
        "node",
        [
            peer_path("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"),
            allowed.to_string_lossy().into_owned(),
        ],
    )
}

pub fn time() -> McpServerConfig {
    McpServerConfig::new(
        peer_path(".venv/bin/mcp-server-time"),
        ["--local-timezone", "UTC"],
    )
}

pub fn flood_server() -> McpServerConfig {
    McpServerConfig::new("node", [peer_path("flood-server.js")])
}

/// Settings with short timeouts for tests.
pub fn test_settings() -> McpSettings {
    McpSettings {
        call_timeout_secs: 10,
        max_call_timeout_secs: 30,
        startup_timeout_secs: 30,
        max_result_bytes: 65536,
        max_restart_backoff_secs: 2,
    }
}

pub fn start(servers: Vec<(&str, McpServerConfig)>, settings: McpSettings) -> Addr<McpSupervisor> {
    let servers: BTreeMap<String, McpServerConfig> = servers
        .into_iter()
        .map(|(name, config)| (name.to_owned(), config))
        .collect();
    McpSupervisor::new(servers, settings).start_supervised()
}

pub async fn status_of(supervisor: &Addr<McpSupervisor>, name: &str) -> McpServerStatus {
    supervisor
        .send(ServerStatuses)
        .await
        .expect("the supervisor answers")
        .into_iter()
        .find(|status| status.name == name)
        .unwrap_or_else(|| panic!("no status for {name}"))
}

/// Waits up to 40 s until `name`'s status satisfies `ready`.
pub async fn wait_for(
    supervisor: &Addr<McpSupervisor>,
    name: &str,
    ready: impl Fn(&McpServerStatus) -> bool,
) -> McpServerStatus {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let status = status_of(supervisor, name).await;
        if ready(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "server {name} never reached the expected state: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_running(supervisor: &Addr<McpSupervisor>, name: &str) -> McpServerStatus {
    wait_for(supervisor, name, |status| {
        status.state == ServerState::Running
    })
    .await
}

pub async fn call(
    supervisor: &Addr<McpSupervisor>,
    tool: &str,
    arguments: Value,
) -> Result<ToolOutput, McpError> {
    call_with(supervisor, tool, arguments, CancellationToken::new()).await
}

pub async fn call_with(
    supervisor: &Addr<McpSupervisor>,
    tool: &str,
    arguments: Value,
    cancel: CancellationToken,
) -> Result<ToolOutput, McpError> {
    supervisor
        .send(CallTool {
            tool: tool.to_owned(),
            arguments,
            cancel,
            access: McpAccess::All,
        })
        .await
        .expect("the supervisor answers")
}

/// Live (not zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, pgrp, ...
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            members.push(pid);
        }
    }
    members
}

/// Waits up to `within` for the group to be empty; returns what is left.
pub async fn wait_group_gone(pgid: u32, within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let members = group_members(pgid);
        if members.is_empty() || Instant::now() >= deadline {
            return members;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `kubiya` with only `PATH` from our environment.
pub fn kubiya_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubiya"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// A server process, killed when dropped.
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` (output discarded) and waits until it listens on `port`.
pub fn listening(mut command: Command, port: u16) -> Running {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}
