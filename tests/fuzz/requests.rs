//! Request bodies through the real HTTP layer: mutated valid bodies for the routes that
//! parse JSON, sent to the application running in-process. No answer may be a 5xx, and every
//! refusal must be a JSON error in OpenAI's shape.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use kubiya::config::Settings;
use kubiya::provider_setup::ProviderSetup;
use kubiya::startup::Application;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::inputs::{config, mutated};

/// The port of one application shared by every case, started on a thread of its own.
fn server_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let (sender, port) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let mut settings = Settings::default();
                settings.server.host = "127.0.0.1".into();
                settings.server.port = 0;
                settings.server.workers = 1;
                settings.provider.actors = 1;
                let app = Application::build(&settings, &ProviderSetup::offline())
                    .expect("the app builds");
                sender.send(app.port()).unwrap();
                app.run_until_stopped().await.unwrap();
            });
        });
        port.recv().expect("the app started")
    })
}

/// POSTs `body` as JSON and answers the status and the body.
fn post(path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let port = server_port();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("the whole answer");
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a response head");
    let status = String::from_utf8_lossy(&response[..split])
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status");
    (status, response[split + 4..].to_vec())
}

fn check(path: &str, body: &[u8]) {
    let (status, answer) = post(path, body);
    assert!(
        status < 500,
        "{path} answered {status} to {:?}",
        String::from_utf8_lossy(body)
    );
    if status >= 400 {
        let error: Value = serde_json::from_slice(&answer).unwrap_or_else(|_| {
            panic!(
                "{path} {status}: not JSON: {:?}",
                String::from_utf8_lossy(&answer)
            )
        });
        let fields = error["error"].as_object().expect("an error object");
        assert!(
            ["message", "type", "param", "code"]
                .iter()
                .all(|field| fields.contains_key(*field)),
            "{error}"
        );
    }
}

fn chat_seeds() -> Vec<Vec<u8>> {
    [
        json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": "Check disk usage"}]}),
        json!({"model": "kubiya-workflow-agent", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "system", "content": "be brief"},
                            {"role": "user", "content": [{"type": "text", "text": "hello"}]}]}),
        json!({"model": "kubiya-workflow-agent", "format": "vercel", "session_id": "s-1", "user_id": "u@x",
               "messages": [{"role": "user", "content": "hi"},
                            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                              "function": {"name": "validate_workflow", "arguments": "{\"workflow\": {}}"}}]},
                            {"role": "tool", "tool_call_id": "c1", "content": "{\"valid\": false}"},
                            {"role": "user", "content": "again"}]}),
    ]
    .iter()
    .map(|body| body.to_string().into_bytes())
    .collect()
}

fn compose_seeds() -> Vec<Vec<u8>> {
    [
        json!({"task": "Say hello", "stream": false}),
        json!({"task": "Back up a directory", "mode": "plan", "stream_format": "vercel",
               "context": {"context.preferred_runner": "local", "constraints": ["fast"]},
               "parameters": {"DIR": "/srv"}}),
        json!({"task": "Check an endpoint", "stream_format": null, "session_id": "c-1"}),
    ]
    .iter()
    .map(|body| body.to_string().into_bytes())
    .collect()
}

fn validate_seeds() -> Vec<Vec<u8>> {
    [
        json!({"workflow": {"name": "w", "type": "graph", "params": {"N": "1"},
               "steps": [{"name": "a", "command": "echo ${N}", "output": "A"},
                         {"name": "b", "depends": ["a"], "command": "echo ${A}",
                          "retryPolicy": {"limit": 2, "intervalSec": 1}}]}}),
        json!({"workflow": "name: y\nsteps:\n  - name: one\n    command: echo 1\n  - name: two\n    script: |\n      echo 2\n"}),
    ]
    .iter()
    .map(|body| body.to_string().into_bytes())
    .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn chat_bodies(body in mutated(chat_seeds())) {
        check("/v1/chat/completions", &body);
    }

    #[test]
    fn compose_bodies(body in mutated(compose_seeds())) {
        check("/compose", &body);
    }

    #[test]
    fn workflow_bodies(body in mutated(validate_seeds())) {
        check("/v1/workflows/validate", &body);
    }
}
