//! The Compose API's `stream_filter` in every output form (SSE, Vercel, NDJSON, WebSocket):
//! tool events dropped when `include_tool_calls` is false, the model's reasoning streamed as
//! `thought` events only when `include_thoughts` is true, events below `min_importance`
//! dropped, and unknown keys or values refused with 400.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_against};
use crate::mock_upstream::{MockUpstream, Reply, openai_chunk, openai_tool_call_stream};

const THOUGHT: &str = "The user wants a greeting; two steps will do.";

/// A model that reasons first (DeepSeek's `reasoning_content` delta), then proposes a valid
/// two-step workflow.
fn thinks_then_proposes() -> Reply {
    let workflow = json!({"name": "greet", "type": "graph", "steps": [
        {"name": "hello", "command": "echo hello", "output": "GREETING"},
        {"name": "shout", "command": "echo ${GREETING} | tr a-z A-Z", "depends": ["hello"]}
    ]});
    let mut body = openai_chunk(
        json!({"role": "assistant", "content": null, "reasoning_content": THOUGHT}),
        None,
    );
    body.push_str(&openai_tool_call_stream(
        "call_w",
        "validate_workflow",
        &json!({"workflow": workflow}),
    ));
    Reply::sse(body)
}

async fn app(runs: usize) -> (MockUpstream, TestApp) {
    let mock = MockUpstream::start((0..runs).map(|_| thinks_then_proposes()).collect());
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    (mock, app)
}

fn act(filter: Option<Value>, format: Option<Value>) -> Value {
    let mut request = json!({"task": "greet loudly", "mode": "act"});
    if let Some(filter) = filter {
        request["stream_filter"] = filter;
    }
    if let Some(format) = format {
        request["stream_format"] = format;
    }
    request
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn sse(app: &TestApp, request: &Value) -> Vec<Value> {
    let (status, _, body) = app.post_raw("/compose", request, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    crate::sse::json_data(&body)
}

#[actix_rt::test]
async fn sse_without_a_filter_keeps_tool_events_and_drops_thoughts() {
    let (_mock, app) = app(1).await;
    let kinds = kinds(&sse(&app, &act(None, None)).await);
    assert!(kinds.contains(&"tool_call".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"step_running".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"thought".to_owned()), "{kinds:?}");
}

#[actix_rt::test]
async fn sse_with_thoughts_and_without_tool_calls() {
    let (_mock, app) = app(1).await;
    let filter = json!({"include_tool_calls": false, "include_thoughts": true});
    let events = sse(&app, &act(Some(filter), None)).await;
    assert_eq!(
        kinds(&events),
        [
            "thought",
            "workflow",
            "step_running",
            "step_output",
            "step_complete",
            "step_running",
            "step_output",
            "step_complete",
            "workflow_complete"
        ]
    );
    assert_eq!(events[0]["content"], THOUGHT);
    // What each step printed, live, before its end.
    assert_eq!(
        (&events[3]["step"], &events[3]["stream"], &events[3]["text"]),
        (&json!("hello"), &json!("stdout"), &json!("hello\n"))
    );
    assert_eq!(events[6]["text"], "HELLO\n");
}

#[actix_rt::test]
async fn sse_min_importance_keeps_what_matters() {
    let (_mock, app) = app(2).await;
    let high = sse(&app, &act(Some(json!({"min_importance": "high"})), None)).await;
    assert_eq!(kinds(&high), ["workflow", "workflow_complete"]);
    assert_eq!(high[1]["status"], "success");
    let medium = sse(
        &app,
        &act(
            Some(json!({"min_importance": "medium", "include_thoughts": true})),
            None,
        ),
    )
    .await;
    assert_eq!(
        kinds(&medium),
        [
            "workflow",
            "step_complete",
            "step_complete",
            "workflow_complete"
        ],
        "thoughts and tool events are low, so even when asked for they fall below medium"
    );
}

#[actix_rt::test]
async fn the_vercel_stream_is_filtered_too() {
    let (_mock, app) = app(2).await;
    let filter = json!({"include_tool_calls": false, "include_thoughts": true});
    let (status, _, body) = app
        .post_raw("/compose", &act(Some(filter), Some(json!("vercel"))), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<&str> = body.lines().map(|line| &line[..2]).collect();
    assert!(
        codes.contains(&"g:"),
        "the thought as a reasoning part: {body}"
    );
    assert!(!codes.contains(&"9:") && !codes.contains(&"a:"), "{body}");
    assert!(body.contains(THOUGHT));
    assert!(
        body.lines().any(|line| line.starts_with("2:[{")
            && line.contains("\"type\":\"step_output\"")
            && line.contains("\"text\":\"hello\\n\"")),
        "live output as a data part: {body}"
    );
    assert!(body.lines().last().unwrap().starts_with("d:"), "{body}");

    let (_, _, body) = app
        .post_raw(
            "/compose",
            &act(
                Some(json!({"min_importance": "high"})),
                Some(json!("vercel")),
            ),
            &[],
        )
        .await;
    let data: Vec<&str> = body.lines().filter(|line| line.starts_with("2:")).collect();
    assert_eq!(data.len(), 2, "the workflow and workflow_complete: {body}");
    assert!(
        !body.contains("\"step_output\""),
        "live output is low: {body}"
    );
    assert!(
        !body.contains("g:") && !body.contains("\"step_running\""),
        "{body}"
    );
}

#[actix_rt::test]
async fn ndjson_is_filtered_and_still_ends_with_done() {
    let (_mock, app) = app(1).await;
    let filter = json!({"min_importance": "medium", "include_tool_calls": true});
    let (status, _, body) = app
        .post_raw("/compose", &act(Some(filter), Some(Value::Null)), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let lines: Vec<Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        kinds(&lines),
        [
            "workflow",
            "step_complete",
            "step_complete",
            "workflow_complete",
            "done"
        ]
    );
}

#[actix_rt::test]
async fn websocket_frames_are_filtered() {
    let (_mock, app) = app(1).await;
    let ws_url = app.url("/ws/compose").replacen("http", "ws", 1);
    let (_, mut socket) = app.client.ws(&ws_url).connect().await.unwrap();
    let filter = json!({"include_tool_calls": false, "include_thoughts": true});
    socket
        .send(awc::ws::Message::Text(
            act(Some(filter), None).to_string().into(),
        ))
        .await
        .unwrap();
    let mut events = Vec::new();
    loop {
        match socket.next().await.unwrap().unwrap() {
            awc::ws::Frame::Text(text) => {
                events.push(serde_json::from_slice::<Value>(&text).unwrap())
            }
            awc::ws::Frame::Close(_) => break,
            _ => {}
        }
    }
    let kinds = kinds(&events);
    assert_eq!(kinds[0], "thought", "{kinds:?}");
    assert!(kinds.iter().any(|kind| kind == "step_output"), "{kinds:?}");
    assert!(
        !kinds.iter().any(|kind| kind.starts_with("tool_")),
        "{kinds:?}"
    );
    assert_eq!(kinds.last().unwrap(), "workflow_complete", "{kinds:?}");
}

#[actix_rt::test]
async fn unknown_filter_keys_and_values_are_400() {
    let (_mock, app) = app(0).await;
    for filter in [
        json!({"include_tools": false}),
        json!({"min_importance": "urgent"}),
        json!({"include_thoughts": "yes"}),
        json!("all"),
    ] {
        let (status, _, body) = app
            .post_raw(
                "/compose",
                &json!({"task": "x", "stream_filter": filter}),
                &[],
            )
            .await;
        assert_eq!(status, 400, "{filter}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
        assert!(
            error["error"]["param"]
                .as_str()
                .unwrap_or_default()
                .starts_with("stream_filter"),
            "{body}"
        );
    }
}
