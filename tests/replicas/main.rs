//! Replicas sharing executions through a real Redis (the harness's [`redis_server`]): an
//! execution run on one replica is followed live, resumed without gap or duplicate, read and
//! cancelled on another; another tenant finds nothing on any replica; events written during
//! a Redis outage reach it in order once it is back, while a replica without Redis still
//! runs its own executions; and when the replica running an execution is killed, the others
//! end it as `lost` once its heartbeat lapses. A tenant's running executions are counted
//! across replicas, and a run started over MCP is found and followed on another replica. Replicas are the app in-process
//! (`helpers::spawn_app_with`, shared with the API tests) or the real binary.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests (and their helpers) fail by panicking"
)]

#[path = "../api/helpers.rs"]
#[expect(
    dead_code,
    reason = "the API tests' harness, of which these tests use a part"
)]
mod helpers;
#[path = "../support/redis_server.rs"]
mod redis_server;
#[path = "../support/sse.rs"]
mod sse;

use std::fmt::Debug;
use std::time::{Duration, Instant};

use actix::Addr;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use kubiya_actors::store::RedisEndpoint;
use kubiya_actors::workflow::{
    CancelExecution, ExecutionError, ExecutionWatcher, GetExecution, LOST_REASON, RunOptions,
    SharedConfig, StartExecution, WatcherConfig, Workflow,
};
use serde_json::{Map, Value, json};

use helpers::{ServerProcess, TestApp, blocking_post, spawn_app_with};
use kubiya::config::ApiKeySettings;
use redis_server::RedisServer;
use sse::{SseEvent, SseReader, kinds};

/// Reads whole SSE events from `body` until `enough` holds for those read or the stream
/// ends; a part of an event left unread is dropped, as a client that goes away drops it.
async fn read_sse<S, E>(body: &mut S, enough: impl Fn(&[SseEvent]) -> bool) -> Vec<SseEvent>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Debug,
{
    let mut reader = SseReader::default();
    let mut events = Vec::new();
    while !enough(&events) {
        let next = tokio::time::timeout(Duration::from_secs(30), body.next())
            .await
            .expect("the stream moves within 30 s");
        let Some(chunk) = next else { break };
        let chunk = chunk.expect("a body chunk");
        events.extend(reader.push(&chunk).into_iter().map(SseEvent::from));
    }
    events
}

/// A replica of the app, in this process, sharing executions through `redis`, whose
/// executions are lost 1 s after it stopped renewing their heartbeat.
async fn replica(redis: &RedisServer) -> TestApp {
    replica_losing_after(redis, 1000).await
}

async fn replica_losing_after(redis: &RedisServer, lost_after_ms: u64) -> TestApp {
    let url = redis.url();
    spawn_app_with(|settings| {
        settings.store.url = url;
        settings.runner.heartbeat_ms = 100;
        settings.runner.lost_after_ms = lost_after_ms;
    })
    .await
}

impl TestApp {
    async fn start_execution(&self, workflow: Value) -> String {
        let (status, body) = self
            .send_json(
                "POST",
                "/v1/executions",
                json!({ "workflow": workflow }).to_string(),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["execution_id"].as_str().expect("an id").to_owned()
    }

    async fn execution(&self, id: &str) -> Value {
        let (status, _, body) = self.get_json(&format!("/v1/executions/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls the execution until `done` holds for it.
    async fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let execution = self.execution(id).await;
            if done(&execution) {
                return execution;
            }
            assert!(
                Instant::now() < deadline,
                "execution {id} never reached the expected state: {execution}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Reads an execution's whole event stream, after `last_event_id` when given.
    async fn read_events(&self, id: &str, last_event_id: Option<u64>) -> Vec<SseEvent> {
        let mut request = self
            .client
            .get(self.url(&format!("/v1/executions/{id}/events")));
        if let Some(last) = last_event_id {
            request = request.insert_header(("Last-Event-ID", last.to_string()));
        }
        let mut response = request.send().await.expect("request sent");
        assert_eq!(response.status().as_u16(), 200);
        read_sse(&mut response, |_| false).await
    }
}

impl TestApp {
    /// Calls one of the workflow tools at `/mcp` (a modern, stateless request); answers the
    /// tool's result.
    async fn mcp_tool(&self, name: &str, arguments: Value) -> Value {
        let message = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": name, "arguments": arguments, "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}}});
        let mut response = self
            .client
            .post(self.url("/mcp"))
            .insert_header(("Accept", "application/json, text/event-stream"))
            .insert_header(("Mcp-Method", "tools/call"))
            .insert_header(("Mcp-Name", name))
            .send_json(&message)
            .await
            .expect("request sent");
        assert_eq!(response.status().as_u16(), 200);
        let body = response.body().limit(1 << 22).await.expect("body read");
        let text = String::from_utf8_lossy(&body);
        // One JSON answer, or an SSE stream whose last event is the answer.
        let answer = text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("data: "))
            .unwrap_or(&text);
        let answer: Value = serde_json::from_str(answer).expect("a JSON-RPC answer");
        answer["result"].clone()
    }
}

/// Four steps of 0.3 s each, then one more: long enough to follow live.
fn slow_chain() -> Value {
    json!({
        "name": "slow-chain",
        "steps": [
            {"name": "one", "command": "sleep 0.3 && echo one"},
            {"name": "two", "command": "sleep 0.3 && echo two"},
            {"name": "three", "command": "sleep 0.3 && echo three"},
            {"name": "four", "command": "sleep 0.3 && echo four"},
            {"name": "five", "command": "echo five"}
        ]
    })
}

#[actix_rt::test]
async fn an_execution_run_on_one_replica_is_followed_and_resumed_on_another() {
    let redis = RedisServer::start();
    let owner = replica(&redis).await;
    let other = replica(&redis).await;
    let id = owner.start_execution(slow_chain()).await;

    // The other replica knows it as soon as the start was answered.
    let early = other.execution(&id).await;
    assert!(
        matches!(early["status"].as_str(), Some("queued" | "running")),
        "{early}"
    );

    let mut live = other
        .client
        .get(other.url(&format!("/v1/executions/{id}/events")))
        .send()
        .await
        .expect("request sent");
    assert_eq!(live.status().as_u16(), 200);
    let first = read_sse(&mut live, |events| events.len() >= 3).await;
    drop(live);
    // They came live: the run is still going.
    assert_eq!(other.execution(&id).await["status"], "running");

    let last_seen = first.last().expect("events").id;
    let rest = other.read_events(&id, Some(last_seen)).await;
    let all: Vec<SseEvent> = first.iter().chain(&rest).cloned().collect();
    let seqs: Vec<u64> = all.iter().map(|event| event.id).collect();
    assert_eq!(seqs, (1..=16).collect::<Vec<u64>>(), "no gap, no duplicate");
    let mut expected = Vec::new();
    for step in ["one", "two", "three", "four", "five"] {
        expected.push(format!("step_running {step}"));
        expected.push(format!("step_output {step}"));
        expected.push(format!("step_complete {step}"));
    }
    expected.push("workflow_complete".to_owned());
    assert_eq!(kinds(&all), expected);
    for event in &all {
        assert_eq!(event.data["seq"], event.id);
        assert_eq!(event.data["execution_id"], id.as_str());
    }
    assert_eq!(all[1].data["text"], "one\n");
    assert_eq!(all[15].data["status"], "success");

    // Both replicas tell the same final state, the runner's last word (exit codes) included.
    let on_owner = owner
        .wait_for(&id, |execution| execution["status"] == "success")
        .await;
    let on_other = other
        .wait_for(&id, |execution| *execution == on_owner)
        .await;
    assert_eq!(on_other["last_seq"], 16);
    assert_eq!(on_other["steps"][3]["output"], "four");
    assert_eq!(on_other["steps"][3]["exit_code"], 0);

    // A whole replay from the other replica equals what was followed.
    assert_eq!(other.read_events(&id, None).await, all);
    // Nothing follows the last event.
    assert!(other.read_events(&id, Some(16)).await.is_empty());

    // Finished executions expire from the store after the retention.
    let ttl: u64 = redis
        .command(&["PTTL", &format!("kubiya:exec:default:{id}:events")])
        .expect("an answer")
        .trim_start_matches(':')
        .parse()
        .expect("a TTL in milliseconds");
    assert!(ttl > 0 && ttl <= 3_600_000, "{ttl}");
    assert_eq!(
        redis
            .command(&["EXISTS", &format!("kubiya:exec:default:{id}:heartbeat")])
            .as_deref(),
        Some(":0"),
        "a finished execution has no heartbeat"
    );
}

#[actix_rt::test]
async fn an_execution_is_cancelled_through_another_replica() {
    let redis = RedisServer::start();
    let owner = replica(&redis).await;
    let other = replica(&redis).await;
    let id = owner
        .start_execution(json!({"name": "slow", "steps": [
            {"name": "wait", "command": "sleep 30"},
            {"name": "after", "command": "echo never"}
        ]}))
        .await;
    other
        .wait_for(&id, |execution| {
            execution["steps"][0]["status"] == "running"
        })
        .await;

    let (status, body) = other
        .send_json("DELETE", &format!("/v1/executions/{id}"), "")
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (&body["status"], &body["cancel_requested"]),
        (&json!("running"), &json!(true))
    );

    let events = other.read_events(&id, None).await;
    let last = &events.last().expect("events").data;
    assert_eq!(
        (&last["type"], &last["status"]),
        (&json!("workflow_complete"), &json!("cancelled")),
        "{events:?}"
    );
    let on_owner = owner
        .wait_for(&id, |execution| execution["status"] != "running")
        .await;
    assert_eq!(on_owner["status"], "cancelled");
    assert_eq!(on_owner["steps"][1]["status"], "skipped");
}

#[actix_rt::test]
async fn a_tenants_running_executions_are_counted_across_replicas() {
    let redis = RedisServer::start();
    let url = redis.url();
    let limited = |url: String| {
        move |settings: &mut kubiya::config::Settings| {
            settings.store.url = url;
            settings.runner.heartbeat_ms = 100;
            settings.runner.max_concurrent_executions = 1;
        }
    };
    let first = spawn_app_with(limited(url.clone())).await;
    let second = spawn_app_with(limited(url)).await;
    let id = first
        .start_execution(
            json!({"name": "long", "steps": [{"name": "wait", "command": "sleep 30"}]}),
        )
        .await;
    let request =
        json!({"workflow": {"name": "more", "steps": [{"name": "s", "command": "true"}]}});
    let (status, headers, body) = second.post_raw("/v1/executions", &request, &[]).await;
    assert_eq!(status, 429, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");

    let (status, _) = first
        .send_json("DELETE", &format!("/v1/executions/{id}"), "")
        .await;
    assert_eq!(status, 202);
    first
        .wait_for(&id, |execution| execution["status"] == "cancelled")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = second.post_raw("/v1/executions", &request, &[]).await;
        if status == 202 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was never freed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_run_over_mcp_on_one_replica_is_found_and_followed_on_another() {
    let redis = RedisServer::start();
    let owner = replica(&redis).await;
    let other = replica(&redis).await;
    let started = owner
        .mcp_tool(
            "execute_workflow",
            json!({"wait": false, "workflow": slow_chain()}),
        )
        .await;
    assert_eq!(started["isError"], false, "{started}");
    let id = started["structuredContent"]["execution_id"]
        .as_str()
        .expect("an id")
        .to_owned();

    let finished = other
        .wait_for(&id, |execution| execution["status"] == "success")
        .await;
    let followed = other
        .mcp_tool("get_execution", json!({"execution_id": id}))
        .await;
    assert_eq!(followed["isError"], false, "{followed}");
    let view = &followed["structuredContent"];
    assert_eq!(view["status"], "success", "{view}");
    assert_eq!(view["event_count"], finished["last_seq"], "{view}");
    assert_eq!(
        kinds_of_events(&view["events"]),
        kinds_of_events(&json!(
            other
                .read_events(&id, None)
                .await
                .iter()
                .map(|event| event.data.clone())
                .collect::<Vec<_>>()
        )),
        "the same events on both paths"
    );
}

fn kinds_of_events(events: &Value) -> Vec<String> {
    events
        .as_array()
        .into_iter()
        .flatten()
        .map(|event| format!("{} {}", event["seq"], event["type"]))
        .collect()
}

/// Sends `method path` with `key` as bearer; returns status and JSON body.
async fn send_as(app: &TestApp, key: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut response = app
        .client
        .request(method, app.url(path))
        .insert_header(("Authorization", format!("Bearer {key}")))
        .insert_header(("Content-Type", "application/json"))
        .send_body(body.to_owned())
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let body = response.body().await.expect("body read");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[actix_rt::test]
async fn an_execution_is_found_on_another_replica_only_by_its_own_tenant() {
    let redis = RedisServer::start();
    let url = redis.url();
    let keys = vec![
        ApiKeySettings {
            key: "sk-team-a-1234".into(),
            tenant: "team-a".into(),
            ..ApiKeySettings::default()
        },
        ApiKeySettings {
            key: "sk-team-b-5678".into(),
            tenant: "team-b".into(),
            ..ApiKeySettings::default()
        },
    ];
    let configure = |settings: &mut kubiya::config::Settings| {
        settings.store.url.clone_from(&url);
        settings.auth.api_keys.clone_from(&keys);
        settings.runner.heartbeat_ms = 100;
    };
    let owner = spawn_app_with(configure).await;
    let other = spawn_app_with(configure).await;
    let (status, started) = send_as(
        &owner,
        "sk-team-a-1234",
        "POST",
        "/v1/executions",
        &json!({"workflow": {"name": "w", "steps": [{"name": "a", "command": "sleep 1.5"}]}})
            .to_string(),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let id = started["execution_id"].as_str().expect("an id");

    let path = format!("/v1/executions/{id}");
    let (status, body) = send_as(&other, "sk-team-a-1234", "GET", &path, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["execution_id"], id);
    for (method, path) in [
        ("GET", path.clone()),
        ("GET", format!("{path}/events")),
        ("DELETE", path.clone()),
    ] {
        let (status, body) = send_as(&other, "sk-team-b-5678", method, &path, "").await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        helpers::assert_error(&body, "invalid_request_error", "not_found", None);
    }
    // The other tenant's cancel did nothing: the run ends as it would have.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = send_as(&other, "sk-team-a-1234", "GET", &path, "").await;
        if body["status"] != "running" && body["status"] != "queued" {
            assert_eq!(body["status"], "success", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never finished: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn shared_watcher(redis: &RedisServer) -> Addr<ExecutionWatcher> {
    ExecutionWatcher::start_on_own_arbiter(WatcherConfig {
        local: RunOptions {
            allow_unsandboxed: true,
            ..RunOptions::default()
        },
        shared: Some(SharedConfig {
            endpoint: RedisEndpoint {
                url: redis.url(),
                ..RedisEndpoint::default()
            },
            key_prefix: "kubiya".to_owned(),
            heartbeat: Duration::from_millis(100),
            lost_after: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        }),
        ..WatcherConfig::default()
    })
}

#[actix_rt::test]
async fn another_tenant_finds_nothing_on_any_replica() {
    let redis = RedisServer::start();
    let owner = shared_watcher(&redis);
    let other = shared_watcher(&redis);
    let workflow = Workflow::from_value(json!({"name": "w", "steps": [
        {"name": "a", "command": "sleep 1"}
    ]}))
    .expect("a workflow");
    let summary = owner
        .send(StartExecution {
            tenant: "t1".to_owned(),
            workflow,
            params: Map::new(),
            runner: None,
            trace: tracing::Span::none(),
            permit: None,
            library: Vec::new(),
        })
        .await
        .expect("answers")
        .expect("starts");
    let id = summary.execution_id;
    let get = |tenant: &str| GetExecution {
        tenant: tenant.to_owned(),
        execution_id: id.clone(),
    };
    let found = other.send(get("t1")).await.expect("answers");
    assert_eq!(found.expect("found").execution_id, id);
    let hidden = other.send(get("t2")).await.expect("answers");
    assert_eq!(hidden, Err(ExecutionError::NotFound(id.clone())));
    let cancel = other
        .send(CancelExecution {
            tenant: "t2".to_owned(),
            execution_id: id.clone(),
        })
        .await
        .expect("answers");
    assert_eq!(cancel, Err(ExecutionError::NotFound(id.clone())));
    // A crafted id cannot reach into another tenant's keys.
    let crafted = other
        .send(GetExecution {
            tenant: "t2".to_owned(),
            execution_id: format!("x:t1:{id}"),
        })
        .await
        .expect("answers");
    assert!(matches!(crafted, Err(ExecutionError::NotFound(_))));
}

#[actix_rt::test]
async fn an_execution_whose_replica_was_killed_ends_lost_on_the_others() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut owner = ServerProcess::start(
        &[],
        &[
            ("REDIS_URL", url.as_str()),
            ("KUBIYA_RUNNER__HEARTBEAT_MS", "100"),
            ("KUBIYA_RUNNER__LOST_AFTER_MS", "1000"),
        ],
        None,
    );
    let (status, body) = blocking_post(
        &owner.url("/v1/executions"),
        json!({"workflow": {"name": "long", "steps": [
            {"name": "first", "command": "echo started"},
            {"name": "wait", "command": "sleep 20"},
            {"name": "after", "command": "echo never"}
        ]}}),
    );
    assert_eq!(status, 202, "{body}");
    let started: Value = serde_json::from_str(&body).expect("JSON");
    let id = started["execution_id"].as_str().expect("an id").to_owned();

    let b = replica(&redis).await;
    let c = replica(&redis).await;
    b.wait_for(&id, |execution| {
        execution["steps"][1]["status"] == "running"
    })
    .await;
    // Each follower says when it has the three events so far: it is following live.
    let (following, mut live) = tokio::sync::mpsc::channel::<()>(2);
    let follow = |app: &TestApp| {
        let client = app.client.clone();
        let url = app.url(&format!("/v1/executions/{id}/events"));
        let following = following.clone();
        actix_rt::spawn(async move {
            let mut response = client.get(url).send().await.expect("request sent");
            let mut events = read_sse(&mut response, |events| events.len() >= 3).await;
            following.send(()).await.expect("the test waits");
            events.extend(read_sse(&mut response, |_| false).await);
            events
        })
    };
    let on_b = follow(&b);
    let on_c = follow(&c);
    // Both are following before the owner dies.
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(30), live.recv())
            .await
            .expect("both follow within 30 s");
    }

    owner.signal(libc::SIGKILL);
    let killed_at = now_millis();
    owner.child.wait().expect("the owner is reaped");

    let events_b = on_b.await.expect("the follower on b ran");
    let events_c = on_c.await.expect("the follower on c ran");
    assert_eq!(events_b, events_c, "every replica tells the same story");
    let seqs: Vec<u64> = events_b.iter().map(|event| event.id).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<u64>>());
    assert_eq!(
        kinds(&events_b),
        [
            "step_running first",
            "step_output first",
            "step_complete first",
            "step_running wait",
            "workflow_complete"
        ]
    );
    let last = &events_b[4].data;
    assert_eq!(last["status"], "lost");
    assert_eq!(last["error"], LOST_REASON);
    // Not before the heartbeat (renewed every 100 ms, kept 1 s) lapsed.
    let declared_at = last["timestamp"].as_u64().expect("a timestamp");
    assert!(
        declared_at >= killed_at + 800,
        "declared lost {} ms after the kill",
        declared_at.saturating_sub(killed_at)
    );

    assert_eq!(
        redis
            .command(&["XLEN", &format!("kubiya:exec:default:{id}:events")])
            .as_deref(),
        Some(":5"),
        "one lost event, however many replicas noticed"
    );
    for app in [&b, &c] {
        let execution = app.execution(&id).await;
        assert_eq!(execution["status"], "lost", "{execution}");
        assert_eq!(execution["error"], LOST_REASON);
        assert_eq!(execution["last_seq"], 5);
        assert_eq!(execution["steps"][1]["status"], "failed");
        assert_eq!(execution["steps"][2]["status"], "pending");
    }
}

#[actix_rt::test]
async fn events_of_a_redis_outage_reach_it_in_order_once_it_is_back() {
    let mut redis = RedisServer::start();
    // An outage shorter than `lost_after` is not a lost execution.
    let owner = replica_losing_after(&redis, 10_000).await;
    let other = replica_losing_after(&redis, 10_000).await;
    let id = owner.start_execution(slow_chain()).await;
    other
        .wait_for(&id, |execution| {
            execution["steps"][0]["status"] == "running"
        })
        .await;

    redis.stop();
    // Meanwhile the run goes on, on its own replica.
    let on_owner = owner
        .wait_for(&id, |execution| execution["status"] == "success")
        .await;
    let (status, body) = other
        .send_json("GET", &format!("/v1/executions/{id}"), "")
        .await;
    assert_eq!(status, 503, "{body}");
    helpers::assert_error(&body, "server_error", "service_unavailable", None);
    redis.restart();

    let on_other = other
        .wait_for(&id, |execution| *execution == on_owner)
        .await;
    assert_eq!(on_other["last_seq"], 16);
    let events = other.read_events(&id, None).await;
    let seqs: Vec<u64> = events.iter().map(|event| event.id).collect();
    assert_eq!(seqs, (1..=16).collect::<Vec<u64>>(), "no gap, no duplicate");
    assert_eq!(events[15].data["status"], "success");
}

#[actix_rt::test]
async fn without_redis_a_replica_still_runs_its_own_executions() {
    // Nothing listens on this port once the probe is gone.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let app = spawn_app_with(|settings| {
        settings.store.url = format!("redis://127.0.0.1:{port}/0");
    })
    .await;
    let started = Instant::now();
    let id = app
        .start_execution(json!({"name": "w", "steps": [{"name": "a", "command": "echo here"}]}))
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the start does not wait through an outage: {:?}",
        started.elapsed()
    );
    let events = app.read_events(&id, None).await;
    assert_eq!(events.last().expect("events").data["status"], "success");
    assert_eq!(app.execution(&id).await["status"], "success");

    // What only the store could know is unavailable, not unknown.
    let (status, body) = app
        .send_json("GET", "/v1/executions/exec_elsewhere", "")
        .await;
    assert_eq!(status, 503, "{body}");
    helpers::assert_error(&body, "server_error", "service_unavailable", None);
}

fn now_millis() -> u64 {
    kubiya_actors::workflow::run::event::now_millis()
}
