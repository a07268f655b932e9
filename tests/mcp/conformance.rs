//! Our MCP server over streamable HTTP, checked by the official conformance suite
//! (`@modelcontextprotocol/conformance`, pinned in `tests/mcp-conformance/`, run on the Node 22
//! pinned in `tests/clients/ai7/`) in both protocol eras, on `kubiya mcp server --transport http` and on the agent
//! server's `/mcp`. Each run is the suite's requirement set for one revision; the scenarios
//! that call the suite's own fixture tools are listed, with the reason, in that revision's
//! expected-failures file, and the suite itself fails the run on any other failure (or on a
//! listed one that starts passing). Also the endpoint's own rules: API keys, sessions bound
//! to their tenant, and executions kept per tenant.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::support::{Running, free_port, kubiya_command, listening};

use serde_json::{Value, json};

/// The folder the Makefile installs the suite into.
fn suite_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp-conformance");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/conformance")
            .exists(),
        "{} has no suite installed: run `make deps`",
        dir.display()
    );
    dir
}

/// The Node 22 the suite needs, pinned with the AI SDK's tests.
pub fn node22() -> PathBuf {
    let node =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ai7/node_modules/.bin/node");
    assert!(
        node.exists(),
        "{} is missing: run `make deps`",
        node.display()
    );
    node
}

fn start(args: &[&str], env: &[(&str, &str)], port: u16) -> Running {
    let mut command = kubiya_command();
    command.args(args).envs(env.iter().copied());
    listening(command, port)
}

fn standalone() -> (Running, String) {
    let port = free_port();
    let server = start(
        &[
            "mcp",
            "server",
            "--transport",
            "http",
            "--port",
            &port.to_string(),
            "--allow-unsandboxed",
        ],
        &[],
        port,
    );
    (server, format!("http://127.0.0.1:{port}/mcp"))
}

/// `kubiya mcp agent` on loopback with the offline provider, on `port`, with `config`.
fn agent_args<'a>(port: &'a str, config: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "mcp",
        "agent",
        "--host",
        "127.0.0.1",
        "--provider",
        "offline",
        "--port",
        port,
    ];
    if let Some(config) = config {
        args.extend(["--config", config]);
    }
    args
}

pub(crate) fn agent(env: &[(&str, &str)], config: Option<&str>) -> (Running, String) {
    let port = free_port();
    let port_text = port.to_string();
    let server = start(&agent_args(&port_text, config), env, port);
    (server, format!("http://127.0.0.1:{port}/mcp"))
}

/// The agent server (offline provider) as a process the caller may signal; killed when
/// dropped.
pub(crate) struct AgentProcess(std::process::Child);

impl std::ops::Deref for AgentProcess {
    type Target = std::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for AgentProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the agent server with `config` and waits until it listens; answers its `/mcp` URL.
pub(crate) fn agent_process(config: Option<&str>) -> (AgentProcess, String) {
    let port = free_port();
    let port_text = port.to_string();
    let mut command = kubiya_command();
    command.args(agent_args(&port_text, config));
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the server starts");
    let server = AgentProcess(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, format!("http://127.0.0.1:{port}/mcp"))
}

/// Runs the suite's requirement set for `revision` against `url`; panics with its report
/// when it fails.
fn run_suite(url: &str, revision: &str) {
    let dir = suite_dir();
    let results = std::env::temp_dir().join(format!("kubiya-conformance-{}", uuid::Uuid::new_v4()));
    let output = Command::new(node22())
        .arg(dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
        .args(["server", "--url", url, "--requirements", revision])
        .arg("--expected-failures")
        .arg(dir.join(format!("server-{revision}.yml")))
        .arg("-o")
        .arg(&results)
        .output()
        .expect("the conformance suite runs");
    let _ = std::fs::remove_dir_all(&results);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "conformance {revision} against {url} failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("Baseline check passed"), "{report}");
}

#[test]
fn kubiya_mcp_server_over_http_passes_the_conformance_suite_in_both_eras() {
    let (_server, url) = standalone();
    run_suite(&url, "2025-11-25");
    run_suite(&url, "2026-07-28");
}

#[test]
fn the_agent_servers_mcp_endpoint_passes_the_conformance_suite_in_both_eras() {
    let (_server, url) = agent(&[], None);
    run_suite(&url, "2025-11-25");
    run_suite(&url, "2026-07-28");
}

/// One JSON-RPC exchange over HTTP: status, session header and the response message (the
/// last `data:` line of an SSE answer, or the JSON body).
pub(crate) async fn exchange(
    client: &awc::Client,
    url: &str,
    headers: &[(&str, &str)],
    message: Value,
) -> (u16, Option<String>, Value) {
    let mut request = client
        .post(url)
        .insert_header(("Accept", "application/json, text/event-stream"));
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = request.send_json(&message).await.expect("request sent");
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response.body().limit(1 << 22).await.expect("body read");
    let text = String::from_utf8_lossy(&body);
    let message = text
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("data: "))
        .map_or_else(
            || serde_json::from_str(&text).unwrap_or(Value::Null),
            |data| serde_json::from_str(data).unwrap(),
        );
    (response.status().as_u16(), session, message)
}

pub(crate) fn modern(method: &str, id: u64, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[actix_rt::test]
async fn mcp_on_the_agent_needs_a_key_and_keeps_sessions_and_executions_per_tenant() {
    let config = crate::executions::keys_config();
    let (_server, url) = agent(&[], Some(config.to_str().unwrap()));
    let client = awc::Client::default();
    let alpha = ("Authorization", "Bearer sk-alpha");
    let beta = ("Authorization", "Bearer sk-beta");

    let list = modern("tools/list", 1, json!({}));
    let list_headers = [("Mcp-Method", "tools/list")];
    let (status, _, _) = exchange(&client, &url, &list_headers, list.clone()).await;
    assert_eq!(status, 401, "no key, no MCP");
    let (status, _, body) = exchange(&client, &url, &[list_headers[0], alpha], list).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["tools"].as_array().unwrap().len(), 4);

    // A legacy session belongs to the tenant that opened it.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, session, body) = exchange(&client, &url, &[alpha], init).await;
    assert_eq!(status, 200);
    assert!(body["result"]["capabilities"]["resources"]["subscribe"] == true);
    let session = session.expect("a session id");
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let (status, _, _) = exchange(
        &client,
        &url,
        &[alpha, ("Mcp-Session-Id", &session)],
        ping.clone(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = exchange(&client, &url, &[beta, ("Mcp-Session-Id", &session)], ping).await;
    assert_eq!(status, 404, "another tenant cannot use the session");

    // An execution started by one tenant is a resource of that tenant only.
    let run = modern(
        "tools/call",
        3,
        json!({"name": "execute_workflow", "arguments": {
            "workflow": {"name": "hello", "steps": [{"name": "say", "command": "echo hi"}]}}}),
    );
    let run_headers = [
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "execute_workflow"),
    ];
    let (status, _, body) =
        exchange(&client, &url, &[run_headers[0], run_headers[1], alpha], run).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["structuredContent"]["status"], "success",
        "{body}"
    );
    let execution = body["result"]["structuredContent"]["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resources = modern("resources/list", 4, json!({}));
    let headers = [("Mcp-Method", "resources/list")];
    let (_, _, mine) = exchange(&client, &url, &[headers[0], alpha], resources.clone()).await;
    assert!(mine.to_string().contains(&execution), "{mine}");
    let (_, _, theirs) = exchange(&client, &url, &[headers[0], beta], resources).await;
    assert_eq!(theirs["result"]["resources"], json!([]), "{theirs}");
    let uri = format!("kubiya://executions/{execution}");
    let read = modern("resources/read", 5, json!({"uri": uri}));
    let headers = [("Mcp-Method", "resources/read"), ("Mcp-Name", uri.as_str())];
    let (status, _, body) = exchange(&client, &url, &[headers[0], headers[1], beta], read).await;
    assert_eq!(
        status, 400,
        "another tenant's execution is not found: {body}"
    );

    // The tenant's concurrent-execution limit holds for runs started over MCP too.
    let slow = |id: u64| {
        modern(
            "tools/call",
            id,
            json!({"name": "execute_workflow", "arguments": {"wait": false,
                "workflow": {"name": "slow", "steps": [{"name": "wait", "command": "sleep 5"}]}}}),
        )
    };
    let headers = [run_headers[0], run_headers[1], alpha];
    let (_, _, first) = exchange(&client, &url, &headers, slow(6)).await;
    assert_eq!(
        first["result"]["structuredContent"]["status"], "running",
        "{first}"
    );
    let (_, _, second) = exchange(&client, &url, &headers, slow(7)).await;
    assert_eq!(second["result"]["isError"], true, "{second}");
    assert!(second.to_string().contains("running"), "{second}");
    std::fs::remove_dir_all(config.parent().unwrap()).unwrap();
}

/// Runs one client scenario of the suite: the suite starts its test server and runs
/// `kubiya mcp client` (our supervisor) against it.
fn run_client_scenario(scenario: &str, spec_version: &str, client_args: &str) {
    let command = format!("{} mcp client {client_args}", env!("CARGO_BIN_EXE_kubiya"));
    run_client_command(scenario, spec_version, &command);
}

/// Runs one client scenario with `command` as the client (the suite appends the URL).
fn run_client_command(scenario: &str, spec_version: &str, command: &str) {
    let dir = suite_dir();
    let results = std::env::temp_dir().join(format!("kubiya-conformance-{}", uuid::Uuid::new_v4()));
    let output = Command::new(node22())
        .arg(dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
        .args(["client", "--command", command, "--scenario", scenario])
        // Extension scenarios (client credentials) are not on the dated timeline.
        .args(["--spec-version", spec_version, "--force"])
        .arg("-o")
        .arg(&results)
        .output()
        .expect("the conformance suite runs");
    let _ = std::fs::remove_dir_all(&results);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.contains("OVERALL: PASSED"),
        "client scenario {scenario} ({spec_version}) failed ({}):\n{report}",
        output.status,
    );
}

#[test]
fn our_client_passes_the_suites_initialize_tools_call_request_metadata_elicitation_and_sse_retry_scenarios()
 {
    run_client_scenario("initialize", "2025-11-25", "");
    let call = r#"--call add_numbers --arguments '{"a":2,"b":3}'"#;
    run_client_scenario("tools_call", "2025-11-25", call);
    run_client_scenario("tools_call", "2026-07-28", call);
    // Per-request _meta and headers, and a retry after a refused version.
    run_client_scenario("request-metadata", "2026-07-28", "");
    // A server configured to have its questions answered with the form's defaults.
    run_client_scenario(
        "elicitation-sep1034-client-defaults",
        "2025-11-25",
        "--accept-elicitation-defaults --call test_client_elicitation_defaults",
    );
    // A call's stream that ends early is resumed with GET, Last-Event-ID, after `retry:`.
    run_client_scenario("sse-retry", "2025-11-25", "--call test_reconnection");
}

#[test]
fn our_client_gets_an_oauth_token_with_client_credentials_in_both_eras() {
    // The script hands `kubiya mcp client` the credentials the suite gives its client.
    let command = format!(
        "sh {}/oauth-client.sh {}",
        suite_dir().display(),
        env!("CARGO_BIN_EXE_kubiya")
    );
    run_client_command("auth/client-credentials-basic", "2025-11-25", &command);
    run_client_command("auth/client-credentials-basic", "2026-07-28", &command);
}

#[actix_rt::test]
async fn a_legacy_session_hears_of_a_subscribed_execution_on_its_stream() {
    let (_server, url) = standalone();
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (_, session, _) = exchange(&client, &url, &[], init).await;
    let session = session.expect("a session id");
    let in_session = [("Mcp-Session-Id", session.as_str())];
    let run = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "execute_workflow", "arguments": {"wait": false, "workflow": {"name": "w", "steps": [
            {"name": "a", "command": "sleep 1"}, {"name": "b", "command": "echo done", "depends": ["a"]}]}}}});
    let (_, _, started) = exchange(&client, &url, &in_session, run).await;
    let execution = started["result"]["structuredContent"]["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = client
        .get(&url)
        .insert_header(("Mcp-Session-Id", session.as_str()))
        .insert_header(("Accept", "text/event-stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let uri = format!("kubiya://executions/{execution}");
    let subscribe =
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe", "params": {"uri": uri}});
    let (status, _, body) = exchange(&client, &url, &in_session, subscribe).await;
    assert_eq!(status, 200, "{body}");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !seen.contains("notifications/resources/updated") {
        assert!(Instant::now() < deadline, "no update arrived: {seen}");
        let next = tokio::time::timeout(Duration::from_secs(15), stream.next()).await;
        let Ok(Some(Ok(chunk))) = next else {
            panic!("the stream ended: {seen}");
        };
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains(&uri), "{seen}");
}
