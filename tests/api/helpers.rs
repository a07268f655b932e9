//! Test harness: [`spawn_app`] runs the application in-process on a free port (the
//! `spawn_app` pattern: every test gets its own server and state), and [`ServerProcess`]
//! runs the real `kubiya` binary for what only a process shows (exit codes, signals, logs).
//! Tests that wait for something poll it with a deadline ([`eventually`],
//! [`eventually_blocking`]) instead of sleeping a fixed time.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kubiya::config::Settings;
use kubiya::provider_setup::ProviderSetup;
use kubiya::startup::Application;
use serde_json::Value;

pub struct TestApp {
    pub address: String,
    pub client: awc::Client,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app with default settings changed by `configure`, on 127.0.0.1 and port 0.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_provider(ProviderSetup::offline(), configure).await
}

/// Starts the app against an OpenAI-protocol upstream at `base` (a mock), with fast retries.
pub async fn spawn_app_against(base: &str, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut provider = Settings::default().provider;
    provider.name = kubiya::config::ProviderChoice::OpenAi;
    provider.max_retries = 1;
    provider.retry_base_ms = 10;
    provider.actors = 1;
    let flags = kubiya::config::FlagOverrides {
        api_key: Some("sk-test".into()),
        base_url: Some(format!("{base}/v1")),
        ..Default::default()
    };
    let setup =
        kubiya::provider_setup::resolve(&provider, &flags, |_| None).expect("a valid provider");
    spawn_app_with_provider(setup, configure).await
}

pub async fn spawn_app_with_provider(
    provider: ProviderSetup,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.server.workers = 1;
    settings.provider.actors = 1;
    configure(&mut settings);
    let app = Application::build(&settings, &provider).expect("the app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_rt::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET `path`, returning status, headers and the body parsed as JSON.
    pub async fn get_json(&self, path: &str) -> (u16, awc::http::header::HeaderMap, Value) {
        self.get_with(path, &[]).await
    }

    /// GET `path` with `headers` (an API key, `X-User-Id`, ...): status, headers and the body
    /// parsed as JSON.
    pub async fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, awc::http::header::HeaderMap, Value) {
        let mut request = self.client.get(self.url(path));
        for header in headers {
            request = request.insert_header(*header);
        }
        let mut response = request.send().await.expect("request sent");
        let body = response.body().await.expect("body read");
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&body)));
        (response.status().as_u16(), response.headers().clone(), json)
    }

    /// POSTs a JSON body and returns status, headers and the raw body text.
    pub async fn post_raw(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (u16, awc::http::header::HeaderMap, String) {
        let mut request = self.client.post(self.url(path));
        for header in headers {
            request = request.insert_header(*header);
        }
        let mut response = request.send_json(body).await.expect("request sent");
        let body = response
            .body()
            .limit(64 * 1024 * 1024)
            .await
            .expect("body read");
        (
            response.status().as_u16(),
            response.headers().clone(),
            String::from_utf8(body.to_vec()).expect("UTF-8"),
        )
    }

    /// Sends `body` bytes to `path` with `method`, returning status and JSON body.
    pub async fn send_json(
        &self,
        method: &str,
        path: &str,
        body: impl Into<bytes::Bytes>,
    ) -> (u16, Value) {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut response = self
            .client
            .request(method, self.url(path))
            .insert_header(("content-type", "application/json"))
            .send_body(body.into())
            .await
            .expect("request sent");
        let body = response
            .body()
            .limit(16 * 1024 * 1024)
            .await
            .expect("body read");
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&body)));
        (response.status().as_u16(), json)
    }
}

/// A response body as [`assert_error`] reads it: parsed already, or its text.
pub trait ErrorBody {
    fn json(&self) -> Value;
}

impl ErrorBody for Value {
    fn json(&self) -> Value {
        self.clone()
    }
}

impl ErrorBody for str {
    fn json(&self) -> Value {
        serde_json::from_str(self).unwrap_or_else(|err| panic!("not JSON ({err}): {self}"))
    }
}

impl ErrorBody for String {
    fn json(&self) -> Value {
        self.as_str().json()
    }
}

/// Asserts a 400 naming `param` (`invalid_request_error`, `invalid_value`), the answer to a
/// field the client got wrong.
pub fn assert_invalid(status: u16, body: &(impl ErrorBody + ?Sized), param: Option<&str>) {
    assert_eq!(status, 400, "{}", body.json());
    assert_error(body, "invalid_request_error", "invalid_value", param);
}

/// Asserts a whole OpenAI-shaped error body.
pub fn assert_error(body: &(impl ErrorBody + ?Sized), kind: &str, code: &str, param: Option<&str>) {
    let body = body.json();
    let error = &body["error"];
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert_eq!(
        error["param"],
        param.map_or(Value::Null, Value::from),
        "{body}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        error.as_object().unwrap().len(),
        4,
        "exactly message/type/param/code: {body}"
    );
}

/// How often [`eventually`] and [`eventually_blocking`] look again.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `check` until it gives `Some`, and returns that; fails the test, naming `what`,
/// when `within` passes first.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// [`eventually`] for tests without a runtime.
pub fn eventually_blocking<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        std::thread::sleep(POLL_EVERY);
    }
}

/// The real `kubiya` binary, started with JSON logs so the test can read what it says.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    logs: mpsc::Receiver<Value>,
    /// Every record read so far, so a wait can match one that came before it was asked for.
    seen: Vec<Value>,
}

/// A command for the binary with a clean environment: no provider keys leak in from the
/// machine running the tests.
pub fn kubiya_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubiya"));
    command.env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    command
}

impl ServerProcess {
    /// Starts `kubiya mcp agent` with the OpenAI provider pointed at the mock upstream at
    /// `base`, and `env`.
    pub fn against(base: &str, env: &[(&str, &str)]) -> Self {
        let base_url = format!("{base}/v1");
        let args = ["--provider", "openai", "--base-url", &base_url];
        Self::start(&[&args[..], &["--api-key", "sk-test"]].concat(), env, None)
    }

    /// Starts `kubiya mcp agent` on port 0 with `args` and `env`, and waits for it to listen.
    pub fn start(args: &[&str], env: &[(&str, &str)], dir: Option<&Path>) -> Self {
        Self::start_command(kubiya_command(), args, env, dir)
    }

    /// As [`start`](Self::start), listening on `host`.
    pub fn start_with_host(host: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch(kubiya_command(), host, args, env, None)
    }

    /// Like [`ServerProcess::start`], with `command` (the binary, or a wrapper running it).
    pub fn start_command(
        command: Command,
        args: &[&str],
        env: &[(&str, &str)],
        dir: Option<&Path>,
    ) -> Self {
        Self::launch(command, "127.0.0.1", args, env, dir)
    }

    fn launch(
        mut command: Command,
        host: &str,
        args: &[&str],
        env: &[(&str, &str)],
        dir: Option<&Path>,
    ) -> Self {
        command
            .args(["mcp", "agent", "--host", host])
            .args(args)
            .env("LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !args.contains(&"--port") && !env.iter().any(|(k, _)| *k == "KUBIYA_SERVER__PORT") {
            command.args(["--port", "0"]);
        }
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().expect("kubiya starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (sender, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let record = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("a log line that is not one JSON object: {line}"));
                if sender.send(record).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            port: 0,
            logs,
            seen: Vec::new(),
        };
        let listening = server.wait_for_log(|record| {
            record["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("listening"))
        });
        server.port = listening["port"]
            .as_u64()
            .expect("the listening line has the port") as u16;
        server
    }

    /// Waits up to 20 s for a log record matching `predicate`.
    pub fn wait_for_log(&mut self, predicate: impl Fn(&Value) -> bool) -> Value {
        if let Some(record) = self.seen.iter().find(|record| predicate(record)) {
            return record.clone();
        }
        loop {
            match self.logs.recv_timeout(Duration::from_secs(20)) {
                Ok(record) => {
                    self.seen.push(record.clone());
                    if predicate(&record) {
                        return record;
                    }
                }
                Err(err) => {
                    let _ = self.child.kill();
                    panic!("expected log record not seen: {err}");
                }
            }
        }
    }

    /// How many log records so far match `predicate` (without waiting for more).
    pub fn records_where(&mut self, predicate: impl Fn(&Value) -> bool) -> usize {
        while let Ok(record) = self.logs.try_recv() {
            self.seen.push(record);
        }
        self.seen.iter().filter(|record| predicate(record)).count()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: sending a signal to our own child process has no memory-safety concerns.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().expect("exited, not killed by a signal");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking GET for tests that drive a process without an actix runtime.
pub fn blocking_get(url: &str) -> (u16, Value) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut response = awc::Client::new()
                .get(&url)
                .send()
                .await
                .expect("request sent");
            let body = response.body().await.expect("body");
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        })
    })
    .join()
    .expect("the request thread")
}

/// A blocking POST of JSON for tests that drive a process without an actix runtime; returns
/// status and the whole body.
pub fn blocking_post(url: &str, body: Value) -> (u16, String) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let client = awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish();
            let mut response = client
                .post(&url)
                .send_json(&body)
                .await
                .expect("request sent");
            let body = response.body().limit(16 * 1024 * 1024).await.expect("body");
            (
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        })
    })
    .join()
    .expect("the request thread")
}

/// A blocking JSON POST for tests that drive the binary without an actix runtime: status,
/// `Retry-After` and the body parsed as JSON (`Null` when it is not).
pub fn blocking_post_json(url: &str, body: &Value) -> (u16, Option<String>, Value) {
    let (url, body) = (url.to_owned(), body.clone());
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut response = awc::Client::new()
                .post(&url)
                .send_json(&body)
                .await
                .expect("request sent");
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let body = response.body().await.expect("body");
            (
                response.status().as_u16(),
                retry_after,
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        })
    })
    .join()
    .expect("the request thread")
}
