//! Runs over MCP are the server's executions like any other: a run started with
//! `execute_workflow` is the tenant's execution under `/v1/executions` (and only the
//! tenant's), `get_execution` finds a run started over HTTP, both take the tenant's execution
//! slots, and a run still going when the server ends (`kubiya mcp server` losing its client,
//! the agent server draining) is stopped with its processes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::conformance::{agent_process, exchange, modern};
use crate::support::kubiya_command;

/// A tool call as a modern (stateless) request with `key`; answers the tool's result.
async fn call_tool(
    client: &awc::Client,
    url: &str,
    key: &str,
    name: &str,
    arguments: Value,
) -> Value {
    let bearer = format!("Bearer {key}");
    let headers = [
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", name),
        ("Authorization", bearer.as_str()),
    ];
    let message = modern(
        "tools/call",
        1,
        json!({"name": name, "arguments": arguments}),
    );
    let (status, _, body) = exchange(client, url, &headers, message).await;
    assert_eq!(status, 200, "{body}");
    body["result"].clone()
}

/// `method path` on the agent's HTTP API with `key`: status and JSON body.
async fn api(
    client: &awc::Client,
    base: &str,
    key: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut response = client
        .request(method, format!("{base}{path}"))
        .insert_header(("Authorization", format!("Bearer {key}")))
        .send_json(&body)
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let body = response.body().await.expect("body read");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A configuration with two tenants' keys: `sk-alpha` (one execution at a time) and
/// `sk-beta`; the caller removes its directory.
pub(crate) fn keys_config() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kubiya-mcp-runs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("kubiya.toml");
    std::fs::write(
        &config,
        "[[auth.api_keys]]\nkey = \"sk-alpha\"\ntenant = \"alpha\"\nmax_concurrent_executions = 1\n\
         [[auth.api_keys]]\nkey = \"sk-beta\"\ntenant = \"beta\"\n\
         [runner.local]\nallow_unsandboxed = true\n",
    )
    .unwrap();
    config
}

#[actix_rt::test]
async fn runs_over_mcp_and_over_http_are_one_set_of_the_tenants_executions() {
    let config = keys_config();
    let (_server, url) = crate::conformance::agent(&[], Some(config.to_str().unwrap()));
    let base = url.trim_end_matches("/mcp").to_owned();
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();

    // A run over MCP is an execution of the tenant over HTTP, and of nobody else.
    let ran = call_tool(
        &client,
        &url,
        "sk-alpha",
        "execute_workflow",
        json!({"workflow": {"name": "over-mcp", "steps": [{"name": "say", "command": "echo from-mcp"}]}}),
    )
    .await;
    assert_eq!(ran["isError"], false, "{ran}");
    let id = ran["structuredContent"]["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/executions/{id}");
    let (status, execution) = api(&client, &base, "sk-alpha", "GET", &path, Value::Null).await;
    assert_eq!(status, 200, "{execution}");
    assert_eq!(execution["status"], "success", "{execution}");
    assert_eq!(execution["steps"][0]["output"], "from-mcp", "{execution}");
    let (status, _) = api(&client, &base, "sk-beta", "GET", &path, Value::Null).await;
    assert_eq!(status, 404, "another tenant does not find it");

    // A run over HTTP is found by get_execution, for the same tenant only.
    let request = json!({"workflow": {"name": "over-http", "steps": [{"name": "say", "command": "echo from-http"}]}});
    let (status, started) = api(
        &client,
        &base,
        "sk-alpha",
        "POST",
        "/v1/executions",
        request,
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let id = started["execution_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let followed = loop {
        let followed = call_tool(
            &client,
            &url,
            "sk-alpha",
            "get_execution",
            json!({"execution_id": id}),
        )
        .await;
        assert_eq!(followed["isError"], false, "{followed}");
        if followed["structuredContent"]["status"] == "success" {
            break followed;
        }
        assert!(
            Instant::now() < deadline,
            "the run never finished: {followed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let view = &followed["structuredContent"];
    assert_eq!(view["result"]["steps"][0]["output"], "from-http", "{view}");
    // Running, the step's output, complete, and the run's end.
    assert_eq!(view["event_count"], 4, "{view}");
    assert_eq!(view["events"].as_array().unwrap().len(), 4, "{view}");
    let theirs = call_tool(
        &client,
        &url,
        "sk-beta",
        "get_execution",
        json!({"execution_id": id}),
    )
    .await;
    assert_eq!(theirs["isError"], true, "{theirs}");

    // A run over HTTP takes the tenant's one slot: a run over MCP is refused until it ends.
    let slow =
        json!({"workflow": {"name": "slow", "steps": [{"name": "wait", "command": "sleep 30"}]}});
    let (status, started) = api(&client, &base, "sk-alpha", "POST", "/v1/executions", slow).await;
    assert_eq!(status, 202, "{started}");
    let refused = call_tool(
        &client,
        &url,
        "sk-alpha",
        "execute_workflow",
        json!({"workflow": {"name": "more", "steps": [{"name": "s", "command": "true"}]}}),
    )
    .await;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("Too many workflow executions running"),
        "{refused}"
    );
    let slow_id = started["execution_id"].as_str().unwrap();
    let (status, _) = api(
        &client,
        &base,
        "sk-alpha",
        "DELETE",
        &format!("/v1/executions/{slow_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 202);
    std::fs::remove_dir_all(config.parent().unwrap()).unwrap();
}

/// Whether a process whose command line is `words` runs on this host.
fn process_running(words: &[&str]) -> bool {
    let wanted = words.join("\0");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .any(|cmdline| String::from_utf8_lossy(&cmdline).trim_end_matches('\0') == wanted)
}

/// Waits until `condition` holds, or fails with `what`.
fn wait_until(within: Duration, what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `sleep` no other test runs: its seconds are unique to this call.
fn unique_sleep() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let seconds = 10_000 + u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % 80_000;
    seconds.to_string()
}

/// `kubiya mcp server` on stdio, spoken to line by line.
struct StdioServer {
    child: Child,
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl StdioServer {
    fn start() -> Self {
        let mut child = kubiya_command()
            .args(["mcp", "server", "--allow-unsandboxed"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        let input = child.stdin.take();
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            input,
            output,
        }
    }

    fn send(&mut self, message: &Value) {
        let input = self.input.as_mut().expect("stdin open");
        writeln!(input, "{message}").expect("written");
        input.flush().expect("flushed");
    }

    /// Reads messages until the response to `id`.
    fn response(&mut self, id: u64) -> Value {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.output.read_line(&mut line).expect("read") > 0,
                "the server ended"
            );
            let message: Value = serde_json::from_str(&line).expect("a JSON-RPC message");
            if message["id"] == id {
                return message;
            }
        }
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kubiya_mcp_server_stops_its_runs_when_its_client_leaves() {
    let seconds = unique_sleep();
    let mut server = StdioServer::start();
    server.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}));
    server.response(1);
    server.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    server.send(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "execute_workflow", "arguments": {"wait": false, "workflow": {"name": "long",
            "steps": [{"name": "wait", "command": format!("sleep {seconds}")}]}}}}),
    );
    let started = server.response(2);
    assert_eq!(
        started["result"]["structuredContent"]["status"], "running",
        "{started}"
    );
    wait_until(Duration::from_secs(20), "the step never started", || {
        process_running(&["sleep", &seconds])
    });

    // The client leaves: the server ends, and the run with it.
    drop(server.input.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("waitable") {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    wait_until(
        Duration::from_secs(5),
        "the step outlived the server",
        || !process_running(&["sleep", &seconds]),
    );
}

#[actix_rt::test]
async fn the_agent_server_stops_runs_started_over_mcp_when_it_drains() {
    let seconds = unique_sleep();
    let config = keys_config();
    let (mut server, url) = agent_process(Some(config.to_str().unwrap()));
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let started = call_tool(
        &client,
        &url,
        "sk-beta",
        "execute_workflow",
        json!({"wait": false, "workflow": {"name": "long",
            "steps": [{"name": "wait", "command": format!("sleep {seconds}")}]}}),
    )
    .await;
    assert_eq!(started["isError"], false, "{started}");
    wait_until(Duration::from_secs(20), "the step never started", || {
        process_running(&["sleep", &seconds])
    });

    let pid = i32::try_from(server.id()).expect("pid fits");
    // SAFETY: signalling our own child process has no memory-safety concerns.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.try_wait().expect("waitable").is_none() {
        assert!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until(
        Duration::from_secs(5),
        "the step outlived the server",
        || !process_running(&["sleep", &seconds]),
    );
    std::fs::remove_dir_all(config.parent().unwrap()).unwrap();
}
