//! Tenants and auth in one process (the in-memory store): 401s for a missing or wrong key with
//! whole OpenAI bodies, probes and discovery open without a key, one tenant's session absent
//! for another (404), local per-tenant limits, and what start-up says about auth and the store.

use std::time::Duration;

use kubiya::config::{ApiKeySettings, Settings};
use serde_json::{Value, json};

use crate::helpers::{
    ServerProcess, TestApp, assert_error, eventually, spawn_app_against, spawn_app_with,
};
use crate::mock_upstream::{MockUpstream, Reply, openai_text_stream};

pub const CHAT: &str = "/v1/chat/completions";

pub fn key(key: &str, tenant: &str) -> ApiKeySettings {
    ApiKeySettings {
        key: key.into(),
        tenant: tenant.into(),
        ..Default::default()
    }
}

pub fn chat(content: &str, extra: Value) -> Value {
    let mut request = json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": content}]});
    request
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    request
}

/// A chat turn with `key`, returning status, the session id and the body.
pub async fn turn(app: &TestApp, key: &str, request: &Value) -> (u16, String, String) {
    let bearer = format!("Bearer {key}");
    let (status, headers, body) = app
        .post_raw(CHAT, request, &[("authorization", &bearer)])
        .await;
    let session = headers
        .get("x-session-id")
        .map(|id| id.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, session, body)
}

/// The (role, content) pairs a model request carried, system prompt left out.
pub fn history(request: &Value) -> Vec<(String, String)> {
    request["messages"]
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
        .collect()
}

pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(role, content)| ((*role).to_owned(), (*content).to_owned()))
        .collect()
}

fn with_keys(settings: &mut Settings) {
    settings.auth.api_keys = vec![
        key("sk-team-a-1234", "team-a"),
        key("sk-team-b-5678", "team-b"),
    ];
}

#[actix_rt::test]
async fn a_missing_or_wrong_key_is_401_with_a_whole_openai_body() {
    let app = spawn_app_with(with_keys).await;
    let (status, headers, body) = app.get_with("/v1/models", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(
        body,
        json!({"error": {
            "message": "You didn't provide an API key. Send it in an Authorization header using Bearer auth (Authorization: Bearer YOUR_KEY).",
            "type": "authentication_error",
            "param": null,
            "code": "missing_api_key"
        }})
    );
    let wrong = json!({"error": {
        "message": "Incorrect API key provided. Check the key in your Authorization header.",
        "type": "authentication_error",
        "param": null,
        "code": "invalid_api_key"
    }});
    for authorization in [
        "Bearer sk-team-a-123",
        "Bearer sk-team-a-12345",
        "Basic sk-team-a-1234",
        "sk-team-a-1234",
    ] {
        let (status, _, body) = app
            .get_with("/v1/models", &[("authorization", authorization)])
            .await;
        assert_eq!((status, &body), (401, &wrong), "{authorization}");
    }
    // A chat turn is refused before its body is read.
    let (status, _, body) = app.post_raw(CHAT, &chat("hi", json!({})), &[]).await;
    assert_eq!(status, 401);
    assert_error(&body, "authentication_error", "missing_api_key", None);
    // Unknown routes need a key too: they reveal nothing without one.
    assert_eq!(app.get_with("/v1/nothing", &[]).await.0, 401);

    for scheme in ["Bearer", "bearer", "BEARER"] {
        let authorization = format!("{scheme}  sk-team-b-5678 ");
        let (status, _, body) = app
            .get_with("/v1/models", &[("authorization", &authorization)])
            .await;
        assert_eq!(status, 200, "{scheme}: {body}");
    }
}

#[actix_rt::test]
async fn probes_discovery_and_metrics_need_no_key() {
    let app = spawn_app_with(with_keys).await;
    for path in ["/health", "/health/live", "/health/ready", "/discover"] {
        let (status, _, body) = app.get_with(path, &[]).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let mut response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let metrics = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    assert!(
        metrics.contains(r#"route="/health",status="200""#),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn another_tenants_session_does_not_exist() {
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_text_stream("for team a")),
        Reply::sse(openai_text_stream("for team b")),
    ]);
    let app = spawn_app_against(&mock.base(), with_keys).await;
    let (status, session, _) = turn(&app, "sk-team-a-1234", &chat("secret plan", json!({}))).await;
    assert_eq!(status, 200);
    let path = format!("/v1/sessions/{session}");

    let (status, _, own) = app
        .get_with(&path, &[("authorization", "Bearer sk-team-a-1234")])
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["id"], session);
    assert_eq!(own["user"], "default_user");
    assert_eq!(
        own["transcript"],
        json!([
            {"role": "user", "content": "secret plan"},
            {"role": "assistant", "content": "for team a", "tool_calls": []}
        ])
    );
    assert_eq!(own["workflows"], json!([]));
    assert_eq!(own["executions"], json!([]));

    let (status, _, other) = app
        .get_with(&path, &[("authorization", "Bearer sk-team-b-5678")])
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        other,
        json!({"error": {
            "message": format!("No session with id `{session}` for this user."),
            "type": "invalid_request_error",
            "param": "id",
            "code": "not_found"
        }})
    );
    // The same id in team b's hands is a new conversation, not team a's.
    let (status, _, _) = turn(
        &app,
        "sk-team-b-5678",
        &chat("what was the plan?", json!({"session_id": session})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        history(&mock.requests()[1].body),
        pairs(&[("user", "what was the plan?")])
    );
    let (_, _, still) = app
        .get_with(&path, &[("authorization", "Bearer sk-team-a-1234")])
        .await;
    assert_eq!(still["transcript"].as_array().unwrap().len(), 2);
}

#[actix_rt::test]
async fn without_keys_everything_runs_as_the_default_tenant() {
    let mock = MockUpstream::start(vec![Reply::sse(openai_text_stream("hello"))]);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let (status, session, _) = turn(&app, "anything", &chat("hi", json!({}))).await;
    assert_eq!(status, 200);
    let (status, _, body) = app.get_with(&format!("/v1/sessions/{session}"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = app
        .get_with(&format!("/v1/sessions/{session}?user_id=someone-else"), &[])
        .await;
    assert_eq!(status, 404, "sessions are per user too: {body}");
}

#[actix_rt::test]
async fn local_limits_refuse_with_429_and_retry_after() {
    let mock = MockUpstream::start(vec![
        Reply::Delay(
            Duration::from_millis(1500),
            Box::new(Reply::sse(openai_text_stream("slow"))),
        ),
        Reply::sse(openai_text_stream("next")),
    ]);
    let app = spawn_app_against(&mock.base(), |settings| {
        let mut limited = key("sk-limited", "limited");
        limited.requests_per_minute = Some(3);
        limited.max_concurrent_streams = Some(1);
        settings.auth.api_keys = vec![limited, key("sk-free", "free")];
    })
    .await;

    let first_request = chat("first", json!({}));
    let slow = turn(&app, "sk-limited", &first_request);
    let second = async {
        mock.wait_until("the first turn reached the model", |mock| {
            mock.requests().len() == 1
        })
        .await;
        turn(&app, "sk-limited", &chat("second", json!({}))).await
    };
    let ((first_status, _, _), (second_status, _, body)) = tokio::join!(slow, second);
    assert_eq!(first_status, 200);
    assert_eq!(second_status, 429, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": {
            "message": "Too many concurrent streams: at most 1 at a time for this API key; retry when one has finished.",
            "type": "rate_limit_error",
            "param": null,
            "code": "rate_limit_exceeded"
        }})
    );
    // The first turn's stream ended, so its slot is free again; that is the third request.
    let (status, _, body) = turn(&app, "sk-limited", &chat("third", json!({}))).await;
    assert_eq!(status, 200, "{body}");

    let (status, headers, body) = app
        .get_with("/v1/models", &[("authorization", "Bearer sk-limited")])
        .await;
    assert_eq!(status, 429);
    assert_error(&body, "rate_limit_error", "rate_limit_exceeded", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 3 requests per minute"),
        "{body}"
    );
    let retry_after: u64 = headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=80).contains(&retry_after), "{retry_after}");
    // Another tenant is not affected.
    let (status, _, _) = app
        .get_with("/v1/models", &[("authorization", "Bearer sk-free")])
        .await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn an_execution_stream_counts_against_the_tenants_streams() {
    use futures_util::StreamExt;
    let app = spawn_app_with(|settings| {
        let mut limited = key("sk-limited", "limited");
        limited.max_concurrent_streams = Some(1);
        settings.auth.api_keys = vec![limited];
        settings.agent.heartbeat_secs = 1;
    })
    .await;
    let auth = [("authorization", "Bearer sk-limited")];
    let workflow =
        json!({"workflow": {"name": "slow", "steps": [{"name": "wait", "command": "sleep 60"}]}});
    let (status, _, started) = app.post_raw("/v1/executions", &workflow, &auth).await;
    assert_eq!(status, 202, "{started}");
    let started: Value = serde_json::from_str(&started).unwrap();
    let events = format!(
        "/v1/executions/{}/events",
        started["execution_id"].as_str().unwrap()
    );

    let mut following = app
        .client
        .get(app.url(&events))
        .insert_header(auth[0])
        .send()
        .await
        .expect("request sent");
    assert_eq!(following.status().as_u16(), 200);
    // Idle while the step sleeps: the configured heartbeat, not a fixed 15 s, keeps it open.
    let heartbeat = async {
        while let Some(chunk) = following.next().await {
            if chunk.expect("a chunk").starts_with(b": keep-alive") {
                return;
            }
        }
        panic!("the stream ended before a heartbeat");
    };
    tokio::time::timeout(Duration::from_secs(5), heartbeat)
        .await
        .expect("a heartbeat within the configured second");

    // The open stream holds the tenant's one stream: a second one, or a chat turn, is 429.
    let (status, headers, body) = app.get_with(&events, &auth).await;
    assert_eq!(status, 429, "{body}");
    assert_error(&body, "rate_limit_error", "rate_limit_exceeded", None);
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    let (status, _, body) = turn(&app, "sk-limited", &chat("hello", json!({}))).await;
    assert_eq!(status, 429, "{body}");

    // The client leaves: its stream is closed and the slot is free again.
    drop(following);
    eventually(
        "the stream's slot is freed",
        Duration::from_secs(10),
        || async {
            let (status, _, body) = turn(&app, "sk-limited", &chat("hello", json!({}))).await;
            assert!(status == 200 || status == 429, "{status}: {body}");
            (status == 200).then_some(())
        },
    )
    .await;
    let cancel = app
        .client
        .delete(app.url(&format!(
            "/v1/executions/{}",
            started["execution_id"].as_str().unwrap()
        )))
        .insert_header(auth[0])
        .send()
        .await
        .expect("request sent");
    assert_eq!(cancel.status().as_u16(), 202);
}

#[test]
fn start_up_says_whether_auth_is_on_and_where_state_lives() {
    let mut server = ServerProcess::start(&[], &[], None);
    server.wait_for_log(|record| {
        record["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("auth is off"))
    });
    let store = server.wait_for_log(|record| record["store"].is_string());
    assert_eq!(store["store"], "memory");
    drop(server);

    let dir = crate::config::tempdir();
    let file = dir.join("keys.toml");
    std::fs::write(
        &file,
        "[[auth.api_keys]]\nkey_env = \"TEAM_A_KEY\"\ntenant = \"team-a\"\n\
         requests_per_minute = 600\n\n[[auth.api_keys]]\nkey = \"sk-inline-key\"\ntenant = \"team-b\"\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let mut server = ServerProcess::start(
        &["--config", file],
        &[("TEAM_A_KEY", "sk-from-the-environment")],
        None,
    );
    let on = server
        .wait_for_log(|record| record["message"] == "auth is on: API keys map requests to tenants");
    assert_eq!(
        (on["keys"].as_u64(), on["tenants"].as_u64()),
        (Some(2), Some(2))
    );
    let (status, _) = crate::helpers::blocking_get(&server.url("/v1/models"));
    assert_eq!(status, 401);
    let (status, _) = crate::helpers::blocking_get(&server.url("/health/ready"));
    assert_eq!(status, 200);
    drop(server);

    // A key variable that is not set stops start-up with one line naming it.
    let output = crate::helpers::kubiya_command()
        .args(["mcp", "agent", "--port", "0", "--config", file])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.trim(),
        "kubiya: invalid setting auth.api_keys[0]: environment variable TEAM_A_KEY (key_env) is not set"
    );
}
