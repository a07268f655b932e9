//! Bad requests get OpenAI-shaped errors with fitting statuses: malformed JSON, wrong field
//! types naming the field, unknown model, unsupported `n`, bodies over the limit.

use serde_json::json;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

const CHAT: &str = "/v1/chat/completions";

#[actix_rt::test]
async fn malformed_json_is_400_invalid_json() {
    let app = spawn_app().await;
    let (status, body) = app.send_json("POST", CHAT, "{\"model\": ").await;
    assert_eq!(status, 400);
    assert_error(&body, "invalid_request_error", "invalid_json", None);
}

#[actix_rt::test]
async fn a_wrong_field_type_is_400_naming_the_field() {
    let app = spawn_app().await;
    let request =
        json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": 42}]});
    let (status, body) = app.send_json("POST", CHAT, request.to_string()).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        "invalid_value",
        Some("messages[0]"),
    );

    let (status, body) = app
        .send_json(
            "POST",
            CHAT,
            json!({"model": "kubiya-workflow-agent"}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        "invalid_value",
        Some("messages"),
    );

    let request = json!({"model": "kubiya-workflow-agent", "stream": "yes", "messages": []});
    let (status, body) = app.send_json("POST", CHAT, request.to_string()).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        "invalid_value",
        Some("stream"),
    );
}

#[actix_rt::test]
async fn an_unknown_model_is_404_and_n_above_1_is_400() {
    let app = spawn_app().await;
    let request = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = app.send_json("POST", CHAT, request.to_string()).await;
    assert_eq!(status, 404);
    assert_error(
        &body,
        "invalid_request_error",
        "model_not_found",
        Some("model"),
    );

    let request = json!({"model": "kubiya-workflow-agent", "n": 2, "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = app.send_json("POST", CHAT, request.to_string()).await;
    assert_eq!(status, 400);
    assert_error(&body, "invalid_request_error", "invalid_value", Some("n"));

    let request = json!({"model": "kubiya-workflow-agent", "messages": [{"role": "system", "content": "only"}]});
    let (status, body) = app.send_json("POST", CHAT, request.to_string()).await;
    assert_eq!(status, 400);
    assert_error(
        &body,
        "invalid_request_error",
        "invalid_value",
        Some("messages"),
    );
}

#[actix_rt::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app_with(|settings| settings.server.max_body_bytes = 1024).await;
    let big = "x".repeat(4096);
    let request =
        json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": big}]});
    let (status, body) = app.send_json("POST", CHAT, request.to_string()).await;
    assert_eq!(status, 413);
    assert_error(&body, "invalid_request_error", "request_too_large", None);

    // The default limit is 1 MiB.
    let app = spawn_app().await;
    let request = json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": "y".repeat(1_100_000)}]});
    let (status, _) = app.send_json("POST", CHAT, request.to_string()).await;
    assert_eq!(status, 413);
}
