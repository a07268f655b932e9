//! The real `kubiya mcp agent` process: servers from `--mcp-config`, and SIGTERM stopping
//! them (whole process groups) before the process exits 0.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kubiya::config::{ApiKeySettings, FlagOverrides, ProviderChoice, Settings};
use kubiya::provider_setup;
use kubiya::startup::Application;
use kubiya_actors::mcp::McpServerConfig;
use serde_json::{Value, json};

use crate::conformance::{exchange, modern};
use crate::mock_upstream::{MockUpstream, Reply, openai_text_stream, openai_tool_call_stream};

use crate::support::{
    everything, free_port, kubiya_command, peer_path, recorded, sent_log, wait_for_line,
    wait_group_gone,
};

#[actix_rt::test]
async fn servers_from_a_desktop_config_file_run_and_stop_with_the_agent() {
    let dir = std::env::temp_dir().join(format!("kubiya-mcp-agent-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("claude_desktop_config.json");
    let document = json!({"mcpServers": {"flood": {"command": "node", "args": [peer_path("flood-server.js")]}}});
    std::fs::write(&config, document.to_string()).unwrap();
    let port = free_port();
    let mut command = kubiya_command();
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

/// The agent loop offers MCP tools to the model and runs the call it makes: a scripted model
/// calls `everything__get-sum`, the sum comes back to it and reaches the client.
#[actix_rt::test]
async fn a_model_calls_an_mcp_tool_and_the_result_reaches_the_client() {
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_tool_call_stream(
            "call_sum",
            "everything__get-sum",
            &json!({"a": 2, "b": 40}),
        )),
        Reply::sse(openai_text_stream("The sum is 42.")),
    ]);
    let (base, client) = agent_with_everything(&mock, Vec::new(), None).await;

    let request = json!({"model": "kubiya-workflow-agent", "stream": true, "messages": [{"role": "user", "content": "add 2 and 40"}]});
    let body = chat(&client, &base, &request).await;
    let chunks = crate::sse::json_data(&body);
    let text: String = chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    let extensions: Vec<&Value> = chunks
        .iter()
        .map(|chunk| &chunk["x_kubiya"])
        .filter(|extension| !extension.is_null())
        .collect();
    assert_eq!(extensions[0]["type"], "tool_call");
    assert_eq!(extensions[0]["name"], "everything__get-sum");
    assert_eq!(extensions[1]["type"], "tool_result");
    assert!(
        extensions[1]["result"].as_str().unwrap().contains("42"),
        "{}",
        extensions[1]
    );
    assert!(text.ends_with("The sum is 42."), "{text}");

    let sent = mock.requests();
    let tools = offered_tools(&sent[0].body);
    assert!(
        tools.contains(&"validate_workflow") && tools.contains(&"everything__get-sum"),
        "{tools:?}"
    );
    let result = last_message(&sent[1].body);
    assert_eq!(result["tool_call_id"], "call_sum");
    assert!(result["content"].as_str().unwrap().contains("42"));
}

#[actix_rt::test]
async fn an_api_keys_allow_list_limits_the_catalog_and_refuses_other_tools() {
    // The model asks for a tool the key may not use, as a model told of it elsewhere might.
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_tool_call_stream(
            "call_echo",
            "everything__echo",
            &json!({"message": "leak"}),
        )),
        Reply::sse(openai_text_stream("I could not use it.")),
    ]);
    let keys = vec![ApiKeySettings {
        key: "sk-limited".into(),
        tenant: "limited".into(),
        mcp_allow: Some(vec!["everything__get-sum".into()]),
        ..ApiKeySettings::default()
    }];
    let (base, client) = agent_with_everything(&mock, keys, Some("sk-limited")).await;

    let request = json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": "echo leak"}]});
    chat(&client, &base, &request).await;

    let sent = mock.requests();
    let tools = offered_tools(&sent[0].body);
    assert!(tools.contains(&"everything__get-sum"), "{tools:?}");
    assert!(
        !tools
            .iter()
            .any(|tool| tool.starts_with("everything__") && *tool != "everything__get-sum"),
        "only the allowed MCP tool is offered: {tools:?}"
    );
    let result = last_message(&sent[1].body);
    assert_eq!(result["tool_call_id"], "call_echo");
    let content = result["content"].to_string();
    assert!(
        content.contains("unknown") || content.contains("Unknown"),
        "{content}"
    );
    assert!(
        !content.contains("Echo: leak"),
        "the refused tool never ran: {content}"
    );
}

/// The agent in this process, its model the `mock` (OpenAI wire), with the `everything`
/// server supervised and running, and `keys` (sent as `key`); its base URL and a client.
async fn agent_with_everything(
    mock: &MockUpstream,
    keys: Vec<ApiKeySettings>,
    key: Option<&str>,
) -> (String, awc::Client) {
    agent_with_server(mock, everything(), keys, key).await
}

/// As [`agent_with_everything`], with the server named `everything` run by `server`.
async fn agent_with_server(
    mock: &MockUpstream,
    server: McpServerConfig,
    keys: Vec<ApiKeySettings>,
    key: Option<&str>,
) -> (String, awc::Client) {
    let mut settings = Settings::default();
    settings.mcp_servers.insert("everything".into(), server);
    settings.auth.api_keys = keys;
    let (base, client) = agent_in_process(mock, settings, key);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = get_json(&client, &format!("{base}/v1/mcp/servers")).await;
        if body["servers"][0]["state"] == "running" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the everything server never ran: {body}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    (base, client)
}

/// The agent in this process with `settings`, its model the `mock` (OpenAI wire); its base
/// URL and a client (sending `key`).
fn agent_in_process(
    mock: &MockUpstream,
    mut settings: Settings,
    key: Option<&str>,
) -> (String, awc::Client) {
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.provider.name = ProviderChoice::OpenAi;
    settings.provider.actors = 1;
    let flags = FlagOverrides {
        api_key: Some("sk-test".into()),
        base_url: Some(format!("{}/v1", mock.base())),
        ..FlagOverrides::default()
    };
    let provider = provider_setup::resolve(&settings.provider, &flags, |_| None).unwrap();
    let app = Application::build(&settings, &provider).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    actix_rt::spawn(app.run_until_stopped());
    let mut builder = awc::Client::builder().timeout(Duration::from_secs(60));
    if let Some(key) = key {
        builder = builder.bearer_auth(key);
    }
    (base, builder.finish())
}

/// The chat agent's `list_runners`, our MCP server's and `GET /v1/runners` answer alike: the
/// runners this server has and their state, from the one list the executions keep.
#[actix_rt::test]
async fn the_chat_tool_the_mcp_tool_and_the_api_list_the_same_runners() {
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_tool_call_stream(
            "call_runners",
            "list_runners",
            &json!({}),
        )),
        Reply::sse(openai_text_stream("Workflows run on this host.")),
    ]);
    let (base, client) = agent_in_process(&mock, Settings::default(), None);

    let request = json!({"model": "kubiya-workflow-agent", "stream": true, "messages": [{"role": "user", "content": "where can workflows run?"}]});
    let body = chat(&client, &base, &request).await;
    let chunks = crate::sse::json_data(&body);
    let from_chat = chunks
        .iter()
        .map(|chunk| &chunk["x_kubiya"])
        .find(|extension| extension["type"] == "tool_result")
        .unwrap_or_else(|| panic!("no tool result: {body}"))["result"]
        .clone();

    let message = modern(
        "tools/call",
        1,
        json!({"name": "list_runners", "arguments": {}}),
    );
    let headers = [("Mcp-Method", "tools/call"), ("Mcp-Name", "list_runners")];
    let (status, _, answer) = exchange(&client, &format!("{base}/mcp"), &headers, message).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    let from_mcp = &answer["result"]["structuredContent"];

    assert_eq!(&from_chat, from_mcp);
    let from_http = get_json(&client, &format!("{base}/v1/runners")).await;
    assert_eq!(from_http, from_chat);
    let runners = from_chat["runners"].as_array().unwrap();
    assert_eq!(runners.len(), 1, "no platform is configured: {from_chat}");
    let local = &runners[0];
    assert_eq!(local["name"], "local");
    assert_eq!(local["type"], "local");
    assert_eq!(local["default"], true);
    assert_eq!(local["network"], false);
    assert!(
        ["available", "unavailable"].contains(&local["status"].as_str().unwrap()),
        "{local}"
    );
    // The model was given the same answer.
    let sent = mock.requests();
    let given: Value =
        serde_json::from_str(last_message(&sent[1].body)["content"].as_str().unwrap()).unwrap();
    assert_eq!(given, from_chat);
}

/// `GET url`'s JSON body.
async fn get_json(client: &awc::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// Sends one chat turn and returns its whole answer once the turn has ended.
async fn chat(client: &awc::Client, base: &str, request: &Value) -> String {
    let mut response = client
        .post(format!("{base}/v1/chat/completions"))
        .send_json(request)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    String::from_utf8(response.body().limit(1 << 24).await.unwrap().to_vec()).unwrap()
}

/// The names of the tools a model request offered.
fn offered_tools(body: &Value) -> Vec<&str> {
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap())
        .collect()
}

/// The last message of a model request (the tool result, after a tool call).
fn last_message(body: &Value) -> Value {
    body["messages"].as_array().unwrap().last().unwrap().clone()
}

#[actix_rt::test]
async fn a_servers_sampling_request_is_answered_by_the_agents_model_within_limits() {
    // The chat model calls the server's sampling tool; the server asks our model (the second
    // request), and the tool's result carries that answer back to the chat.
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_tool_call_stream(
            "call_sample",
            "everything__trigger-sampling-request",
            &json!({"prompt": "Say hello", "maxTokens": 100_000}),
        )),
        Reply::sse(openai_text_stream("hello from the agent's model")),
        Reply::sse(openai_text_stream("Done.")),
    ]);
    let (base, client) = agent_with_everything(&mock, Vec::new(), None).await;
    let request = json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": "sample"}]});
    chat(&client, &base, &request).await;

    let sent = mock.requests();
    assert_eq!(sent.len(), 3, "chat, sampling, chat");
    let sampling = &sent[1].body;
    assert!(
        sampling["tools"].as_array().is_none_or(Vec::is_empty),
        "{sampling}"
    );
    assert!(sampling.to_string().contains("Say hello"), "{sampling}");
    let max_tokens = sampling["max_tokens"]
        .as_u64()
        .or_else(|| sampling["max_completion_tokens"].as_u64())
        .unwrap();
    assert!(
        max_tokens <= 1024,
        "the server's 100000 is capped: {max_tokens}"
    );
    let result = last_message(&sent[2].body);
    assert_eq!(result["tool_call_id"], "call_sample");
    assert!(
        result["content"]
            .to_string()
            .contains("hello from the agent's model"),
        "{result}"
    );
}

/// A tool call that hangs and a client that leaves meanwhile: the turn does not wait for the
/// tool. The MCP server is told `notifications/cancelled` for that call, and the session is
/// free for its next turn, both within 2 s of the client leaving.
#[actix_rt::test]
async fn a_client_leaving_during_a_hanging_tool_call_cancels_it_at_the_server() {
    let log = sent_log();
    let recording = recorded(everything(), &log);
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_tool_call_stream(
            "call_long",
            "everything__trigger-long-running-operation",
            &json!({"duration": 60, "steps": 1}),
        )),
        Reply::sse(openai_text_stream("Hello again.")),
    ]);
    let (base, _) = agent_with_server(&mock, recording, Vec::new(), None).await;

    // A streamed turn on its own connection, read until the tool call shows, then dropped.
    let streaming = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let request = json!({"model": "kubiya-workflow-agent", "stream": true, "session_id": "hanging-tool",
        "messages": [{"role": "user", "content": "run the long operation"}]});
    let mut response = streaming
        .post(format!("{base}/v1/chat/completions"))
        .send_json(&request)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("\"tool_call\"") {
        let chunk = response
            .next()
            .await
            .expect("the stream shows the tool call");
        seen.extend_from_slice(&chunk.unwrap());
    }
    // The call has reached the server once its request is in the log.
    let call_id = wait_for_line(&log, Duration::from_secs(10), |line| {
        line["method"] == "tools/call" && line["params"]["name"] == "trigger-long-running-operation"
    })
    .await["id"]
        .clone();
    drop(response);
    drop(streaming);
    let left = Instant::now();

    let cancelled = wait_for_line(&log, Duration::from_secs(2), |line| {
        line["method"] == "notifications/cancelled" && line["params"]["requestId"] == call_id
    })
    .await;
    assert_eq!(cancelled["params"]["requestId"], call_id);

    // The turn has ended: the session takes its next turn instead of answering 409.
    let client = awc::Client::default();
    let next = json!({"model": "kubiya-workflow-agent", "session_id": "hanging-tool",
        "messages": [{"role": "user", "content": "hello"}]});
    let status = loop {
        let response = client
            .post(format!("{base}/v1/chat/completions"))
            .send_json(&next)
            .await
            .unwrap();
        if response.status().as_u16() != 409 || left.elapsed() > Duration::from_secs(2) {
            break response.status().as_u16();
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        status,
        200,
        "the session was still busy {:?} after the client left",
        left.elapsed()
    );
    let _ = std::fs::remove_file(&log);
}
