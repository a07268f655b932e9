//! The API contract: `/openapi.json` describes every route, and `schemathesis` (pinned in
//! `tests/clients/requirements.txt`, installed by `make deps`) sends each operation what the
//! document allows and what it does not, against the real binary, with auth off and on:
//! no answer may be a 5xx or break the document (status, content type, headers, body schema,
//! SSE events included). The run is bounded (`--max-examples`, a fixed seed) to keep
//! `make test` short; `make fuzz` runs it longer and unseeded.

use std::process::Command;

use crate::helpers::{ServerProcess, blocking_get};

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// Runs schemathesis against `server` with `extra` arguments and asserts it passed.
fn schemathesis(server: &ServerProcess, extra: &[&str]) {
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/schemathesis");
    let examples = std::env::var("KUBIYA_CONTRACT_EXAMPLES").unwrap_or_else(|_| "10".into());
    let mut command = Command::new(program);
    command
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &examples])
        .args(["--workers", "2", "--no-shrink", "--request-timeout", "60"])
        .args(extra)
        // Its cache goes where it runs: not into the checkout.
        .current_dir(std::env::temp_dir())
        .env("NO_COLOR", "1");
    if std::env::var("KUBIYA_CONTRACT_UNSEEDED").is_err() {
        command.args(["--seed", "20261206"]);
    }
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{program} could not start ({err}); run `make deps`"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Tested: 30"),
        "every operation was tested:\n{stdout}"
    );
}

#[test]
fn the_document_is_served_and_schemathesis_finds_nothing_with_auth_off() {
    let server = ServerProcess::start(&[], &[], None);
    let (status, document) = blocking_get(&server.url("/openapi.json"));
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    schemathesis(&server, &[]);
}

#[test]
fn schemathesis_finds_nothing_with_auth_on() {
    let dir = std::env::temp_dir().join(format!("kubiya-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("auth.toml");
    std::fs::write(
        &config,
        "[[auth.api_keys]]\nkey = \"sk-contract-test\"\ntenant = \"contract\"\n",
    )
    .unwrap();
    let server = ServerProcess::start(&["--config", config.to_str().unwrap()], &[], None);
    // The document is open; everything else needs the key.
    let (status, _) = blocking_get(&server.url("/openapi.json"));
    assert_eq!(status, 200);
    let (status, body) = blocking_get(&server.url("/v1/models"));
    assert_eq!(status, 401, "{body}");
    schemathesis(
        &server,
        &["--header", "Authorization: Bearer sk-contract-test"],
    );
    // And without the key every answer still keeps the document (401 in OpenAI's shape).
    schemathesis(&server, &[]);
    std::fs::remove_dir_all(&dir).unwrap();
}
