//! Bad requests get OpenAI-shaped errors with fitting statuses: malformed JSON, wrong field
//! types naming the field, unknown model, unsupported `n`, bodies over the limit.

use serde_json::json;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

const CHAT: &str = "/v1/chat/completions";
const INVALID: &str = "invalid_request_error";

/// POSTs `body` to the chat route and asserts the whole error it gets.
async fn refused(
    app: &TestApp,
    body: impl Into<String>,
    status: u16,
    code: &str,
    param: Option<&str>,
) {
    let body = body.into();
    let (answered, error) = app.send_json("POST", CHAT, body.clone()).await;
    assert_eq!(answered, status, "{body}");
    assert_error(&error, INVALID, code, param);
}

#[actix_rt::test]
async fn malformed_json_is_400_invalid_json() {
    let app = spawn_app().await;
    refused(&app, "{\"model\": ", 400, "invalid_json", None).await;
}

#[actix_rt::test]
async fn a_wrong_field_type_is_400_naming_the_field() {
    let app = spawn_app().await;
    let request =
        json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": 42}]});
    refused(
        &app,
        request.to_string(),
        400,
        "invalid_value",
        Some("messages[0]"),
    )
    .await;
    let request = json!({"model": "kubiya-workflow-agent"});
    refused(
        &app,
        request.to_string(),
        400,
        "invalid_value",
        Some("messages"),
    )
    .await;
    let request = json!({"model": "kubiya-workflow-agent", "stream": "yes", "messages": []});
    refused(
        &app,
        request.to_string(),
        400,
        "invalid_value",
        Some("stream"),
    )
    .await;
}

#[actix_rt::test]
async fn an_unknown_model_is_404_and_n_above_1_is_400() {
    let app = spawn_app().await;
    let request = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    refused(
        &app,
        request.to_string(),
        404,
        "model_not_found",
        Some("model"),
    )
    .await;
    let request = json!({"model": "kubiya-workflow-agent", "n": 2, "messages": [{"role": "user", "content": "hi"}]});
    refused(&app, request.to_string(), 400, "invalid_value", Some("n")).await;
    let request = json!({"model": "kubiya-workflow-agent", "messages": [{"role": "system", "content": "only"}]});
    refused(
        &app,
        request.to_string(),
        400,
        "invalid_value",
        Some("messages"),
    )
    .await;
}

#[actix_rt::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app_with(|settings| settings.server.max_body_bytes = 1024).await;
    let big = "x".repeat(4096);
    let request =
        json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": big}]});
    refused(&app, request.to_string(), 413, "request_too_large", None).await;

    // The default limit is 1 MiB.
    let app = spawn_app().await;
    let request = json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": "y".repeat(1_100_000)}]});
    let (status, _) = app.send_json("POST", CHAT, request.to_string()).await;
    assert_eq!(status, 413);
}
