//! Configuration through the real binary: layering (flag > env > file), clear one-line
//! errors with exit status 2, JSON request logs, and the `--help`/`--version` texts.

use std::time::Duration;

use crate::helpers::{ServerProcess, blocking_get, eventually_blocking, kubiya_command};

fn model_of(server: &ServerProcess) -> String {
    let (status, body) = blocking_get(&server.url("/discover"));
    assert_eq!(status, 200);
    body["model"].as_str().unwrap().to_owned()
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file() {
    let dir = tempdir();
    let file = dir.join("kubiya.toml");
    std::fs::write(
        &file,
        "[provider]\nname = \"offline\"\nmodel = \"from-file\"\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let server = ServerProcess::start(&["--config", file], &[], None);
    assert_eq!(model_of(&server), "from-file");
    drop(server);

    let env = [("KUBIYA_PROVIDER__MODEL", "from-env")];
    let server = ServerProcess::start(&["--config", file], &env, None);
    assert_eq!(model_of(&server), "from-env");
    drop(server);

    let server = ServerProcess::start(&["--config", file, "--model", "from-flag"], &env, None);
    assert_eq!(model_of(&server), "from-flag");
}

#[test]
fn provider_auto_detection_uses_the_first_key_variable_and_logs_why() {
    let mut server = ServerProcess::start(&[], &[("GROQ_API_KEY", "gsk-test")], None);
    let chosen = server.wait_for_log(|r| r["message"] == "provider chosen");
    assert_eq!(chosen["provider"], "groq");
    assert!(chosen["reason"].as_str().unwrap().contains("GROQ_API_KEY"));
    let (_, discover) = blocking_get(&server.url("/discover"));
    assert_eq!(discover["provider"], "groq");
    assert_eq!(discover["model"], "llama-3.3-70b-versatile");
    drop(server);

    let server = ServerProcess::start(&[], &[], None);
    let (_, discover) = blocking_get(&server.url("/discover"));
    assert_eq!(discover["provider"], "offline");
}

fn run_failing(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = kubiya_command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_and_status_2() {
    let (code, stderr) = run_failing(&["mcp", "agent", "--port", "0"], &[("LOG_LEVEL", "loud")]);
    assert_eq!(code, 2);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needle in ["log.level", "LOG_LEVEL", "loud", "error", "trace"] {
        assert!(stderr.contains(needle), "{needle} missing from: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");

    let (code, stderr) = run_failing(&["mcp", "agent", "--port", "notaport"], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("notaport") && stderr.contains("--port") && stderr.contains("65535"),
        "{stderr}"
    );

    let (code, stderr) = run_failing(&["mcp", "agent"], &[("KUBIYA_SERVER__PORT", "x")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("server.port") && stderr.contains("KUBIYA_SERVER__PORT"),
        "{stderr}"
    );

    let (code, stderr) = run_failing(
        &["mcp", "agent", "--config", "/nonexistent/kubiya.toml"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/kubiya.toml"), "{stderr}");
}

#[test]
fn boolean_variables_take_the_usual_spellings() {
    for value in ["1", "yes", "true", "0", "no", "off"] {
        let env = [
            ("MCP_DEBUG", value),
            ("KUBIYA_RUNNER__LOCAL__ALLOW_NETWORK", value),
        ];
        let server = ServerProcess::start(&[], &env, None);
        let (status, _) = blocking_get(&server.url("/health"));
        assert_eq!(status, 200, "MCP_DEBUG={value}");
    }
    let (code, stderr) = run_failing(&["mcp", "agent", "--port", "0"], &[("MCP_DEBUG", "maybe")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("MCP_DEBUG") && stderr.contains("yes/no"),
        "{stderr}"
    );
    let output = kubiya_command()
        .args(["mcp", "server"])
        .env("MCP_DEBUG", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_vendor_without_its_key_fails_start_up_naming_the_variable() {
    let (code, stderr) = run_failing(
        &["mcp", "agent", "--provider", "openai", "--port", "0"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("OPENAI_API_KEY"), "{stderr}");
}

#[test]
fn json_logs_have_one_record_per_request() {
    let mut server = ServerProcess::start(&[], &[], None);
    let (status, _) = blocking_get(&server.url("/v1/models"));
    assert_eq!(status, 200);
    let record = server.wait_for_log(|r| r["message"] == "request" && r["path"] == "/v1/models");
    assert_eq!(record["method"], "GET");
    assert_eq!(record["status"], 200);
    assert!(record["duration_ms"].as_f64().is_some());
    assert!(
        record["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 36)
    );
    assert_eq!(record["level"], "INFO");
}

#[test]
fn help_and_version_read_well() {
    let output = kubiya_command().arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        concat!("kubiya ", env!("CARGO_PKG_VERSION"))
    );

    let output = kubiya_command()
        .args(["mcp", "agent", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for option in [
        "--provider",
        "--model",
        "--port",
        "--host",
        "--api-key",
        "--config",
        "offline",
        "8000",
    ] {
        assert!(help.contains(option), "{option} missing from help:\n{help}");
    }
}

/// A fresh directory under the system temp dir, unique to this test run.
pub fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kubiya-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_server_keeps_answering_while_logs_are_json() {
    let mut server = ServerProcess::start(&[], &[("LOG_LEVEL", "debug")], None);
    for _ in 0..3 {
        assert_eq!(blocking_get(&server.url("/health")).0, 200);
    }
    // Each request's log line arrives, whole and JSON (the reader parses every line).
    eventually_blocking(
        "a JSON log line per request",
        Duration::from_secs(10),
        || {
            let logged =
                server.records_where(|r| r["message"] == "request" && r["path"] == "/health");
            (logged == 3).then_some(())
        },
    );
}
