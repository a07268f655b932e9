//! The memory soak of `make bench`: what clients can make the release binary hold, as resident
//! memory after each load. A fresh server (offline planner, local runner) gets 300 stateless
//! chats of 1 MB each, four at a time (about ten times the session store's 32 MiB byte
//! budget), then one small request for a 100-step workflow whose steps each print 2 MB. The
//! session store and finished executions are bounded by bytes, so memory must level off under
//! the README's ceiling. `make test` runs a shorter guard of the same (`tests/api/memory.rs`).

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use super::{Server, launch, row, rss_mb};

/// The README's ceiling for resident memory after these loads.
const RSS_CEILING_MB: f64 = 150.0;
const CHATS: usize = 300;
const CHAT_BYTES: usize = 1_000_000;
const IN_FLIGHT: usize = 4;

fn start_server() -> Server {
    launch(|command| {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_LEVEL", "warn")
            // Steps run where the bench runs, sandboxed or not: the output is what is measured.
            .env("KUBIYA_RUNNER__LOCAL__ALLOW_UNSANDBOXED", "true");
    })
}

pub async fn run() {
    let server = start_server();
    let pid = server.child.id();
    let base = format!("http://127.0.0.1:{}", server.port);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(300))
        .finish();
    let at_start = rss_mb(pid, "VmRSS:");

    let started = Instant::now();
    let content = "m".repeat(CHAT_BYTES);
    let request = json!({"model": "kubiya-workflow-agent",
                         "messages": [{"role": "user", "content": content}]});
    let chats = (0..IN_FLIGHT).map(|_| {
        let (client, request, url) = (&client, &request, format!("{base}/v1/chat/completions"));
        async move {
            for _ in 0..CHATS / IN_FLIGHT {
                let mut response = client.post(&url).send_json(request).await.expect("chat");
                assert_eq!(response.status().as_u16(), 200);
                response.body().limit(16 << 20).await.expect("chat answer");
            }
        }
    });
    join_all(chats).await;
    let chats_took = started.elapsed();
    let after_chats = rss_mb(pid, "VmRSS:");

    let steps: Vec<Value> = (0..100)
        .map(|index| {
            json!({"name": format!("s{index}"),
                   "command": "head -c 2000000 /dev/zero | tr '\\0' x"})
        })
        .collect();
    let mut response = client
        .post(format!("{base}/v1/executions"))
        .send_json(&json!({"workflow": {"name": "loud", "steps": steps}}))
        .await
        .expect("execution");
    let answer: Value = response.json().await.expect("execution answer");
    let id = answer["execution_id"].as_str().expect("an execution id");
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        let mut response = client
            .get(format!("{base}/v1/executions/{id}"))
            .send()
            .await
            .expect("execution state");
        let state: Value = response.json().limit(64 << 20).await.expect("state");
        if state["finished_at"].is_u64() {
            break state["status"].as_str().unwrap_or_default().to_owned();
        }
        assert!(Instant::now() < deadline, "the workflow did not finish");
        actix_rt::time::sleep(Duration::from_millis(500)).await;
    };
    let after_workflow = rss_mb(pid, "VmRSS:");

    println!("\nmemory soak (a fresh server; resident memory):");
    row(
        "  at start",
        format!("{at_start:.1} MB"),
        String::new(),
        "",
        true,
    );
    row(
        &format!(
            "  after {CHATS} stateless chats of 1 MB ({:.0} s)",
            chats_took.as_secs_f64()
        ),
        format!("{after_chats:.1} MB"),
        String::new(),
        "<= 150 MB",
        after_chats <= RSS_CEILING_MB,
    );
    row(
        &format!("  after 100 steps printing 2 MB each ({status})"),
        format!("{after_workflow:.1} MB"),
        String::new(),
        "<= 150 MB",
        after_workflow <= RSS_CEILING_MB && status == "success",
    );
}
