//! Memory under what clients can make it hold, measured on the real binary: 100 stateless
//! chats of 1 MB each (three times the session store's 32 MiB budget), then one small request for a 100-step workflow whose steps each print
//! 2 MB. The session store and the finished execution are bounded by bytes, so resident
//! memory stays under the ceiling the README documents (a generous bound: this asserts the
//! growth is bounded, not a timing). Prints the figures it measured.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{ServerProcess, blocking_post};

/// The README's documented ceiling for resident memory after these loads.
const RSS_CEILING_MB: u64 = 150;

fn rss_mb(server: &ServerProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("the server's /proc status");
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .expect("VmRSS");
    kb / 1024
}

#[test]
fn large_chats_and_a_loud_workflow_leave_memory_bounded() {
    let server = ServerProcess::start(
        &[],
        &[("KUBIYA_RUNNER__LOCAL__ALLOW_UNSANDBOXED", "true")],
        None,
    );
    let url = server.url("/v1/chat/completions");
    let before = rss_mb(&server);
    let started = Instant::now();
    let content = "m".repeat(1_000_000);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            let content = content.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let (status, body) = blocking_post(
                        &url,
                        json!({"model": "kubiya-workflow-agent",
                               "messages": [{"role": "user", "content": content}]}),
                    );
                    assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let after_chats = rss_mb(&server);
    let chats_took = started.elapsed();

    let steps: Vec<_> = (0..100)
        .map(|index| json!({"name": format!("s{index}"), "command": "head -c 2000000 /dev/zero | tr '\\0' x"}))
        .collect();
    let (status, body) = blocking_post(
        &server.url("/v1/executions"),
        json!({"workflow": {"name": "loud", "steps": steps}}),
    );
    assert_eq!(status, 202, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(240);
    let snapshot = loop {
        let snapshot = get_large(&server.url(&format!("/v1/executions/{id}")));
        if snapshot["finished_at"].is_u64() {
            break snapshot;
        }
        assert!(Instant::now() < deadline, "the workflow did not finish");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(snapshot["status"], "success", "{}", snapshot["error"]);
    let kept: usize = snapshot["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["output"].as_str().map_or(0, str::len))
        .sum();
    assert!(
        kept <= 4 * 1024 * 1024,
        "the execution keeps {kept} bytes of output"
    );
    let after_workflow = rss_mb(&server);
    println!(
        "RSS: {before} MB at start, {after_chats} MB after 100 chats of 1 MB, \
         {after_workflow} MB after a 100-step workflow printing 2 MB a step \
         (ceiling {RSS_CEILING_MB} MB); the chats took {chats_took:?}"
    );
    assert!(
        after_chats < RSS_CEILING_MB,
        "{after_chats} MB after the chats"
    );
    assert!(
        after_workflow < RSS_CEILING_MB,
        "{after_workflow} MB after the workflow"
    );
}

/// A GET whose JSON answer may be larger than awc's default body limit.
fn get_large(url: &str) -> serde_json::Value {
    let url = url.to_owned();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut response = awc::Client::new().get(&url).send().await.expect("sent");
            let body = response.body().limit(64 * 1024 * 1024).await.expect("body");
            serde_json::from_slice(&body).expect("JSON")
        })
    })
    .join()
    .expect("the request thread")
}
