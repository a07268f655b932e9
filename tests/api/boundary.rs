//! The service boundary, attacked as a web page, a careless client and a slow one would:
//! cross-origin requests get 415/403 and run nothing, CORS works for configured origins,
//! session ids are bounded, WebSocket misuse gets its close code, slow bodies are cut off,
//! oversized headers get an OpenAI-shaped 431, and made-up methods do not grow `/metrics`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use actix_ws::Item;
use awc::ws::{CloseCode, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, assert_error, assert_invalid, spawn_app, spawn_app_with};

/// A workflow whose one step would run on this host.
fn echo_workflow() -> Value {
    json!({"name": "pwned", "steps": [{"name": "run", "command": "echo pwned"}]})
}

/// Sends `head` (without the final blank line) and `body` over a fresh connection to the
/// server and returns the status and the parsed JSON body.
fn raw_request(port: u16, head: &str, body: &[u8]) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(b"\r\n\r\n").unwrap();
    stream.write_all(body).unwrap();
    read_response(&mut stream)
}

fn read_response(stream: &mut TcpStream) -> (u16, String, Value) {
    let mut response = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                response.extend_from_slice(&buffer[..read]);
                if complete(&response) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (
        status,
        head.to_owned(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// A response with a content-length whose body has fully arrived.
fn complete(response: &[u8]) -> bool {
    let text = String::from_utf8_lossy(response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|len| len.trim().parse::<usize>().unwrap_or(0))
        })
        .is_some_and(|len| body.len() >= len)
}

fn post_head(port: u16, path: &str, headers: &[&str], body_len: usize) -> String {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {body_len}\r\nConnection: close"
    );
    for header in headers {
        head.push_str("\r\n");
        head.push_str(header);
    }
    head
}

fn executions_started(server: &mut ServerProcess) -> usize {
    server.records_where(|record| record["message"] == "execution started")
}

#[test]
fn cross_origin_pages_cannot_start_executions_or_composes_on_the_real_binary() {
    let mut server = ServerProcess::start(
        &[],
        &[("KUBIYA_RUNNER__LOCAL__ALLOW_UNSANDBOXED", "true")],
        None,
    );
    let port = server.port;
    let body = json!({"workflow": echo_workflow()}).to_string();
    // What a page on any site can send without a preflight: a text/plain body.
    for path in ["/v1/executions", "/compose"] {
        let (status, _, error) = raw_request(
            port,
            &post_head(
                port,
                path,
                &["Origin: https://evil.example", "Content-Type: text/plain"],
                body.len(),
            ),
            body.as_bytes(),
        );
        assert_eq!(status, 403, "{path}: {error}");
        assert_error(&error, "permission_error", "origin_not_allowed", None);
        // Even with no Origin at all, a text/plain or type-less body is refused.
        for content_type in ["Content-Type: text/plain", "X-No-Type: 1"] {
            let (status, _, error) = raw_request(
                port,
                &post_head(port, path, &[content_type], body.len()),
                body.as_bytes(),
            );
            assert_eq!(status, 415, "{path} {content_type}: {error}");
            assert_error(
                &error,
                "invalid_request_error",
                "unsupported_media_type",
                None,
            );
        }
    }
    // JSON from a foreign origin (after a preflight the browser would not get) is 403 too.
    let (status, _, _) = raw_request(
        port,
        &post_head(
            port,
            "/v1/executions",
            &[
                "Origin: https://evil.example",
                "Content-Type: application/json",
            ],
            body.len(),
        ),
        body.as_bytes(),
    );
    assert_eq!(status, 403);
    let (status, _, _) = raw_request(
        port,
        &format!(
            "OPTIONS /v1/executions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close"
        ),
        b"",
    );
    assert_eq!(status, 403, "no preflight for a foreign origin");
    // A WebSocket opened by a foreign page is refused at the handshake.
    let (status, _, error) = raw_request(
        port,
        &format!(
            "GET /ws/compose HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: https://evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
        ),
        b"",
    );
    assert_eq!(status, 403, "{error}");
    assert_eq!(executions_started(&mut server), 0, "nothing ran");

    // The control: the same request from a non-browser client runs.
    let (status, _, accepted) = raw_request(
        port,
        &post_head(
            port,
            "/v1/executions",
            &["Content-Type: application/json"],
            body.len(),
        ),
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{accepted}");
    server.wait_for_log(|record| record["message"] == "execution started");
    assert_eq!(executions_started(&mut server), 1);
}

#[test]
fn with_auth_off_the_server_listens_on_loopback_unless_told_otherwise() {
    let mut command = crate::helpers::kubiya_command();
    let mut child = command
        .args(["mcp", "agent", "--port", "0"])
        .env("LOG_FORMAT", "json")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubiya starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let listening = loop {
        let line = lines.next().expect("a log line").unwrap();
        let record: Value = serde_json::from_str(&line).unwrap();
        if record["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("listening"))
        {
            break record;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(listening["host"], "127.0.0.1", "{listening}");

    // Given explicitly, 0.0.0.0 is kept, with a warning that names the risk.
    let mut open = ServerProcess::start_with_host("0.0.0.0", &[], &[]);
    let warning = open.wait_for_log(|record| {
        record["level"] == "WARN"
            && record["message"]
                .as_str()
                .is_some_and(|message| message.contains("run workflows"))
    });
    assert_eq!(warning["host"], "0.0.0.0");
    let (status, _) = crate::helpers::blocking_get(&open.url("/health"));
    assert_eq!(status, 200);
}

#[test]
fn a_body_sent_a_byte_at_a_time_is_cut_off_with_408() {
    let server = ServerProcess::start(&[], &[("KUBIYA_SERVER__BODY_TIMEOUT_SECS", "2")], None);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let head = post_head(
        server.port,
        "/v1/chat/completions",
        &["Content-Type: application/json"],
        1000,
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(b"\r\n\r\n{").unwrap();
    let started = Instant::now();
    let writer = stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let mut writer = writer;
        // The pauses are the scenario: a body trickled slower than the body timeout allows.
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(500));
            if writer.write_all(b" ").is_err() {
                break;
            }
        }
    });
    let (status, _, error) = read_response(&mut stream);
    assert_eq!(status, 408, "{error}");
    assert_error(&error, "invalid_request_error", "request_timeout", None);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(stream);
    trickle.join().unwrap();
}

#[test]
fn headers_over_the_limit_get_431_in_the_openai_shape() {
    let server = ServerProcess::start(&[], &[], None);
    let big = "a".repeat(40 * 1024);
    let (status, _, error) = raw_request(
        server.port,
        &format!(
            "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: {big}\r\nConnection: close"
        ),
        b"",
    );
    assert_eq!(status, 431);
    assert_error(&error, "invalid_request_error", "headers_too_large", None);
}

/// Heads too large for the HTTP parser itself (past 128 KiB, or more than 96 fields) are
/// refused before any middleware runs; they get the same OpenAI-shaped 431, also when they
/// follow an answered request on a kept-alive connection.
#[test]
fn heads_too_large_for_the_parser_get_431_in_the_openai_shape() {
    let server = ServerProcess::start(&[], &[], None);
    let megabyte = "a".repeat(1024 * 1024);
    let (status, head, error) = raw_request(
        server.port,
        &format!("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: {megabyte}"),
        b"",
    );
    assert_eq!(status, 431, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_error(&error, "invalid_request_error", "headers_too_large", None);

    let many: String = (0..120).map(|i| format!("\r\nX-Field-{i}: v")).collect();
    let (status, _, error) = raw_request(
        server.port,
        &format!("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1{many}"),
        b"",
    );
    assert_eq!(status, 431);
    assert_error(&error, "invalid_request_error", "headers_too_large", None);

    // A first request answered, then an oversized one on the same connection.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (status, _, health) = read_response(&mut stream);
    assert_eq!(status, 200, "{health}");
    stream
        .write_all(
            format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: {megabyte}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let (status, _, error) = read_response(&mut stream);
    assert_eq!(status, 431);
    assert_error(&error, "invalid_request_error", "headers_too_large", None);
}

#[actix_rt::test]
async fn cors_preflight_and_answers_for_an_allowed_origin() {
    let app = spawn_app_with(|settings| {
        settings.server.cors.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let response = app
        .client
        .request(awc::http::Method::OPTIONS, app.url("/v1/chat/completions"))
        .insert_header(("Origin", "https://app.example.com"))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .insert_header((
            "Access-Control-Request-Headers",
            "content-type, authorization",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert!(header("access-control-allow-methods").contains("POST"));
    assert!(header("access-control-allow-headers").contains("content-type"));
    assert!(header("access-control-allow-headers").contains("authorization"));

    let (status, headers, _) = app
        .post_raw(
            "/v1/chat/completions",
            &json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": "hello"}]}),
            &[("Origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
    assert!(
        headers
            .get("access-control-expose-headers")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("x-session-id")
    );
    // Another origin still gets no CORS and no state change.
    let (status, headers, _) = app
        .post_raw(
            "/v1/chat/completions",
            &json!({"model": "kubiya-workflow-agent", "messages": [{"role": "user", "content": "hello"}]}),
            &[("Origin", "https://evil.example")],
        )
        .await;
    assert_eq!(status, 403);
    assert!(headers.get("access-control-allow-origin").is_none());
    // The service's own origin (a page it served) is allowed without configuration.
    let own = app.address.clone();
    let (status, _, _) = app
        .post_raw(
            "/v1/workflows/validate",
            &json!({"workflow": echo_workflow()}),
            &[("Origin", own.as_str())],
        )
        .await;
    assert_eq!(status, 200);
}

/// With API keys a page whose origin is the request's own host is the service's own page
/// whatever its name (a console behind a domain name). A DNS-rebinding page (the attacker's
/// name resolving to us) passes that check but has no key: 401, nothing runs. A page of
/// another origin is still refused, key or not; and with auth off the same name is refused.
#[actix_rt::test]
async fn with_api_keys_a_rebinding_page_gets_no_further_than_a_missing_key() {
    let app = spawn_app_with(|settings| {
        settings.auth.api_keys = vec![crate::tenants::key("sk-own", "own")];
    })
    .await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let host = format!("rebound.example:{port}");
    let origin = format!("http://{host}");
    let run = json!({"workflow": echo_workflow()});
    let page = [("Host", host.as_str()), ("Origin", origin.as_str())];
    let (status, _, body) = app.post_raw("/v1/executions", &run, &page).await;
    assert_eq!(status, 401, "{body}");
    assert_error(&body, "authentication_error", "missing_api_key", None);
    let keyed = [page[0], page[1], ("Authorization", "Bearer sk-own")];
    let (status, _, body) = app.post_raw("/v1/executions", &run, &keyed).await;
    assert_eq!(
        status, 202,
        "our own page behind a domain name, with the key: {body}"
    );
    let foreign = [
        page[0],
        ("Origin", "https://evil.example"),
        ("Authorization", "Bearer sk-own"),
    ];
    let (status, _, body) = app.post_raw("/v1/executions", &run, &foreign).await;
    assert_eq!(status, 403, "{body}");

    let open = spawn_app().await;
    let port = open.address.rsplit(':').next().unwrap().to_owned();
    let host = format!("rebound.example:{port}");
    let origin = format!("http://{host}");
    let (status, _, body) = open
        .post_raw(
            "/v1/executions",
            &run,
            &[("Host", host.as_str()), ("Origin", origin.as_str())],
        )
        .await;
    assert_eq!(
        status, 403,
        "with auth off a domain name could be anyone's: {body}"
    );
}

#[actix_rt::test]
async fn session_ids_are_bounded_and_an_empty_one_is_absent() {
    let app = spawn_app().await;
    let chat = |session: Value| {
        json!({"model": "kubiya-workflow-agent", "session_id": session,
               "messages": [{"role": "user", "content": "hello"}]})
    };
    let (status, _, body) = app
        .post_raw("/v1/chat/completions", &chat(json!("a".repeat(129))), &[])
        .await;
    assert_invalid(status, &body, Some("session_id"));
    let (status, _, _) = app
        .post_raw("/v1/chat/completions", &chat(json!("bad id\u{7f}")), &[])
        .await;
    assert_eq!(status, 400);
    let long_header = "b".repeat(200);
    let (status, _, body) = app
        .post_raw(
            "/v1/chat/completions",
            &chat(Value::Null),
            &[("X-Session-Id", long_header.as_str())],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("X-Session-Id"), "{body}");
    let (status, _, _) = app
        .post_raw(
            "/compose",
            &json!({"task": "say hello", "stream": false, "session_id": "c".repeat(129)}),
            &[],
        )
        .await;
    assert_eq!(status, 400);

    // The other ways to name a conversation or a user are bounded alike.
    let long = "d".repeat(200);
    for (path, body) in [
        (
            "/api/chat",
            json!({"id": long, "messages": [{"role": "user", "parts": [{"type": "text", "text": "hi"}]}]}),
        ),
        (
            "/v1/responses",
            json!({"model": "kubiya-workflow-agent", "input": "hi", "user": long}),
        ),
    ] {
        let (status, _, body) = app.post_raw(path, &body, &[]).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    let (status, _, _) = app.get_json(&format!("/v1/sessions/{long}")).await;
    assert_eq!(status, 400);

    // Two unrelated clients sending "" get sessions of their own.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, headers, _) = app
            .post_raw("/v1/chat/completions", &chat(json!("")), &[])
            .await;
        assert_eq!(status, 200);
        ids.push(headers.get("x-session-id").unwrap().clone());
    }
    assert_ne!(ids[0], ids[1]);
}

#[actix_rt::test]
async fn a_turn_that_would_pass_the_session_cap_is_413_and_runs_nothing() {
    let app = spawn_app_with(|settings| settings.sessions.max_transcript_bytes = 20_000).await;
    let message = |text: String, session: Option<&str>| {
        json!({"model": "kubiya-workflow-agent", "session_id": session,
               "messages": [{"role": "user", "content": text}]})
    };
    let (status, _, body) = app
        .post_raw(
            "/v1/chat/completions",
            &message("x".repeat(30_000), None),
            &[],
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_error(
        &body,
        "invalid_request_error",
        "session_too_large",
        Some("messages"),
    );
    // A session grows turn by turn until the next message would pass the cap.
    let (status, headers, _) = app
        .post_raw(
            "/v1/chat/completions",
            &message("y".repeat(8_000), None),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let session = headers
        .get("x-session-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = app
        .post_raw(
            "/v1/chat/completions",
            &message("z".repeat(8_000), Some(&session)),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let (_, _, before) = app.get_json(&format!("/v1/sessions/{session}")).await;
    let (status, _, body) = app
        .post_raw(
            "/v1/chat/completions",
            &message("w".repeat(8_000), Some(&session)),
            &[],
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("start a new session"), "{body}");
    let (_, _, after) = app.get_json(&format!("/v1/sessions/{session}")).await;
    assert_eq!(
        before["transcript"], after["transcript"],
        "nothing was added"
    );
}

/// POSTs `body` to `path`, asserts a 400 naming `param`, and answers the message.
async fn refused_field(
    app: &crate::helpers::TestApp,
    path: &str,
    body: Value,
    param: &str,
) -> String {
    let (status, body) = app.send_json("POST", path, body.to_string()).await;
    assert_eq!(status, 400, "{path} {param}: {body}");
    assert_error(&body, "invalid_request_error", "invalid_value", Some(param));
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[actix_rt::test]
async fn unknown_enumeration_values_are_400_naming_the_allowed_ones() {
    let app = spawn_app().await;
    let message = refused_field(
        &app,
        "/compose",
        json!({"task": "say hello", "mode": "destroy"}),
        "mode",
    )
    .await;
    assert!(
        message.contains("plan") && message.contains("act"),
        "{message}"
    );
    for (field, value) in [("format", "xml"), ("stream_format", "carrier-pigeon")] {
        let body = json!({"model": "kubiya-workflow-agent", field: value, "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]});
        let message = refused_field(&app, "/v1/chat/completions", body, field).await;
        assert!(message.contains("vercel"), "{message}");
    }
    let body = json!({"task": "say hello", "stream_format": "xml"});
    let message = refused_field(&app, "/compose", body, "stream_format").await;
    assert!(message.contains("sse"), "{message}");
    // The legacy values are still accepted.
    for mode in ["adk", "PLAN", "mcp"] {
        let (status, _) = app
            .send_json(
                "POST",
                "/compose",
                json!({"task": "say hello", "mode": mode, "stream": false}).to_string(),
            )
            .await;
        assert_eq!(status, 200, "{mode}");
    }
}

#[actix_rt::test]
async fn made_up_methods_fold_into_one_metric_label() {
    let app = spawn_app().await;
    for index in 0..30 {
        let method = awc::http::Method::from_bytes(format!("BREW{index}").as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url(&format!("/nowhere/{index}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404);
    }
    let mut response = app.client.get(app.url("/metrics")).send().await.unwrap();
    let metrics = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    assert!(!metrics.contains("BREW"), "{metrics}");
    assert!(!metrics.contains("/nowhere"), "{metrics}");
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
}

/// Opens `/ws/compose` on an app with a 64 KiB request limit and a 1 s request timeout.
async fn ws_app() -> (crate::helpers::TestApp, String) {
    let app = spawn_app_with(|settings| {
        settings.server.max_body_bytes = 64 * 1024;
        settings.server.ws_request_timeout_secs = 1;
    })
    .await;
    let url = app.url("/ws/compose").replacen("http", "ws", 1);
    (app, url)
}

/// Reads frames until the close frame and returns its code.
async fn close_code<S, E>(socket: &mut S) -> CloseCode
where
    S: futures_util::Stream<Item = Result<Frame, E>> + Unpin,
    E: std::fmt::Debug,
{
    let deadline = Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout(deadline, socket.next())
            .await
            .expect("the server closes in time");
        match frame {
            Some(Ok(Frame::Close(reason))) => return reason.expect("a close code").code,
            Some(Ok(_)) => {}
            other => panic!("the connection ended without a close frame: {other:?}"),
        }
    }
}

#[actix_rt::test]
async fn websocket_misuse_gets_its_close_code() {
    let (app, url) = ws_app().await;

    let (_, mut socket) = app.client.ws(&url).connect().await.unwrap();
    socket
        .send(Message::Binary(json!({"task": "hi"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, CloseCode::Unsupported);

    let (_, mut socket) = app.client.ws(&url).connect().await.unwrap();
    socket
        .send(Message::Text("x".repeat(100 * 1024).into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, CloseCode::Size);

    let (_, mut socket) = app.client.ws(&url).connect().await.unwrap();
    let part = || bytes::Bytes::from("y".repeat(30 * 1024));
    socket
        .send(Message::Continuation(Item::FirstText(part())))
        .await
        .unwrap();
    for _ in 0..2 {
        socket
            .send(Message::Continuation(Item::Continue(part())))
            .await
            .unwrap();
    }
    assert_eq!(close_code(&mut socket).await, CloseCode::Size);

    let (_, mut socket) = app.client.ws(&url).connect().await.unwrap();
    socket
        .send(Message::Continuation(Item::FirstText(
            bytes::Bytes::from_static(b"{\"task\": \"\xff"),
        )))
        .await
        .unwrap();
    socket
        .send(Message::Continuation(Item::Last(
            bytes::Bytes::from_static(b"\xfe\"}"),
        )))
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, CloseCode::Invalid);

    let (_, mut socket) = app.client.ws(&url).connect().await.unwrap();
    let started = Instant::now();
    assert_eq!(close_code(&mut socket).await, CloseCode::Policy);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[actix_rt::test]
async fn a_request_split_over_frames_is_assembled_and_answered() {
    let (app, url) = ws_app().await;
    let (_, mut socket) = app.client.ws(&url).connect().await.unwrap();
    let request = json!({"task": "greet the team"}).to_string();
    let (first, rest) = request.split_at(10);
    socket
        .send(Message::Continuation(Item::FirstText(
            first.to_owned().into_bytes().into(),
        )))
        .await
        .unwrap();
    socket
        .send(Message::Continuation(Item::Last(
            rest.to_owned().into_bytes().into(),
        )))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    let close = loop {
        match socket.next().await.unwrap().unwrap() {
            Frame::Text(text) => {
                let event: Value = serde_json::from_slice(&text).unwrap();
                kinds.push(event["type"].as_str().unwrap_or_default().to_owned());
            }
            Frame::Close(reason) => break reason.unwrap().code,
            _ => {}
        }
    };
    assert_eq!(close, CloseCode::Normal);
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("workflow"),
        "{kinds:?}"
    );
}

#[actix_rt::test]
async fn workflows_over_the_step_limit_are_refused_before_validation() {
    let app = spawn_app().await;
    let steps: Vec<Value> = (0..1001)
        .map(|index| json!({"name": format!("s{index}"), "command": "true"}))
        .collect();
    let workflow = json!({"name": "long", "steps": steps});
    let (status, _, body) = app
        .post_raw(
            "/v1/workflows/validate",
            &json!({"workflow": workflow}),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["valid"], false);
    assert_eq!(answer["errors"][0]["path"], "steps", "{answer}");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 1000")
    );
    let (status, _, body) = app
        .post_raw("/v1/executions", &json!({"workflow": workflow}), &[])
        .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    assert!(body.contains("at most 1000"), "{body}");
}
