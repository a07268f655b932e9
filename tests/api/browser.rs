//! A real browser against the real binary: chromium, driven by playwright-core
//! (`tests/clients/browser_origins.mjs`), on a page of another origin. Against a server that
//! allows no origins, the page's no-preflight `text/plain` POSTs, its JSON POST and its
//! WebSocket all fail and nothing runs; against one that allows the page's origin, the page
//! calls the API through CORS and reads the answer, its exposed headers and its errors.

use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;

use crate::helpers::ServerProcess;

#[test]
fn a_page_of_another_origin_runs_nothing_and_an_allowed_one_uses_the_api() {
    let page_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let page_origin = format!("http://127.0.0.1:{page_port}");
    let dir = std::env::temp_dir().join(format!("kubiya-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("cors.toml");
    std::fs::write(
        &config,
        format!("[server.cors]\nallowed_origins = [\"{page_origin}\"]\n"),
    )
    .unwrap();
    let unsandboxed = [("KUBIYA_RUNNER__LOCAL__ALLOW_UNSANDBOXED", "true")];
    let mut refusing = ServerProcess::start(&[], &unsandboxed, None);
    let allowing = ServerProcess::start(&["--config", config.to_str().unwrap()], &[], None);

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/browser_origins.mjs"
    );
    let output = Command::new("node")
        .arg(script)
        .arg(refusing.url(""))
        .arg(allowing.url(""))
        .arg(page_port.to_string())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients"))
        .output()
        .unwrap_or_else(|err| panic!("node could not start ({err}); run `make deps`"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser script failed ({}); run `make deps`:\n{}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["jsonPostRead"], false, "{seen}");
    assert_eq!(seen["socketOpened"], false, "{seen}");
    assert_eq!(seen["allowedStatus"], 200, "{seen}");
    assert_eq!(seen["allowedObject"], "chat.completion", "{seen}");
    assert!(seen["allowedSessionHeader"].is_string(), "{seen}");
    assert_eq!(seen["allowedErrorStatus"], 404, "{seen}");
    assert_eq!(seen["allowedErrorCode"], "model_not_found", "{seen}");

    // What the refusing server answered the page, from its request log.
    let answered = |method: &'static str, path: &'static str, status: u64| {
        move |record: &Value| {
            record["message"] == "request"
                && record["method"] == method
                && record["path"] == path
                && record["status"] == status
        }
    };
    // The page's last request to it; the others were logged before.
    refusing.wait_for_log(answered("GET", "/ws/compose", 403));
    let mut count = |method, path, status| refusing.records_where(answered(method, path, status));
    assert_eq!(
        count("POST", "/v1/executions", 403),
        1,
        "the text/plain POST"
    );
    assert_eq!(count("POST", "/compose", 403), 1, "the type-less POST");
    assert_eq!(
        count("OPTIONS", "/v1/executions", 403),
        1,
        "the JSON POST's preflight"
    );
    assert_eq!(count("GET", "/ws/compose", 403), 1, "the WebSocket");
    assert_eq!(
        refusing.records_where(|record| record["message"] == "execution started"),
        0,
        "nothing ran"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
