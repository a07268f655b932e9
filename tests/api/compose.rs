//! The Compose API against a scripted mock model: plan mode in all four forms, a cycle fixed
//! on the second attempt, act mode running on the local runner, 422 when the loop runs out,
//! a follow-up in the same session, WebSocket, and the legacy forms.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::helpers::{assert_error, assert_invalid, spawn_app_against};
use crate::mock_upstream::{MockUpstream, Reply, openai_tool_call_stream};
use crate::sse::json_data as sse_events;

fn valid() -> Value {
    json!({"name": "greet", "type": "graph", "steps": [
        {"name": "hello", "command": "echo hello", "output": "GREETING"},
        {"name": "shout", "command": "echo ${GREETING} | tr a-z A-Z", "depends": ["hello"]}
    ]})
}

fn cyclic() -> Value {
    json!({"name": "greet", "type": "graph", "steps": [
        {"name": "hello", "command": "echo hello", "depends": ["shout"]},
        {"name": "shout", "command": "echo hi", "depends": ["hello"]}
    ]})
}

fn proposes(workflow: Value) -> Reply {
    Reply::sse(openai_tool_call_stream(
        "call_w",
        "validate_workflow",
        &json!({"workflow": workflow}),
    ))
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

#[actix_rt::test]
async fn plan_mode_in_all_four_forms() {
    let mock = MockUpstream::start((0..4).map(|_| proposes(valid())).collect());
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let task = json!({"task": "greet loudly", "context": {"context.preferred_runner": "local"}});

    let (status, headers, body) = app.post_raw("/compose", &task, &[]).await;
    assert_eq!(status, 200);
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(body.ends_with("data: [DONE]\n\n"));
    let events = sse_events(&body);
    assert_eq!(
        kinds(&events),
        [
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "tool_call",
            "tool_result",
            "workflow"
        ]
    );
    assert_eq!(events[0]["name"], "list_runners");
    assert_eq!(events[4]["name"], "validate_workflow");
    assert_eq!(events[6]["data"]["name"], "greet");
    let prompt = mock.requests()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        prompt.contains("greet loudly") && prompt.contains("\"preferred_runner\":\"local\""),
        "{prompt}"
    );

    let mut vercel = task.clone();
    vercel["stream_format"] = json!("vercel");
    let (_, headers, body) = app.post_raw("/api/v1/compose", &vercel, &[]).await;
    assert_eq!(headers.get("x-vercel-ai-data-stream").unwrap(), "v1");
    let workflow_part = body.lines().find(|line| line.starts_with("2:")).unwrap();
    let part: Value = serde_json::from_str(&workflow_part[2..]).unwrap();
    assert_eq!(part[0]["type"], "workflow");
    assert_eq!(part[0]["data"]["name"], "greet");
    assert!(body.lines().last().unwrap().starts_with("d:"));

    let mut raw = task.clone();
    raw["stream_format"] = Value::Null;
    let (_, headers, body) = app.post_raw("/compose", &raw, &[]).await;
    assert_eq!(headers.get("content-type").unwrap(), "application/x-ndjson");
    let lines: Vec<Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines[lines.len() - 2]["type"], "workflow");
    assert_eq!(lines.last().unwrap()["type"], "done");

    let mut whole = task;
    whole["stream"] = json!(false);
    let (status, headers, body) = app.post_raw("/compose", &whole, &[]).await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["workflow"]["name"], "greet");
    let metadata = &answer["metadata"];
    assert_eq!(metadata["iterations"], 1);
    assert_eq!(metadata["tokens_used"], 29);
    assert_eq!(metadata["model"], "gpt-4o");
    assert_eq!(
        metadata["session_id"].as_str(),
        headers.get("x-session-id").unwrap().to_str().ok()
    );
    assert!(metadata["generated_at"].as_str().unwrap().ends_with('Z'));
    assert!(answer.get("execution_result").is_none());
}

#[actix_rt::test]
async fn a_cycle_is_fixed_on_the_second_attempt() {
    let mock = MockUpstream::start(vec![proposes(cyclic()), proposes(valid())]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let (_, _, body) = app
        .post_raw("/compose", &json!({"task": "greet"}), &[])
        .await;
    let events = sse_events(&body);
    let failed = events
        .iter()
        .find(|event| event["type"] == "validation_error")
        .unwrap();
    assert_eq!(failed["attempt"], 1);
    assert!(
        failed["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cycle")
    );
    assert_eq!(events.last().unwrap()["type"], "workflow");
    let feedback = mock.requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(feedback["role"], "tool");
    assert!(feedback["content"].as_str().unwrap().contains("cycle"));
}

#[actix_rt::test]
async fn act_mode_runs_the_workflow_and_streams_its_steps() {
    let mock = MockUpstream::start(vec![proposes(valid()), proposes(valid())]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let (_, _, body) = app
        .post_raw("/compose", &json!({"task": "greet", "mode": "act"}), &[])
        .await;
    let events = sse_events(&body);
    let tail: Vec<&str> = kinds(&events)
        .into_iter()
        .skip_while(|kind| *kind != "workflow")
        .collect();
    assert_eq!(
        tail,
        [
            "workflow",
            "tool_call",
            "step_running",
            "step_output",
            "step_complete",
            "step_running",
            "step_output",
            "step_complete",
            "workflow_complete",
            "tool_result"
        ]
    );
    let result = &events.last().unwrap()["result"];
    assert_eq!(result["status"], "success");
    assert_eq!(result["steps"][1]["output"], "HELLO");

    let (status, _, body) = app
        .post_raw(
            "/compose",
            &json!({"task": "greet", "mode": "act", "stream": false}),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&body).unwrap();
    let execution = &answer["execution_result"];
    assert_eq!(execution["status"], "success");
    assert!(
        execution["execution_id"]
            .as_str()
            .unwrap()
            .starts_with("exec_")
    );
    assert_eq!(execution["steps"].as_array().unwrap().len(), 2);
}

#[actix_rt::test]
async fn the_loop_gives_up_with_422_after_max_loop_iterations() {
    let mock = MockUpstream::start((0..6).map(|_| proposes(cyclic())).collect());
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let (status, _, body) = app
        .post_raw("/compose", &json!({"task": "greet", "stream": false}), &[])
        .await;
    assert_eq!(status, 422, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_error(&body, "invalid_request_error", "unprocessable", None);
    assert!(body["error"]["message"].as_str().unwrap().contains("cycle"));
    assert_eq!(
        mock.requests().len(),
        3,
        "max_loop_iterations defaults to 3"
    );

    let (status, _, body) = app
        .post_raw("/compose", &json!({"task": "greet"}), &[])
        .await;
    assert_eq!(
        status, 200,
        "a stream that started reports the failure in-band"
    );
    let events = sse_events(&body);
    assert_eq!(
        kinds(&events)
            .iter()
            .filter(|kind| **kind == "validation_error")
            .count(),
        3
    );
    assert_eq!(events.last().unwrap()["type"], "error");
    assert_eq!(events.last().unwrap()["code"], "unprocessable");
    assert!(body.ends_with("data: [DONE]\n\n"));
}

#[actix_rt::test]
async fn a_follow_up_in_the_same_session_refines_the_previous_workflow() {
    let mut with_slack = valid();
    with_slack["steps"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "notify-slack", "command": "echo posted", "depends": ["shout"]}));
    let mock = MockUpstream::start(vec![proposes(valid()), proposes(with_slack)]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let first = json!({"task": "greet", "stream": false, "session_id": "compose-1"});
    let (status, _, _) = app.post_raw("/compose", &first, &[]).await;
    assert_eq!(status, 200);
    let second = json!({"task": "now add a Slack notification step", "stream": false, "session_id": "compose-1"});
    let (status, _, body) = app.post_raw("/compose", &second, &[]).await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["workflow"]["steps"].as_array().unwrap().len(), 3);
    // The model saw the first workflow when asked to change it.
    let history = mock.requests()[1].body["messages"].to_string();
    assert!(
        history.contains("echo ${GREETING} | tr a-z A-Z"),
        "{history}"
    );
    assert!(history.contains("now add a Slack notification step"));
}

#[actix_rt::test]
async fn legacy_execute_true_and_the_v2_route_mean_act() {
    let mock = MockUpstream::start(vec![proposes(valid())]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let request = json!({"task": "greet", "execute": true, "mode": "adk", "stream": false});
    let (status, _, body) = app.post_raw("/api/v2/compose", &request, &[]).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["execution_result"]["status"], "success");
}

#[actix_rt::test]
async fn bad_requests_name_the_field() {
    let mock = MockUpstream::start(vec![]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let (status, _, body) = app.post_raw("/compose", &json!({"task": " "}), &[]).await;
    assert_invalid(status, &body, Some("task"));
    let (status, _, body) = app
        .post_raw(
            "/compose",
            &json!({"task": "x", "stream_format": "xml"}),
            &[],
        )
        .await;
    assert_invalid(status, &body, Some("stream_format"));
    let (status, _, _) = app.post_raw("/compose", &json!({"context": {}}), &[]).await;
    assert_eq!(status, 400);
}

#[actix_rt::test]
async fn compose_over_websocket() {
    let mock = MockUpstream::start(vec![proposes(valid())]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let ws_url = app.url("/ws/compose").replacen("http", "ws", 1);
    let (_, mut socket) = app.client.ws(&ws_url).connect().await.unwrap();
    socket
        .send(awc::ws::Message::Text(
            json!({"task": "greet"}).to_string().into(),
        ))
        .await
        .unwrap();
    let mut events = Vec::new();
    let close = loop {
        match socket.next().await.unwrap().unwrap() {
            awc::ws::Frame::Text(text) => {
                events.push(serde_json::from_slice::<Value>(&text).unwrap())
            }
            awc::ws::Frame::Close(reason) => break reason,
            _ => {}
        }
    };
    assert_eq!(events.last().unwrap()["type"], "workflow");
    assert_eq!(close.unwrap().code, awc::ws::CloseCode::Normal);

    let (_, mut socket) = app.client.ws(&ws_url).connect().await.unwrap();
    socket
        .send(awc::ws::Message::Text("{\"task\": 7}".into()))
        .await
        .unwrap();
    let mut error = Value::Null;
    let close = loop {
        match socket.next().await.unwrap().unwrap() {
            awc::ws::Frame::Text(text) => error = serde_json::from_slice(&text).unwrap(),
            awc::ws::Frame::Close(reason) => break reason.unwrap(),
            _ => {}
        }
    };
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "invalid_value");
    assert_eq!(close.code, awc::ws::CloseCode::Policy);
    assert!(close.description.unwrap().contains("task"));
}

#[actix_rt::test]
async fn x_user_id_and_x_session_id_name_the_user_and_session_as_for_chat() {
    let mock = MockUpstream::start(vec![proposes(valid())]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let request = json!({"task": "greet", "stream": false});
    let (status, headers, body) = app
        .post_raw(
            "/compose",
            &request,
            &[("x-user-id", "alice"), ("x-session-id", "compose-alice")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("x-session-id").unwrap(), "compose-alice");

    // The session is alice's: found under her name, absent for the default user.
    let (status, _, session) = app
        .get_with("/v1/sessions/compose-alice", &[("x-user-id", "alice")])
        .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"], "alice");
    let (status, _, _) = app.get_json("/v1/sessions/compose-alice").await;
    assert_eq!(status, 404);

    let (status, _, body) = app
        .post_raw("/compose", &request, &[("x-user-id", "not a user id")])
        .await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_error(
        &body,
        "invalid_request_error",
        "invalid_value",
        Some("X-User-Id"),
    );
}
