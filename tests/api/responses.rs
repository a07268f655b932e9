//! `/v1/responses` read by real clients — the `openai` Python package (whole, streamed,
//! `previous_response_id`, retrieve; every object and event validated against the Open
//! Responses types) and the AI SDK's `openai('…')` provider (two turns with `generateText`
//! and with `streamText`, the second sending `item_reference`s) — plus what one tenant can
//! reach of another's responses, and plan → approve → act in plain text.

use serde_json::{Value, json};

use crate::clients::{clients_dir, run_client};
use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};
use crate::tenants::key;

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
}

async fn create(app: &TestApp, body: Value, api_key: &str) -> (u16, Value) {
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
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        "invalid_value",
        Some("input[0].id"),
    );

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

#[actix_rt::test]
async fn in_plain_text_the_agent_asks_before_a_run_and_a_yes_runs_it() {
    let app = spawn_app().await;
    let model = "kubiya-workflow-agent";
    let ask = json!({"model": model, "require_approval": true,
        "input": "Check the health of this system and run it"});
    let (status, asked) = create(&app, ask, "none").await;
    assert_eq!(status, 200, "{asked}");
    let text = asked["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("[Approval needed]"), "{text}");
    assert!(!text.contains("▶"), "nothing ran yet: {text}");

    let (_, declined) = create(
        &app,
        json!({"model": model, "input": "no, not now", "previous_response_id": asked["id"]}),
        "none",
    )
    .await;
    let text = declined["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.contains("I did not run the workflow"), "{text}");
    assert!(!text.contains("▶"), "{text}");

    let (_, asked_again) = create(
        &app,
        json!({"model": model, "require_approval": true,
            "input": "Check the health of this system and run it",
            "previous_response_id": declined["id"]}),
        "none",
    )
    .await;
    let (_, ran) = create(
        &app,
        json!({"model": model, "input": "yes", "previous_response_id": asked_again["id"]}),
        "none",
    )
    .await;
    let text = ran["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("✓ summary"), "{text}");
    assert!(text.contains("finished with status success"), "{text}");
}
