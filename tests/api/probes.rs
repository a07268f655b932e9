//! Probes, discovery, models, metrics and request ids.

use serde_json::json;

use crate::helpers::{assert_error, spawn_app};

#[actix_rt::test]
async fn health_has_the_original_shape() {
    let app = spawn_app().await;
    let (status, _, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "healthy", "service": "kubiya-mcp-agent", "initialized": true})
    );
    assert_eq!(app.get_json("/health/live").await.0, 200);
    let (status, _, body) = app.get_json("/health/ready").await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
}

#[actix_rt::test]
async fn discover_is_the_superset_shape_and_names_the_chosen_provider() {
    let app = spawn_app().await;
    let (status, _, body) = app.get_json("/discover").await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "Kubiya MCP Agent Server");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        body["capabilities"],
        json!({"streaming": true, "models": ["kubiya-workflow-agent"], "formats": ["sse", "vercel"]})
    );
    assert_eq!(body["provider"], "offline");
    assert_eq!(body["model"], "kubiya-offline-planner");
    assert_eq!(
        body["features"],
        json!(["chat", "streaming", "tools", "workflows"])
    );
    assert_eq!(body["api_version"], "v1");
    assert_eq!(body["server"]["id"], "kubiya-mcp-agent");
    assert_eq!(body["server"]["endpoints"]["compose"], "/compose");
    assert_eq!(body["server"]["endpoints"]["console"], "/");
    assert_eq!(
        body["server"]["capabilities"]["modes"],
        json!(["plan", "act"])
    );
    assert_eq!(body["health"]["status"], "healthy");
}

#[actix_rt::test]
async fn models_list_and_retrieve_in_openai_shapes() {
    let app = spawn_app().await;
    let (status, _, list) = app.get_json("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(list["object"], "list");
    let model = &list["data"][0];
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(model["id"], "kubiya-workflow-agent");
    assert_eq!(model["object"], "model");
    assert!(model["created"].is_u64());
    assert_eq!(model["owned_by"], "kubiya");

    let (status, _, one) = app.get_json("/v1/models/kubiya-workflow-agent").await;
    assert_eq!((status, &one), (200, model));

    // Ids with slashes reach the handler and get OpenAI's model_not_found.
    let (status, _, body) = app.get_json("/v1/models/meta-llama/Llama-3.3-70B").await;
    assert_eq!(status, 404);
    assert_error(
        &body,
        "invalid_request_error",
        "model_not_found",
        Some("model"),
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("meta-llama/Llama-3.3-70B")
    );
}

#[actix_rt::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/health"))
        .insert_header(("x-request-id", "trace-abc-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers().get("x-request-id").unwrap(),
        "trace-abc-123"
    );
    let (_, headers, _) = app.get_json("/health").await;
    let generated = headers.get("x-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
}

#[actix_rt::test]
async fn metrics_count_requests_by_route_pattern_and_status() {
    let app = spawn_app().await;
    app.get_json("/health").await;
    app.get_json("/v1/models/nope").await;
    let mut response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains(r#"kubiya_http_requests_total{method="GET",route="/health",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v1/models/{id:.+}",status="404""#),
        "{text}"
    );
    assert!(
        text.contains("kubiya_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[actix_rt::test]
async fn unknown_routes_and_wrong_methods_get_openai_errors() {
    let app = spawn_app().await;
    let (status, _, body) = app.get_json("/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_error(&body, "invalid_request_error", "not_found", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GET /v1/nothing-here")
    );

    let response = app
        .client
        .delete(app.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers().get("allow").unwrap(), "GET");
    let (status, body) = app.send_json("POST", "/health", "{}").await;
    assert_eq!(status, 405);
    assert_error(&body, "invalid_request_error", "method_not_allowed", None);
}

#[actix_rt::test]
async fn metrics_count_model_calls_tokens_and_open_streams() {
    let app = spawn_app().await;
    let request = json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": "hello"}]});
    let (status, _, _) = app.post_raw("/v1/chat/completions", &request, &[]).await;
    assert_eq!(status, 200);
    let mut response = app.client.get(app.url("/metrics")).send().await.unwrap();
    let text = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    let value = |series: &str| -> u64 {
        let line = text
            .lines()
            .find(|line| line.starts_with(series))
            .unwrap_or_else(|| panic!("{series} missing from:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // The offline planner answers in two model calls: the tool call, then the reply.
    assert_eq!(value("kubiya_llm_calls_total "), 2);
    // The offline planner needs no upstream, so it opens no connection.
    assert_eq!(value("kubiya_llm_upstream_connections_opened_total "), 0);
    // The turn's time in the server's own code was observed once.
    assert_eq!(value("kubiya_turn_overhead_seconds_count "), 1);
    assert!(value(r#"kubiya_llm_tokens_total{direction="input"}"#) > 0);
    assert!(value(r#"kubiya_llm_tokens_total{direction="output"}"#) > 0);
    assert_eq!(value("kubiya_open_streams "), 0);
    assert_eq!(value("kubiya_mcp_restarts_total "), 0);
}
