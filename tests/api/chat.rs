//! The agent behind `/v1/chat/completions`, driven by a scripted mock model that speaks the
//! OpenAI protocol: plain answers streamed and whole, the tool loop with a validation error
//! fixed, both stream formats, provider failures before and after the first byte, client
//! disconnects, session continuity and concurrent turns, and the offline provider.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{assert_error, spawn_app, spawn_app_against};
use crate::mock_upstream::{
    MockUpstream, Reply, openai_chunk, openai_text_stream, openai_tool_call_stream,
};
use crate::sse::{data as sse_data, json_data as chunks};

const CHAT: &str = "/v1/chat/completions";

fn chat(content: &str, extra: Value) -> Value {
    let mut request = json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": content}]});
    request
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    request
}

fn content_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// Turns one after another, with the default provider actors (one on each worker): every
/// model call goes out on the one upstream connection, although each turn ends, and so
/// cancels its call, as soon as the answer is complete.
#[actix_rt::test]
async fn consecutive_turns_reuse_one_upstream_connection() {
    let mock = MockUpstream::start(vec![Reply::sse(openai_text_stream("Hello.")); 6]);
    let app = spawn_app_against(&mock.base(), |settings| settings.provider.actors = 0).await;
    for sent in 1..=6 {
        let (status, _, body) = app.post_raw(CHAT, &chat("hi", json!({})), &[]).await;
        assert_eq!(status, 200, "{body}");
        // The body's end is read just after the answer went out: the next turn waits until
        // the mock has sent it.
        mock.wait_until("the stream's end sent", |mock| {
            mock.finished_streams() == sent
        })
        .await;
    }
    assert_eq!(mock.requests().len(), 6);
    assert_eq!(mock.connections(), 1, "model calls opened new connections");
}

#[actix_rt::test]
async fn a_plain_answer_whole_and_streamed() {
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_text_stream("Hello there, I write workflows.")),
        Reply::sse(openai_text_stream("Hello again.")),
    ]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;

    let (status, headers, body) = app.post_raw(CHAT, &chat("hi", json!({})), &[]).await;
    assert_eq!(status, 200, "{body}");
    let completion: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "kubiya-workflow-agent");
    assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Hello there, I write workflows."
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        completion["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
    );
    let session = headers.get("x-session-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(session).is_ok());

    let request = chat(
        "hi",
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let (status, headers, body) = app.post_raw(CHAT, &request, &[]).await;
    assert_eq!(status, 200);
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let data = sse_data(&body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks = chunks(&body);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk["id"] == chunks[0]["id"]
                && chunk["object"] == "chat.completion.chunk")
    );
    assert_eq!(content_of(&chunks), "Hello again.");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 18);
    assert!(
        body.starts_with("id: 1\ndata: "),
        "every event carries a sequence number"
    );
}

fn invalid_workflow() -> Value {
    json!({"name": "deploy", "type": "graph", "steps": [
        {"name": "build", "command": "echo build", "depends": ["test"]},
        {"name": "test", "command": "echo test", "depends": ["build"]}
    ]})
}

fn valid_workflow() -> Value {
    json!({"name": "deploy", "type": "graph", "steps": [
        {"name": "build", "command": "echo build"},
        {"name": "test", "command": "echo test", "depends": ["build"]}
    ]})
}

fn validation_script() -> Vec<Reply> {
    vec![
        Reply::sse(openai_tool_call_stream(
            "call_a",
            "validate_workflow",
            &json!({"workflow": invalid_workflow()}),
        )),
        Reply::sse(openai_tool_call_stream(
            "call_b",
            "validate_workflow",
            &json!({"workflow": valid_workflow()}),
        )),
        Reply::sse(openai_text_stream("The workflow is valid now.")),
    ]
}

#[actix_rt::test]
async fn the_model_fixes_a_workflow_after_a_validation_error() {
    let mock = MockUpstream::start(validation_script());
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let (status, _, body) = app
        .post_raw(CHAT, &chat("build and test", json!({"stream": true})), &[])
        .await;
    assert_eq!(status, 200);
    let chunks = chunks(&body);
    let text = content_of(&chunks);
    assert!(text.contains("[Calling tool: validate_workflow]"), "{text}");
    assert!(text.contains("validation error(s)"), "{text}");
    // The model's words, then the workflow it fixed, which its text did not show.
    assert!(
        text.contains("The workflow is valid now.\n```yaml\nname: deploy\n"),
        "{text}"
    );
    let results: Vec<&Value> = chunks
        .iter()
        .filter(|chunk| chunk["x_kubiya"]["type"] == "tool_result")
        .map(|chunk| &chunk["x_kubiya"]["result"])
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["valid"], false);
    let message = results[0]["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("cycle"), "{message}");
    assert_eq!(results[1]["valid"], true);

    // What went back to the model: the call, then its result, in OpenAI's shape.
    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    let messages = requests[1].body["messages"].as_array().unwrap();
    let result = messages.last().unwrap();
    assert_eq!(result["role"], "tool");
    assert_eq!(result["tool_call_id"], "call_a");
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("\"valid\":false")
    );
    let names: Vec<&str> = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"validate_workflow") && names.contains(&"execute_workflow"),
        "{names:?}"
    );
}

#[actix_rt::test]
async fn the_vercel_data_stream_has_tool_parts_and_finish_parts() {
    let mock = MockUpstream::start(validation_script());
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let (status, headers, body) = app
        .post_raw(
            CHAT,
            &chat("build and test", json!({})),
            &[("x-streaming-format", "vercel")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(headers.get("x-vercel-ai-data-stream").unwrap(), "v1");
    let lines: Vec<(&str, Value)> = body
        .lines()
        .map(|line| {
            let (code, json) = line.split_once(':').unwrap();
            (code, serde_json::from_str(json).unwrap())
        })
        .collect();
    let mut codes: Vec<&str> = lines.iter().map(|(code, _)| *code).collect();
    codes.dedup();
    let codes = codes.concat();
    assert_eq!(
        codes, "9ae9ae0ed",
        "tool call, result and step end twice, then text, step end, finish"
    );
    assert_eq!(lines[0].1["toolName"], "validate_workflow");
    assert!(
        lines[0].1["args"]["workflow"].is_object(),
        "args is an object, not a string"
    );
    assert_eq!(lines[1].1["toolCallId"], lines[0].1["toolCallId"]);
    assert_eq!(lines[2].1["finishReason"], "tool-calls");
    assert_eq!(lines.last().unwrap().1["finishReason"], "stop");
    assert_eq!(
        lines.last().unwrap().1["usage"],
        json!({"promptTokens": 51, "completionTokens": 25})
    );
}

#[actix_rt::test]
async fn a_provider_failure_before_the_first_byte_gets_an_error_status() {
    let rate_limited = || {
        Reply::json(
            429,
            json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
        )
    };
    let down = || Reply::json(503, json!({"error": {"message": "overloaded"}}));
    let mock = MockUpstream::start(vec![rate_limited(), rate_limited(), down(), down()]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;

    let (status, _, body) = app
        .post_raw(CHAT, &chat("hi", json!({"stream": true})), &[])
        .await;
    assert_eq!(status, 429, "{body}");
    assert_error(&body, "rate_limit_error", "rate_limit_exceeded", None);

    let (status, _, body) = app.post_raw(CHAT, &chat("hi", json!({})), &[]).await;
    assert_eq!(status, 502, "{body}");
    assert_error(&body, "server_error", "upstream_error", None);
}

#[actix_rt::test]
async fn a_provider_failure_after_the_first_byte_is_reported_in_band() {
    let partial = format!(
        "{}{}data: {{broken\n\n",
        openai_chunk(json!({"role": "assistant", "content": ""}), None),
        openai_chunk(json!({"content": "Working on"}), None)
    );
    let mock = MockUpstream::start(vec![Reply::sse(partial.clone()), Reply::sse(partial)]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;

    let (status, _, body) = app
        .post_raw(CHAT, &chat("hi", json!({"stream": true})), &[])
        .await;
    assert_eq!(status, 200);
    let data = sse_data(&body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let error: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_error(&error, "server_error", "upstream_error", None);
    assert_eq!(content_of(&chunks(&body)), "Working on");

    let (status, _, body) = app
        .post_raw(CHAT, &chat("hi", json!({"format": "vercel"})), &[])
        .await;
    assert_eq!(status, 200);
    let last = body.lines().last().unwrap();
    assert!(last.starts_with("3:\""), "{body}");
}

#[actix_rt::test]
async fn a_client_that_disconnects_closes_the_upstream_call() {
    let mock = MockUpstream::start(vec![Reply::endless_openai_stream()]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let mut response = app
        .client
        .post(app.url(CHAT))
        .send_json(&chat("count forever", json!({"stream": true})))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let first = response.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    drop(response);
    mock.wait_until("the upstream stream abandoned", |mock| {
        mock.abandoned_streams() == 1
    })
    .await;
}

#[actix_rt::test]
async fn a_session_continues_over_three_turns_with_only_the_new_message() {
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_text_stream("one")),
        Reply::sse(openai_text_stream("two")),
        Reply::sse(openai_text_stream("three")),
    ]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let (_, headers, _) = app.post_raw(CHAT, &chat("first", json!({})), &[]).await;
    let session = headers
        .get("x-session-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = app
        .post_raw(CHAT, &chat("second", json!({"session_id": session})), &[])
        .await;
    assert_eq!(status, 200);
    let (status, headers, body) = app
        .post_raw(
            CHAT,
            &chat("third", json!({"stream": true})),
            &[("x-session-id", &session)],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("x-session-id").unwrap().to_str().unwrap(),
        session
    );
    assert_eq!(content_of(&chunks(&body)), "three");
    let history: Vec<(String, String)> = mock.requests()[2].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("user", "first"),
        ("assistant", "one"),
        ("user", "second"),
        ("assistant", "two"),
        ("user", "third"),
    ]
    .iter()
    .map(|(r, c)| ((*r).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(history, expected);
}

#[actix_rt::test]
async fn a_second_concurrent_turn_on_a_session_gets_409() {
    let slow = Reply::Delay(
        Duration::from_secs(2),
        Box::new(Reply::sse(openai_text_stream("slow answer"))),
    );
    let mock = MockUpstream::start(vec![slow]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let first_request = chat("first", json!({"session_id": "busy-one"}));
    let first = app.post_raw(CHAT, &first_request, &[]);
    let second = async {
        mock.wait_until("the first turn reached the model", |mock| {
            mock.requests().len() == 1
        })
        .await;
        app.post_raw(
            CHAT,
            &chat("second", json!({"session_id": "busy-one"})),
            &[],
        )
        .await
    };
    let ((first_status, _, _), (second_status, _, body)) = tokio::join!(first, second);
    assert_eq!(first_status, 200);
    assert_eq!(second_status, 409, "{body}");
    assert_error(
        &body,
        "invalid_request_error",
        "session_busy",
        Some("session_id"),
    );
}

#[actix_rt::test]
async fn the_offline_provider_works_end_to_end() {
    let app = spawn_app().await;
    let (status, _, body) = app
        .post_raw(
            CHAT,
            &chat("check the system health", json!({"stream": true})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let chunks = chunks(&body);
    let text = content_of(&chunks);
    assert!(text.contains("not a language model"), "{text}");
    assert!(
        text.contains("[Tool validate_workflow: the workflow is valid]"),
        "{text}"
    );
    let call = chunks
        .iter()
        .find(|c| c["x_kubiya"]["type"] == "tool_call")
        .unwrap();
    assert_eq!(
        call["x_kubiya"]["arguments"]["workflow"]["name"],
        "system-health-check"
    );
}

fn runnable_workflow() -> Value {
    json!({"name": "greet", "type": "graph", "steps": [
        {"name": "hello", "command": "echo hello", "output": "GREETING"},
        {"name": "shout", "command": "echo ${GREETING} | tr a-z A-Z", "depends": ["hello"]}
    ]})
}

fn execution_script() -> Vec<Reply> {
    vec![
        Reply::sse(openai_tool_call_stream(
            "call_v1",
            "validate_workflow",
            &json!({"workflow": invalid_workflow()}),
        )),
        Reply::sse(openai_tool_call_stream(
            "call_v2",
            "validate_workflow",
            &json!({"workflow": runnable_workflow()}),
        )),
        Reply::sse(openai_tool_call_stream(
            "call_x",
            "execute_workflow",
            &json!({"workflow": runnable_workflow()}),
        )),
        Reply::sse(openai_text_stream("It ran: HELLO.")),
    ]
}

#[actix_rt::test]
async fn a_workflow_fixed_then_executed_streams_its_steps_as_openai_chunks() {
    let mock = MockUpstream::start(execution_script());
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let (status, _, body) = app
        .post_raw(CHAT, &chat("greet loudly", json!({"stream": true})), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let chunks = chunks(&body);
    let text = content_of(&chunks);
    for line in [
        "▶ hello: running",
        "✓ hello (",
        "✓ shout (",
        "Workflow greet: success",
        "[Tool execute_workflow: success]",
    ] {
        assert!(text.contains(line), "{line} missing from {text}");
    }
    let steps: Vec<(&str, &str)> = chunks
        .iter()
        .filter_map(|chunk| {
            let event = &chunk["x_kubiya"];
            Some((
                event["type"].as_str()?,
                event["step"].as_str().unwrap_or(""),
            ))
        })
        .filter(|(kind, _)| kind.starts_with("step_") || *kind == "workflow_complete")
        .collect();
    assert_eq!(
        steps,
        [
            ("step_running", "hello"),
            ("step_complete", "hello"),
            ("step_running", "shout"),
            ("step_complete", "shout"),
            ("workflow_complete", "")
        ]
    );
    let complete = chunks
        .iter()
        .find(|c| c["x_kubiya"]["type"] == "workflow_complete")
        .unwrap();
    assert_eq!(complete["x_kubiya"]["status"], "success");
    assert!(
        complete["x_kubiya"]["execution_id"]
            .as_str()
            .unwrap()
            .starts_with("exec_")
    );

    // The model got the final status and the outputs to summarise.
    let requests = mock.requests();
    let result = requests[3].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(result["tool_call_id"], "call_x");
    let result: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["status"], "success");
    assert_eq!(result["steps"][1]["output"], "HELLO");

    // The execution outlives the turn and can be read on its own.
    let id = complete["x_kubiya"]["execution_id"].as_str().unwrap();
    let (status, _, execution) = app.get_json(&format!("/v1/executions/{id}")).await;
    assert_eq!(
        (status, execution["status"].as_str()),
        (200, Some("success"))
    );
}

#[actix_rt::test]
async fn a_workflow_executed_streams_its_steps_as_vercel_data_parts() {
    let mock = MockUpstream::start(execution_script());
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let (status, _, body) = app
        .post_raw(
            CHAT,
            &chat("greet loudly", json!({"format": "vercel"})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let data: Vec<Value> = body
        .lines()
        .filter_map(|line| line.strip_prefix("2:"))
        .map(|json| serde_json::from_str::<Value>(json).unwrap())
        .inspect(|parts| assert!(parts.is_array(), "data parts are arrays"))
        .map(|parts| parts[0].clone())
        .collect();
    let kinds: Vec<&str> = data
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "step_running",
            "step_output",
            "step_complete",
            "step_running",
            "step_output",
            "step_complete",
            "workflow_complete"
        ]
    );
    assert_eq!(data[4]["text"], "HELLO\n");
    assert_eq!(data[5]["output"], "HELLO");
    assert!(
        body.lines()
            .any(|line| line.starts_with("a:") && line.contains("\"status\":\"success\""))
    );
    let finish: Value =
        serde_json::from_str(body.lines().last().unwrap().strip_prefix("d:").unwrap()).unwrap();
    // Three tool-call steps (20 + 9 tokens each) and the answer (11 + 7).
    assert_eq!(
        finish,
        json!({"finishReason": "stop", "usage": {"promptTokens": 71, "completionTokens": 34}})
    );
}

#[actix_rt::test]
async fn an_execution_keeps_running_when_the_client_leaves() {
    let slow = json!({"name": "slow", "steps": [
        {"name": "wait", "command": "sleep 1"},
        {"name": "done", "command": "echo finished"}
    ]});
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_tool_call_stream(
            "call_x",
            "execute_workflow",
            &json!({"workflow": slow}),
        )),
        Reply::sse(openai_text_stream("never read")),
    ]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let mut response = app
        .client
        .post(app.url(CHAT))
        .send_json(&chat("run slowly", json!({"stream": true})))
        .await
        .unwrap();
    let mut seen = String::new();
    let id = loop {
        let chunk = response.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(at) = seen.find("\"execution_id\":\"") {
            let rest = &seen[at + 16..];
            break rest[..rest.find('"').unwrap()].to_owned();
        }
    };
    drop(response);
    let execution = app
        .wait_for(&id, |execution| {
            execution["status"] != "running" && execution["status"] != "queued"
        })
        .await;
    assert_eq!(execution["status"], "success", "{execution}");
    assert_eq!(
        mock.requests().len(),
        1,
        "the model is not called again for a gone client"
    );
}
