//! The web console at `/`, driven in a real browser: Debian's `chromium` under
//! `playwright-core` (pinned in `tests/clients`, run by `tests/clients/console.mjs`). Each
//! scenario prints what the user saw; these tests assert on it. The health check scenario
//! writes the README's screenshots: into the test's scratch directory, or into
//! `SCREENSHOTS_DIR` (`make screenshots` points it at `docs/screenshots/`), so that a test
//! run leaves the checkout as it was. Also, without a browser: what
//! the page's headers allow, and that the page is open while the API behind it is not.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::clients::run_client;
use crate::helpers::{TestApp, spawn_app, spawn_app_against, spawn_app_with};
use crate::mock_upstream::{MockUpstream, Reply, openai_text_stream, validate_run_answer};
use crate::tenants::key;

fn screenshots_dir() -> PathBuf {
    let dir = std::env::var_os("SCREENSHOTS_DIR").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("the screenshots directory");
    dir
}

/// Runs one browser scenario against `app` and returns what the page showed; a scenario that
/// hit a timeout or a script error fails the test with what was on the page then.
async fn browse(scenario: &str, app: &TestApp, extra: &[&str]) -> Value {
    let mut args = vec![
        "console.mjs".to_owned(),
        scenario.to_owned(),
        app.address.clone(),
        screenshots_dir().display().to_string(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let seen = run_client("node", args).await;
    assert!(seen.get("failure").is_none(), "{seen:#}");
    assert_eq!(seen["problems"], json!([]), "errors in the page: {seen:#}");
    seen
}

fn states(nodes: &Value) -> Vec<(String, String)> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            (
                node["name"].as_str().unwrap().to_owned(),
                node["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn all(names: &[&str], state: &str) -> Vec<(String, String)> {
    names
        .iter()
        .map(|name| ((*name).to_owned(), state.to_owned()))
        .collect()
}

const HEALTH_STEPS: [&str; 5] = ["uptime", "load", "memory", "root-disk", "summary"];

#[actix_rt::test]
async fn a_health_check_asked_for_approved_and_run_lights_up_every_node() {
    let app = spawn_app().await;
    let seen = browse("health", &app, &[]).await;
    assert_eq!(seen["title"], "Kubiya agent console");
    // The approval button takes the focus, so a keyboard user answers at once.
    assert_eq!(seen["approveFocused"], true, "{seen:#}");
    assert_eq!(states(&seen["nodes"]), all(&HEALTH_STEPS, "succeeded"));
    for node in seen["nodes"].as_array().unwrap() {
        // State in words and a duration, not colour alone.
        let label = node["label"].as_str().unwrap();
        assert!(
            label.contains(": succeeded, ") && label.ends_with('s'),
            "{label}"
        );
        assert!(
            node["text"].as_str().unwrap().contains("✓ succeeded"),
            "{node}"
        );
    }
    assert!(
        seen["status"]
            .as_str()
            .unwrap()
            .starts_with("succeeded · exec_")
    );
    // Opened with the keyboard: the last step's output.
    assert_eq!(seen["summary"]["title"], "Step summary");
    assert_eq!(seen["summary"]["output"], "health check complete");
    assert!(
        seen["summary"]["state"]
            .as_str()
            .unwrap()
            .contains("after uptime, load, memory, root-disk")
    );
    assert_eq!(seen["toolOpen"], json!([false, true]));
    let chat = &seen["chat"];
    assert_eq!(
        chat["messages"],
        json!(["message user", "message assistant"])
    );
    let tools = chat["tools"].as_array().unwrap();
    assert!(
        tools[0]
            .as_str()
            .unwrap()
            .starts_with("validate_workflow done"),
        "{tools:?}"
    );
    assert!(
        tools
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("execute_workflow done"),
        "{tools:?}"
    );
    // The session survives a reload: the same conversation, the same finished graph.
    let after = &seen["afterReload"];
    assert!(
        after["chat"]["text"]
            .as_str()
            .unwrap()
            .contains("Create and run a health check")
    );
    assert!(
        after["chat"]["text"]
            .as_str()
            .unwrap()
            .contains("finished with status success")
    );
    assert_eq!(states(&after["nodes"]), all(&HEALTH_STEPS, "succeeded"));
    assert!(
        after["history"]
            .as_str()
            .unwrap()
            .contains("system-health-check: success")
    );
    for shot in ["console-chat.png", "console-graph.png"] {
        let bytes = std::fs::read(screenshots_dir().join(shot)).expect("the screenshot");
        assert!(bytes.starts_with(b"\x89PNG"), "{shot}");
    }
}

#[actix_rt::test]
async fn a_run_still_going_when_the_page_reloads_resumes_from_its_last_event() {
    let mock = crate::ui_chat::slow_workflow_upstream();
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let seen = browse("reload", &app, &[]).await;
    assert_eq!(seen["askedAgain"], "waiting for your approval");
    assert_eq!(
        states(&seen["beforeReload"]),
        vec![
            ("wait".into(), "running".into()),
            ("done".into(), "pending".into())
        ]
    );
    // Right after the reload the graph shows the run as it is, not from scratch.
    assert_ne!(
        states(&seen["afterReloadFirst"])[0].1,
        "pending",
        "{seen:#}"
    );
    assert_eq!(states(&seen["nodes"]), all(&["wait", "done"], "succeeded"));
    assert_eq!(seen["done"]["output"], "resumed");
    // The page read the execution's state, then its events after the last one it held.
    let resumed_after = seen["eventRequests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|id| id.parse::<u64>().ok())
        .max()
        .expect("an events request with Last-Event-ID");
    assert!(resumed_after >= 1, "{seen:#}");
    // Its panel still lists the step's events from before the reload.
    assert!(
        seen["done"]["events"][0]
            .as_str()
            .unwrap()
            .contains("step_running")
    );
    assert!(
        seen["chat"]["text"]
            .as_str()
            .unwrap()
            .contains("The slow workflow is done.")
    );
}

#[actix_rt::test]
async fn a_failing_step_shows_its_error_and_what_the_workflow_printed_stays_text() {
    // An attacker's strings in a step's stderr and in the model's answer: shown, never run.
    let workflow = json!({"name": "broken", "steps": [
        {"name": "prepare", "command": "echo ready"},
        {"name": "explode", "command": "echo '<img src=x onerror=window.pwned=1>' >&2; exit 3"},
        {"name": "after", "command": "echo never"},
    ]});
    let mut replies = validate_run_answer(&workflow, "unused");
    replies.pop();
    replies.push(Reply::sse(openai_text_stream(
        "It failed: <script>window.pwned=2</script><img src=x onerror=\"window.pwned=3\">",
    )));
    let mock = MockUpstream::start(replies);
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let seen = browse("failure", &app, &[]).await;
    assert_eq!(
        states(&seen["nodes"]),
        vec![
            ("prepare".into(), "succeeded".into()),
            ("explode".into(), "failed".into()),
            ("after".into(), "skipped".into()),
        ]
    );
    let panel = &seen["explode"];
    assert!(
        panel["state"].as_str().unwrap().starts_with("✗ failed"),
        "{panel}"
    );
    let error = panel["error"].as_str().unwrap();
    assert!(error.contains("exit"), "{error}");
    assert!(
        error.contains("<img src=x onerror=window.pwned=1>"),
        "{error}"
    );
    assert!(
        panel["events"][1].as_str().unwrap().contains("step_failed"),
        "{panel}"
    );
    assert!(seen["status"].as_str().unwrap().starts_with("failed"));
    assert!(
        seen["chat"]["text"]
            .as_str()
            .unwrap()
            .contains("<script>window.pwned=2</script>")
    );
    assert_eq!(
        seen["injected"],
        json!({"pwned": null, "images": 0, "scripts": 1})
    );
}

#[actix_rt::test]
async fn a_running_steps_output_shows_live_in_its_panel_as_text() {
    // A line (with markup an attacker would like run), a pause, many more lines.
    let workflow = json!({"name": "talking", "steps": [{
        "name": "talk",
        "command": "echo '<img src=x onerror=window.pwned=4> first line'; sleep 6; seq 1 300; echo second line",
    }]});
    let mock = MockUpstream::start(validate_run_answer(&workflow, "It talked."));
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let seen = browse("live", &app, &[]).await;
    let running = &seen["whileRunning"];
    assert_eq!(running["state"], "running", "{seen:#}");
    assert_eq!(
        running["output"],
        "<img src=x onerror=window.pwned=4> first line\n"
    );
    assert_eq!(running["elements"], 0, "text, never HTML");
    assert_eq!(seen["afterReload"]["state"], "running", "{seen:#}");
    assert!(
        seen["afterReload"]["output"]
            .as_str()
            .unwrap()
            .starts_with("<img src=x onerror=window.pwned=4> first line\n"),
        "{seen:#}"
    );
    let finished = seen["finished"]["output"].as_str().unwrap();
    assert!(finished.starts_with("<img src=x onerror=window.pwned=4> first line\n1\n2\n"));
    assert!(finished.ends_with("300\nsecond line"), "{finished}");
    assert_eq!(seen["scrolledToEnd"], true);
    assert_eq!(seen["injected"], json!({"pwned": null, "images": 0}));
}

#[actix_rt::test]
async fn a_step_that_will_be_retried_shows_retrying_between_its_attempts() {
    let workflow = json!({"name": "flaky", "steps": [{
        "name": "flaky", "command": "echo trying; exit 1",
        // The retrying state lasts the interval: long enough for a browser on a loaded
        // machine to render it between the two attempts.
        "retryPolicy": {"limit": 1, "intervalSec": 4},
    }]});
    let mock = MockUpstream::start(validate_run_answer(&workflow, "It kept failing."));
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let seen = browse("retry", &app, &[]).await;
    let retrying = &seen["retrying"][0];
    assert!(
        retrying["text"].as_str().unwrap().contains("↻ retrying"),
        "{retrying}"
    );
    assert!(
        seen["flaky"]["state"]
            .as_str()
            .unwrap()
            .starts_with("✗ failed")
    );
    let events: Vec<&str> = seen["flaky"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            let event = event.as_str().unwrap();
            let kind = &event[event.find("step_").expect("an event type")..];
            kind.split(':').next().unwrap()
        })
        .collect();
    assert_eq!(
        events,
        ["step_running", "step_failed", "step_running", "step_failed"],
        "{seen:#}"
    );
}

#[actix_rt::test]
async fn a_running_execution_is_cancelled_from_the_page() {
    let workflow = json!({"name": "long", "steps": [{"name": "long", "command": "sleep 30"}]});
    let mock = MockUpstream::start(validate_run_answer(&workflow, "Stopped."));
    let app = spawn_app_against(&mock.base(), |_| {}).await;
    let seen = browse("cancel", &app, &[]).await;
    assert!(
        seen["status"].as_str().unwrap().starts_with("cancelled"),
        "{seen:#}"
    );
    assert_ne!(states(&seen["nodes"])[0].1, "succeeded");
    assert_eq!(seen["cancelHidden"], true);
}

#[actix_rt::test]
async fn with_api_keys_the_page_asks_for_one_and_keeps_it_in_the_tab_only() {
    let app = spawn_app_with(|settings| {
        settings.auth.api_keys = vec![key("sk-console", "team-console"), key("sk-other", "other")];
    })
    .await;
    let workflow =
        json!({"name": "theirs", "steps": [{"name": "secret", "command": "echo theirs"}]});
    let (status, _, started) = app
        .post_raw(
            "/v1/executions",
            &json!({"workflow": workflow}),
            &[("authorization", "Bearer sk-other")],
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let started: Value = serde_json::from_str(&started).unwrap();
    let theirs = started["execution_id"].as_str().unwrap();
    let seen = browse("auth", &app, &["sk-console", theirs]).await;
    assert_eq!(seen["askedForKey"], "This server needs an API key.");
    assert!(
        seen["wrongKey"]
            .as_str()
            .unwrap()
            .contains("Incorrect API key")
    );
    // Proposed, not run: the graph's own Run button starts it.
    assert_eq!(
        states(&seen["planned"]),
        all(&["filesystems", "largest-entries"], "pending")
    );
    assert_eq!(
        states(&seen["nodes"]),
        all(&["filesystems", "largest-entries"], "succeeded")
    );
    assert_eq!(seen["storage"]["session"], json!(["kubiya.apiKey"]));
    let local = seen["storage"]["local"].to_string();
    assert!(!local.contains("sk-console"), "{local}");
    assert!(
        seen["workflows"]
            .as_str()
            .unwrap()
            .contains("disk-usage-report")
    );
    assert!(seen["history"].as_str().unwrap().contains("exec_"));
    assert_eq!(
        states(&seen["byId"]["nodes"]),
        all(&["filesystems", "largest-entries"], "succeeded")
    );
    // Another tenant's execution is not found, exactly like one that never existed.
    assert!(
        seen["foreign"]["status"]
            .as_str()
            .unwrap()
            .contains(&format!("No execution found with id '{theirs}'")),
        "{seen:#}"
    );
    assert_eq!(seen["foreign"]["nodes"], json!([]));
}

/// A console behind a domain name: with API keys its page counts as the service's own
/// (a DNS-rebinding page would have no key); with auth off it is refused until its origin
/// is configured, since that page could be anyone's.
#[actix_rt::test]
async fn a_console_opened_by_a_domain_name_works_with_api_keys_and_is_refused_without() {
    let app = spawn_app_with(|settings| {
        settings.auth.api_keys = vec![key("sk-domain", "team-domain")];
    })
    .await;
    let seen = browse("domain", &app, &["sk-domain"]).await;
    assert_eq!(
        seen["origin"],
        app.address.replace("127.0.0.1", "console.example.test")
    );
    assert_eq!(
        states(&seen["nodes"]),
        all(&["filesystems", "largest-entries"], "succeeded")
    );

    let open = spawn_app().await;
    let seen = browse("domain", &open, &[]).await;
    let refused = seen["refused"].as_str().unwrap();
    assert!(
        refused.contains("are not allowed") && refused.contains("server.cors.allowed_origins"),
        "{refused}"
    );
}

#[actix_rt::test]
async fn the_page_is_served_from_the_binary_locked_down_by_its_headers() {
    let app = spawn_app_with(|settings| {
        settings.auth.api_keys = vec![key("sk-console", "team-console")];
    })
    .await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let mut response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let headers = response.headers().clone();
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with(kind));
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
        assert!(policy.contains("frame-ancestors 'none'") && policy.contains("connect-src 'self'"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = response.body().await.unwrap();
        // Nothing from elsewhere: no other origin named by the page or its assets.
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("https://") || path == "/console/app.js",
            "{path}"
        );
    }
    let (status, _, _) = app.get_json("/v1/sessions/anything").await;
    assert_eq!(status, 401, "the API behind the page still needs a key");
    let mut page = app.client.get(app.url("/")).send().await.unwrap();
    let html = String::from_utf8(page.body().await.unwrap().to_vec()).unwrap();
    assert!(!html.contains("<script>"), "no inline script: {html}");
    assert!(html.contains(r#"<script src="/console/app.js" defer></script>"#));
}

#[actix_rt::test]
async fn an_execution_names_what_each_step_waits_for() {
    let app = spawn_app().await;
    let workflow = json!({"name": "shape", "type": "graph", "steps": [
        {"name": "a", "command": "true"},
        {"name": "b", "command": "true", "depends": ["a"]},
        {"name": "c", "command": "true", "depends": ["a", "b"]},
    ]});
    let (status, _, started) = app
        .post_raw("/v1/executions", &json!({"workflow": workflow}), &[])
        .await;
    assert_eq!(status, 202, "{started}");
    let started: Value = serde_json::from_str(&started).unwrap();
    let id = started["execution_id"].as_str().unwrap();
    let (_, _, snapshot) = app.get_json(&format!("/v1/executions/{id}")).await;
    let depends: Vec<Value> = snapshot["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["depends"].clone())
        .collect();
    assert_eq!(depends, vec![json!([]), json!(["a"]), json!(["a", "b"])]);
    let chain = json!({"name": "chained", "steps": [
        {"name": "one", "command": "true"}, {"name": "two", "command": "true"},
    ]});
    let (_, _, started) = app
        .post_raw("/v1/executions", &json!({"workflow": chain}), &[])
        .await;
    let started: Value = serde_json::from_str(&started).unwrap();
    let (_, _, snapshot) = app
        .get_json(&format!(
            "/v1/executions/{}",
            started["execution_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(snapshot["steps"][1]["depends"], json!(["one"]));
}

/// What the page reads after a reload to ask again: the session names the run waiting for
/// an answer, with the tool call the transcript holds, until it is answered.
#[actix_rt::test]
async fn a_session_names_the_run_waiting_for_approval_until_it_is_answered() {
    let app = spawn_app().await;
    let ask = json!({"model": "kubiya-workflow-agent", "require_approval": true,
        "messages": [{"role": "user", "content": "Check the health of this system and run it"}]});
    let (status, headers, body) = app.post_raw("/v1/chat/completions", &ask, &[]).await;
    assert_eq!(status, 200, "{body}");
    let session = headers.get("x-session-id").unwrap().to_str().unwrap();
    let path = format!("/v1/sessions/{session}");
    let (_, _, read) = app.get_json(&path).await;
    let pending = &read["pending_approval"];
    assert!(
        pending["approval_id"]
            .as_str()
            .unwrap()
            .starts_with("approval_"),
        "{read}"
    );
    assert_eq!(pending["tool_name"], "execute_workflow");
    let calls: Vec<&Value> = read["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|message| message["tool_calls"].as_array().into_iter().flatten())
        .map(|call| &call["id"])
        .collect();
    assert_eq!(calls.last().unwrap(), &&pending["tool_call_id"]);

    let answer = json!({"model": "kubiya-workflow-agent",
        "messages": [{"role": "user", "content": "no"}]});
    let (status, _, body) = app
        .post_raw(
            "/v1/chat/completions",
            &answer,
            &[("x-session-id", session)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, read) = app.get_json(&path).await;
    assert_eq!(read["pending_approval"], Value::Null);
}
