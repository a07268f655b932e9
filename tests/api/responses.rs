//! `/v1/responses` read by real clients — the `openai` Python package (whole, streamed,
//! `previous_response_id`, retrieve; every object and event validated against the Open
//! Responses types) and the AI SDK's `openai('…')` provider (two turns with `generateText`
//! and with `streamText`, the second sending `item_reference`s) — plus what one tenant can
//! reach of another's responses, and the terminal events of failed and incomplete turns.

use serde_json::{Value, json};

use crate::clients::{clients_dir, run_client};
use crate::helpers::{
    TestApp, assert_error, assert_invalid, spawn_app, spawn_app_against, spawn_app_with,
};
use crate::mock_upstream::{MockUpstream, Reply, openai_tool_call_stream};
use crate::tenants::key;

/// Validates answers (`{"kind": "response"|"stream", "body"}`) against the Open Responses
/// types with `validate_responses.py`; returns each one's terminal status or event.
pub async fn validate_with_spec(entries: Vec<Value>) -> Vec<String> {
    let file = std::env::temp_dir().join(format!("kubiya-responses-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, Value::Array(entries).to_string()).unwrap();
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let seen = run_client(
        python,
        vec![
            "validate_responses.py".into(),
            file.to_str().unwrap().into(),
        ],
    )
    .await;
    let _ = std::fs::remove_file(file);
    serde_json::from_value(seen["terminal"].clone()).unwrap()
}

pub fn whole(body: &Value) -> Value {
    json!({"kind": "response", "body": body})
}

#[actix_rt::test]
async fn the_openai_python_package_creates_streams_continues_and_retrieves_valid_responses() {
    let app = spawn_app().await;
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let seen = run_client(
        python,
        vec!["responses_client.py".into(), app.address.clone()],
    )
    .await;
    let whole = &seen["whole"];
    assert_eq!(whole["status"], "completed");
    assert_eq!(
        whole["output_types"],
        json!(["message"]),
        "no function_call items"
    );
    assert!(
        whole["text"]
            .as_str()
            .unwrap()
            .contains("disk usage report")
    );
    assert!(whole["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let stream = &seen["stream"];
    let types: Vec<&str> = stream["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        types[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        types[types.len() - 4..],
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert!(
        types[4..types.len() - 4]
            .iter()
            .all(|t| *t == "response.output_text.delta")
    );
    let sequence: Vec<u64> = stream["sequence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(sequence, (0..sequence.len() as u64).collect::<Vec<_>>());
    assert_eq!(stream["text"], stream["completed_text"]);
    assert!(stream["text"].as_str().unwrap().contains("✓ summary"));
    assert_eq!(stream["output_types"], json!(["message"]));
    let events = stream["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "workflow_complete" && e["status"] == "success")
    );

    let followup = &seen["followup"];
    assert_eq!(followup["previous"], whole["id"]);
    assert_eq!(
        followup["session"], followup["first_session"],
        "the same session continues"
    );
    assert!(
        followup["text"]
            .as_str()
            .unwrap()
            .contains("directory backup")
    );
    assert_eq!(seen["retrieved"]["id"], whole["id"]);
    assert_eq!(seen["retrieved"]["text"], whole["text"]);
    assert_eq!(
        seen["missing"],
        json!({"class": "NotFoundError", "status": 404})
    );
}

#[actix_rt::test]
async fn the_ai_sdk_openai_provider_holds_two_turns_with_item_references() {
    let app = spawn_app().await;
    let node = clients_dir().join("ai7/node_modules/.bin/node");
    let seen = run_client(
        node.to_str().unwrap(),
        vec!["ai7/openai_provider.mjs".into(), app.address.clone()],
    )
    .await;
    for flavour in ["generated", "streamed"] {
        let turns = &seen[flavour];
        assert!(
            turns["first"]
                .as_str()
                .unwrap()
                .contains("disk usage report"),
            "{seen}"
        );
        assert!(
            turns["second"]
                .as_str()
                .unwrap()
                .contains("directory backup"),
            "{seen}"
        );
        assert_eq!(turns["finishReason"], "stop");
    }
    let requests = seen["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 4);
    for request in requests {
        assert!(request["url"].as_str().unwrap().ends_with("/v1/responses"));
    }
    for second in [&requests[1], &requests[3]] {
        let reference = &second["body"]["input"][1];
        assert_eq!(reference["type"], "item_reference", "{second}");
        assert!(reference["id"].as_str().unwrap().starts_with("msg_"));
    }
    let answers = seen["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|answer| match answer["stream"].as_bool().unwrap() {
            true => json!({"kind": "stream", "body": answer["text"]}),
            false => whole(&serde_json::from_str(answer["text"].as_str().unwrap()).unwrap()),
        })
        .collect();
    assert_eq!(
        validate_with_spec(answers).await,
        [
            "completed",
            "completed",
            "response.completed",
            "response.completed"
        ]
    );
}

#[actix_rt::test]
async fn a_failure_after_the_stream_started_is_response_failed_and_the_turn_limit_incomplete() {
    let workflow = json!({"name": "hello", "steps": [{"name": "say", "command": "echo hi"}]});
    let validate = || {
        Reply::sse(openai_tool_call_stream(
            "call_v",
            "validate_workflow",
            &json!({"workflow": workflow}),
        ))
    };
    let broken = json!({"error": {"message": "boom", "type": "server_error"}});
    let mock = MockUpstream::start(vec![
        validate(),
        Reply::json(500, broken.clone()),
        Reply::json(500, broken),
        validate(),
        validate(),
    ]);
    let app = spawn_app_against(&mock.base(), |settings| settings.agent.max_iterations = 2).await;
    let request = json!({"model": "kubiya-workflow-agent", "input": "hello", "stream": true,
        "instructions": "Be brief."});
    let (status, _, failed) = app.post_raw("/v1/responses", &request, &[]).await;
    assert_eq!(status, 200, "{failed}");
    assert!(
        failed.contains("[Calling tool: validate_workflow]"),
        "{failed}"
    );
    let (_, _, incomplete) = app.post_raw("/v1/responses", &request, &[]).await;
    assert!(incomplete.contains("\"instructions\":\"Be brief.\""));
    let terminal = validate_with_spec(vec![
        json!({"kind": "stream", "body": failed}),
        json!({"kind": "stream", "body": incomplete}),
    ])
    .await;
    assert_eq!(terminal, ["response.failed", "response.incomplete"]);
    assert!(!failed.contains("function_call") && !incomplete.contains("function_call"));
}

pub async fn create(app: &TestApp, body: Value, api_key: &str) -> (u16, Value) {
    let bearer = format!("Bearer {api_key}");
    let (status, _, body) = app
        .post_raw(
            "/v1/responses",
            &body,
            &[("authorization", bearer.as_str())],
        )
        .await;
    (status, serde_json::from_str(&body).unwrap())
}

#[actix_rt::test]
async fn another_tenants_responses_and_items_do_not_exist_and_unstored_ones_are_not_kept() {
    let app = spawn_app_with(|settings| {
        settings.auth.api_keys = vec![key("sk-a", "team-a"), key("sk-b", "team-b")];
    })
    .await;
    let model = "kubiya-workflow-agent";
    let (status, mine) = create(&app, json!({"model": model, "input": "say hello"}), "sk-a").await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(validate_with_spec(vec![whole(&mine)]).await, ["completed"]);
    let id = mine["id"].as_str().unwrap();
    let item = mine["output"][0]["id"].as_str().unwrap();

    let get = |path: String, api_key: &'static str| {
        app.client
            .get(app.url(&path))
            .insert_header(("authorization", format!("Bearer {api_key}")))
            .send()
    };
    assert_eq!(
        get(format!("/v1/responses/{id}"), "sk-a")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(format!("/v1/responses/{id}"), "sk-b")
            .await
            .unwrap()
            .status(),
        404
    );
    let (status, body) = create(
        &app,
        json!({"model": model, "input": "go on", "previous_response_id": id}),
        "sk-b",
    )
    .await;
    assert_eq!(status, 404);
    assert_error(
        &body,
        "invalid_request_error",
        "not_found",
        Some("previous_response_id"),
    );
    let (status, body) = create(
        &app,
        json!({"model": model, "input": [{"type": "item_reference", "id": item},
            {"role": "user", "content": "and then?"}]}),
        "sk-b",
    )
    .await;
    assert_invalid(status, &body, Some("input[0].id"));

    let (_, unstored) = create(
        &app,
        json!({"model": model, "input": "say hello", "store": false}),
        "sk-a",
    )
    .await;
    assert_eq!(unstored["store"], false);
    let path = format!("/v1/responses/{}", unstored["id"].as_str().unwrap());
    assert_eq!(get(path, "sk-a").await.unwrap().status(), 404);

    for (body, status, code, param) in [
        (
            json!({"model": "gpt-4o", "input": "hi"}),
            404,
            "model_not_found",
            "model",
        ),
        (json!({"model": model}), 400, "invalid_value", "input"),
        (
            json!({"model": model, "input": [{"role": "tool", "content": "x"}]}),
            400,
            "invalid_value",
            "input[0].role",
        ),
    ] {
        let (got, answer) = create(&app, body, "sk-a").await;
        assert_eq!(got, status, "{answer}");
        assert_error(&answer, "invalid_request_error", code, Some(param));
    }
}
