//! Two replicas in one process sharing a real Redis (started by the harness on a free port)
//! and one mock model: a conversation that alternates replicas, the turn lease and the
//! limits holding across them, tenant isolation, and a Redis outage mid-test (503, readiness
//! failing, then recovery by itself with no acknowledged turn lost).

use std::time::Duration;

use kubiya::config::{ApiKeySettings, Settings};
use serde_json::{Value, json};

use crate::helpers::{
    ServerProcess, TestApp, assert_error, blocking_get, eventually, kubiya_command,
    spawn_app_against,
};
use crate::mock_upstream::{MockUpstream, Reply, openai_text_stream};
use crate::redis_server::RedisServer;
use crate::tenants::{chat, history, key, pairs, turn};

const TEAM_A: &str = "sk-team-a-1234";
const TEAM_B: &str = "sk-team-b-5678";

/// Two replicas against `mock`, sharing `redis`, with `keys`.
async fn two_replicas(
    mock: &MockUpstream,
    redis: &RedisServer,
    keys: Vec<ApiKeySettings>,
) -> (TestApp, TestApp) {
    two_replicas_with(mock, redis, |settings| {
        settings.auth.api_keys = keys.clone()
    })
    .await
}

async fn two_replicas_with(
    mock: &MockUpstream,
    redis: &RedisServer,
    tweak: impl Fn(&mut Settings),
) -> (TestApp, TestApp) {
    let configure = |settings: &mut Settings| {
        settings.store.url = redis.url();
        tweak(settings);
    };
    let first = spawn_app_against(&mock.base(), configure).await;
    let second = spawn_app_against(&mock.base(), configure).await;
    for replica in [&first, &second] {
        wait_ready(replica, 200).await;
    }
    (first, second)
}

fn teams() -> Vec<ApiKeySettings> {
    vec![key(TEAM_A, "team-a"), key(TEAM_B, "team-b")]
}

/// Polls `/health/ready` until it answers `status` (within 20 s).
async fn wait_ready(app: &TestApp, status: u16) -> Value {
    let what = format!("/health/ready answers {status}");
    eventually(&what, Duration::from_secs(20), || async {
        let (now, _, body) = app.get_json("/health/ready").await;
        (now == status).then_some(body)
    })
    .await
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[actix_rt::test]
async fn a_conversation_alternates_replicas_with_only_the_new_message() {
    let redis = RedisServer::start();
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_text_stream("one")),
        Reply::sse(openai_text_stream("two")),
        Reply::sse(openai_text_stream("three")),
    ]);
    let (a, b) = two_replicas(&mock, &redis, teams()).await;

    let (status, session, _) = turn(&a, TEAM_A, &chat("first", json!({}))).await;
    assert_eq!(status, 200);
    let (status, same, _) = turn(&b, TEAM_A, &chat("second", json!({"session_id": session}))).await;
    assert_eq!((status, &same), (200, &session));
    let (status, _, body) = turn(
        &a,
        TEAM_A,
        &chat("third", json!({"session_id": session, "stream": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("three") && body.ends_with("data: [DONE]\n\n"),
        "{body}"
    );

    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        history(&requests[2].body),
        pairs(&[
            ("user", "first"),
            ("assistant", "one"),
            ("user", "second"),
            ("assistant", "two"),
            ("user", "third"),
        ])
    );
    let (status, _, stored) = b
        .get_with(
            &format!("/v1/sessions/{session}"),
            &[("authorization", &bearer(TEAM_A))],
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["transcript"].as_array().unwrap().len(), 6);
    assert_eq!(stored["transcript"][5]["content"], "three");
}

#[actix_rt::test]
async fn the_turn_lease_holds_across_replicas_and_frees_when_the_turn_ends() {
    let redis = RedisServer::start();
    let mock = MockUpstream::start(vec![
        Reply::Delay(
            Duration::from_millis(2500),
            Box::new(Reply::sse(openai_text_stream("slow answer"))),
        ),
        Reply::sse(openai_text_stream("after")),
        Reply::sse(openai_text_stream("once it expired")),
    ]);
    // A short lease: the slow turn outlives it, so only its renewal keeps the session held.
    let (a, b) = two_replicas_with(&mock, &redis, |settings| {
        settings.auth.api_keys = teams();
        settings.store.lease_ttl_ms = 1_000;
    })
    .await;
    let session = json!({"session_id": "shared-one"});

    let first_request = chat("first", session.clone());
    let first = turn(&a, TEAM_A, &first_request);
    let second = async {
        mock.wait_until("the first turn reached the model", |mock| {
            mock.requests().len() == 1
        })
        .await;
        // The wait is the scenario: longer than the lease's TTL, which only renewal survives.
        actix_rt::time::sleep(Duration::from_millis(1_500)).await;
        turn(&b, TEAM_A, &chat("second", session.clone())).await
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

    // The lease is freed before the turn is acknowledged: B may go on at once.
    let (status, _, body) = turn(&b, TEAM_A, &chat("third", session.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        history(&mock.requests()[1].body),
        pairs(&[
            ("user", "first"),
            ("assistant", "slow answer"),
            ("user", "third")
        ])
    );

    // A lease left behind by a replica that died expires by itself.
    let abandoned = "kubiya:lease:team-a:default_user:abandoned";
    assert_eq!(
        redis.command(&["SET", abandoned, "a-dead-replica", "PX", "800"]),
        Some("+OK".to_owned())
    );
    let abandoned_session = json!({"session_id": "abandoned"});
    let (status, _, _) = turn(&a, TEAM_A, &chat("now?", abandoned_session.clone())).await;
    assert_eq!(status, 409);
    eventually(
        "the abandoned lease expires",
        Duration::from_secs(5),
        || async { (redis.command(&["EXISTS", abandoned]).as_deref() == Some(":0")).then_some(()) },
    )
    .await;
    let (status, _, body) = turn(&a, TEAM_A, &chat("now", abandoned_session)).await;
    assert_eq!(status, 200, "{body}");
}

#[actix_rt::test]
async fn a_tenant_cannot_read_another_tenants_session_on_any_replica() {
    let redis = RedisServer::start();
    let mock = MockUpstream::start(vec![Reply::sse(openai_text_stream("private"))]);
    let (a, b) = two_replicas(&mock, &redis, teams()).await;
    let (status, session, _) = turn(&a, TEAM_A, &chat("team a only", json!({}))).await;
    assert_eq!(status, 200);
    let path = format!("/v1/sessions/{session}");
    for replica in [&a, &b] {
        let (status, _, body) = replica
            .get_with(&path, &[("authorization", &bearer(TEAM_A))])
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["transcript"][0]["content"], "team a only");
        let (status, _, body) = replica
            .get_with(&path, &[("authorization", &bearer(TEAM_B))])
            .await;
        assert_eq!(status, 404, "{body}");
        assert_error(&body, "invalid_request_error", "not_found", Some("id"));
    }
}

#[actix_rt::test]
async fn limits_are_shared_by_every_replica() {
    let redis = RedisServer::start();
    let mock = MockUpstream::start(vec![
        Reply::Delay(
            Duration::from_millis(1500),
            Box::new(Reply::sse(openai_text_stream("slow"))),
        ),
        Reply::sse(openai_text_stream("streamed")),
        Reply::sse(openai_text_stream("right after")),
    ]);
    let mut limited = key(TEAM_A, "team-a");
    limited.requests_per_minute = Some(5);
    limited.max_concurrent_streams = Some(1);
    let (a, b) = two_replicas(&mock, &redis, vec![limited, key(TEAM_B, "team-b")]).await;

    // One stream at a time for team a, wherever it runs.
    let first_request = chat("first", json!({}));
    let slow = turn(&a, TEAM_A, &first_request);
    let second = async {
        mock.wait_until("the first turn reached the model", |mock| {
            mock.requests().len() == 1
        })
        .await;
        b.post_raw(
            crate::tenants::CHAT,
            &chat("second", json!({})),
            &[("authorization", &bearer(TEAM_A))],
        )
        .await
    };
    let ((first_status, _, _), (second_status, headers, body)) = tokio::join!(slow, second);
    assert_eq!(first_status, 200);
    assert_eq!(second_status, 429, "{body}");
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    assert_error(&body, "rate_limit_error", "rate_limit_exceeded", None);
    // Its permit went back to Redis before its answer did: another replica may stream now,
    // and a stream's permit is free before its last chunk, so the next turn may start at once.
    let (status, _, body) = turn(&b, TEAM_A, &chat("third", json!({"stream": true}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let (status, _, body) = turn(&a, TEAM_A, &chat("fourth", json!({}))).await;
    assert_eq!(status, 200, "{body}");

    // Five requests a minute across both replicas; four were the turns above.
    let (status, _, _) = a
        .get_with("/v1/models", &[("authorization", &bearer(TEAM_A))])
        .await;
    assert_eq!(status, 200);
    for replica in [&b, &a] {
        let (status, headers, body) = replica
            .get_with("/v1/models", &[("authorization", &bearer(TEAM_A))])
            .await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(
            body["error"]["message"],
            "Rate limit reached: at most 5 requests per minute for this API key; retry after the time in Retry-After."
        );
        assert_error(&body, "rate_limit_error", "rate_limit_exceeded", None);
        let retry_after: u64 = headers
            .get("retry-after")
            .expect("a Retry-After header")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=75).contains(&retry_after), "{retry_after}");
    }
    let (status, _, _) = b
        .get_with("/v1/models", &[("authorization", &bearer(TEAM_B))])
        .await;
    assert_eq!(status, 200, "team b has its own counts");
}

#[actix_rt::test]
async fn a_redis_outage_is_503_until_it_returns_and_loses_no_acknowledged_turn() {
    let mut redis = RedisServer::start();
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_text_stream("kept")),
        Reply::sse(openai_text_stream("after the outage")),
    ]);
    let (a, b) = two_replicas(&mock, &redis, teams()).await;
    let (status, session, _) = turn(&a, TEAM_A, &chat("before", json!({}))).await;
    assert_eq!(status, 200);

    redis.stop();
    let (status, _, body) = turn(&b, TEAM_A, &chat("during", json!({"session_id": session}))).await;
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_error(&body, "server_error", "service_unavailable", None);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "Redis at 127.0.0.1:{}/0 is unreachable",
            redis.port
        )),
        "{message}"
    );
    for replica in [&a, &b] {
        let not_ready = wait_ready(replica, 503).await;
        assert_error(&not_ready, "server_error", "service_unavailable", None);
        assert!(
            not_ready["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unreachable"),
            "{not_ready}"
        );
        // What does not need Redis goes on.
        assert_eq!(replica.get_with("/health/live", &[]).await.0, 200);
        let (status, _, _) = replica
            .get_with("/v1/models", &[("authorization", &bearer(TEAM_A))])
            .await;
        assert_eq!(status, 200);
        let (status, _, body) = replica
            .get_with(
                &format!("/v1/sessions/{session}"),
                &[("authorization", &bearer(TEAM_A))],
            )
            .await;
        assert_eq!(status, 503, "{body}");
    }
    assert_eq!(mock.requests().len(), 1, "no turn reached the model");

    redis.restart();
    for replica in [&a, &b] {
        wait_ready(replica, 200).await;
    }
    let (status, _, body) = turn(&b, TEAM_A, &chat("after", json!({"session_id": session}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        history(&mock.requests()[1].body),
        pairs(&[("user", "before"), ("assistant", "kept"), ("user", "after")])
    );
}

#[test]
fn the_binary_takes_its_store_from_the_flag_or_redis_url() {
    let redis = RedisServer::start();
    let url = redis.url();
    let address = format!("127.0.0.1:{}/0", redis.port);
    for (args, env) in [
        (vec!["--store", url.as_str()], vec![]),
        (vec![], vec![("REDIS_URL", url.as_str())]),
    ] {
        let mut server = ServerProcess::start(&args, &env, None);
        let store = server.wait_for_log(|record| record["store"].is_string());
        assert_eq!(store["store"], "redis");
        assert_eq!(store["redis"], address.as_str());
        let mut ready = 0;
        for _ in 0..100 {
            ready = blocking_get(&server.url("/health/ready")).0;
            if ready == 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(ready, 200, "{args:?} {env:?}");
    }

    let output = kubiya_command()
        .args([
            "mcp",
            "agent",
            "--port",
            "0",
            "--store",
            "http://user:hunter2@cache:6379",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("kubiya: invalid setting store.url (`http://<redacted>@cache:6379`)"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[actix_rt::test]
async fn a_chat_stream_started_on_one_replica_resumes_on_another_for_its_tenant_only() {
    let redis = RedisServer::start();
    let mock = crate::ui_chat::slow_workflow_upstream();
    let (a, b) = two_replicas(&mock, &redis, teams()).await;
    let client = a.client.clone();
    let url = a.url("/api/chat");
    let started = actix_rt::spawn(async move {
        let mut response = client
            .post(url)
            .insert_header(("authorization", bearer(TEAM_A)))
            .send_json(&crate::ui_chat::ui_request(
                "chat-x",
                "Run the slow workflow",
            ))
            .await
            .unwrap();
        response.body().limit(1 << 24).await.unwrap()
    });
    let resume = |key: &str, last_event: Option<&str>| {
        let mut request = b
            .client
            .get(b.url("/api/chat/chat-x/stream"))
            .insert_header(("authorization", bearer(key)));
        if let Some(id) = last_event {
            request = request.insert_header(("last-event-id", id));
        }
        request.send()
    };
    // The turn is running once its tenant can resume it from the other replica.
    let mut whole = eventually(
        "the turn is resumable on b",
        Duration::from_secs(10),
        || async {
            let response = resume(TEAM_A, None).await.unwrap();
            (response.status().as_u16() == 200).then_some(response)
        },
    )
    .await;
    assert_eq!(resume(TEAM_B, None).await.unwrap().status().as_u16(), 204);
    let mut tail = resume(TEAM_A, Some("3")).await.unwrap();
    let whole = whole.body().limit(1 << 24).await.unwrap();
    let tail = tail.body().limit(1 << 24).await.unwrap();
    let original = started.await.unwrap();
    assert_eq!(whole, original, "the other replica streams the same turn");
    let text = String::from_utf8(original.to_vec()).unwrap();
    assert!(text.contains("\"status\":\"success\"") && text.ends_with("data: [DONE]\n\n"));
    let fourth = text.find("id: 4\n").unwrap();
    assert_eq!(tail, &text.as_bytes()[fourth..], "after Last-Event-ID 3");
    assert_eq!(
        resume(TEAM_A, None).await.unwrap().status().as_u16(),
        204,
        "nothing runs any more"
    );
}

#[actix_rt::test]
async fn a_response_kept_by_one_replica_is_read_and_continued_by_another() {
    let redis = RedisServer::start();
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_text_stream("one")),
        Reply::sse(openai_text_stream("two")),
    ]);
    let (a, b) = two_replicas(&mock, &redis, teams()).await;
    let auth = [("authorization", bearer(TEAM_A))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let model = "kubiya-workflow-agent";
    let (status, _, first) = a
        .post_raw(
            "/v1/responses",
            &json!({"model": model, "input": "first"}),
            &auth,
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let first: Value = serde_json::from_str(&first).unwrap();
    let id = first["id"].as_str().unwrap();
    let (status, _, kept) = b.get_with(&format!("/v1/responses/{id}"), &auth).await;
    assert_eq!((status, &kept["id"]), (200, &first["id"]));
    let (status, _, second) = b
        .post_raw(
            "/v1/responses",
            &json!({"model": model, "input": "second", "previous_response_id": id}),
            &auth,
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        history(&mock.requests()[1].body),
        pairs(&[("user", "first"), ("assistant", "one"), ("user", "second")])
    );
}
