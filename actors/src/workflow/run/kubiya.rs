//! The Kubiya platform runner: sends a workflow to the platform and follows its event stream.
//!
//! The request is what the original SDK sends (see the reference, §3): `POST
//! {api_url}/api/v1/workflow?runner=R&operation=execute_workflow&native_sse=true` with
//! `Authorization: UserKey <key>`, and as body the workflow JSON without `runner` plus
//! `"parameters"`. The answer is an SSE stream whose payloads are plain JSON or Vercel-style
//! `2:{…}` records, where `step` is an object; [`PlatformStream`](super::kubiya_stream::PlatformStream)
//! maps them to our flat [`StepEvent`]s (`step` is the step's name) and decides how the run
//! ended. As the local runner, it sends the step events and returns the run's
//! [`RunOutcome`], its final word (the `workflow_complete` clients see is derived from it).
//!
//! It holds an `awc` client, which is not `Send`: it lives on the `ExecutionWatcher`'s
//! arbiter, and its runs are spawned there.

use std::time::{Duration, Instant};

use awc::Client;
use awc::http::header;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::event::StepEvent;
use super::kubiya_stream::{Ending, PlatformStream};
use super::outcome::RunOutcome;
use crate::framing::sse::SseDecoder;
use crate::workflow::dsl::model::Workflow;

/// How to reach the platform; the key stays out of `Debug`.
#[derive(Clone)]
pub struct KubiyaConfig {
    /// The API's base URL, e.g. `https://api.kubiya.ai`.
    pub api_url: String,
    pub api_key: String,
    /// Bytes of a step's output kept; more is cut.
    pub max_output_bytes: usize,
    /// Longest time without a step or workflow event before the run counts as failed;
    /// heartbeats, comments and records without step information do not count.
    pub idle_timeout: Duration,
}

impl KubiyaConfig {
    pub fn new(api_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            api_url: api_url.into(),
            api_key: api_key.into(),
            max_output_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

impl std::fmt::Debug for KubiyaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubiyaConfig")
            .field("api_url", &self.api_url)
            .field("api_key", &"<redacted>")
            .field("max_output_bytes", &self.max_output_bytes)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// One run on the platform.
#[derive(Debug)]
pub struct PlatformRun {
    pub workflow: Workflow,
    /// Run-time values, sent as `"parameters"`.
    pub params: Map<String, Value>,
    /// The Kubiya runner, sent as the `runner` query parameter.
    pub runner: String,
    pub events: UnboundedSender<StepEvent>,
    /// Cancelling it stops following the stream (status `cancelled`).
    pub cancel: CancellationToken,
}

/// Runs workflows on the Kubiya platform.
pub struct KubiyaRunner {
    config: KubiyaConfig,
    client: Client,
}

/// Statuses the original SDK retries (its HTTP session retries POSTs too).
const RETRYABLE_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];
/// Retries after the first attempt, for those statuses and for refused connections.
const MAX_RETRIES: u32 = 2;
/// The longest `Retry-After` obeyed; a platform asking for more waits this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How much of an error response is quoted, as the SDK does.
const ERROR_BODY_CHARS: usize = 200;

impl KubiyaRunner {
    /// Builds the client; call it on the arbiter that will run the workflows.
    pub fn new(config: KubiyaConfig) -> Self {
        let client = Client::builder()
            .connector(awc::Connector::new().timeout(Duration::from_secs(10)))
            .timeout(Duration::from_secs(60))
            .finish();
        Self { config, client }
    }

    /// The request body: the workflow without `runner` (it goes in the query), plus the
    /// run-time `parameters`.
    pub fn request_body(workflow: &Workflow, params: &Map<String, Value>) -> Value {
        let mut body = match workflow.to_value() {
            Value::Object(body) => body,
            _ => Map::new(),
        };
        body.remove("runner");
        body.insert("parameters".to_owned(), Value::Object(params.clone()));
        Value::Object(body)
    }

    /// Runs the workflow to its end: the steps' events as the platform reports them (and an
    /// end for each step it left unsettled), then the outcome.
    pub async fn run(&self, run: PlatformRun) -> RunOutcome {
        let started = Instant::now();
        let mut stream = PlatformStream::new(&run.runner, self.config.max_output_bytes);
        let ending = tokio::select! {
            ending = self.follow(&run, &mut stream) => ending,
            () = run.cancel.cancelled() => Ending::Cancelled,
        };
        let (status, error) = stream.verdict(ending);
        for event in stream.unsettled(&run.workflow, status, error.as_deref()) {
            // A receiver that went away only means nobody is listening any more.
            let _ = run.events.send(event);
        }
        RunOutcome::ended(status, error, started.elapsed())
    }

    async fn follow(&self, run: &PlatformRun, stream: &mut PlatformStream) -> Ending {
        let mut response = match self.open(run).await {
            Ok(response) => response,
            Err(error) => return Ending::Failed(error),
        };
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        let idle = self.config.idle_timeout;
        let mut deadline = tokio::time::Instant::now() + idle;
        loop {
            let chunk = match tokio::time::timeout_at(deadline, response.next()).await {
                Err(_) => {
                    return Ending::Failed(format!(
                        "the Kubiya platform reported no progress for {}s (heartbeats alone do \
                         not keep a run alive; runner.kubiya.idle_timeout_secs)",
                        idle.as_secs()
                    ));
                }
                Ok(Some(Err(error))) => {
                    return Ending::Failed(format!(
                        "the connection to the Kubiya platform broke: {error}"
                    ));
                }
                Ok(Some(Ok(chunk))) => Some(chunk),
                Ok(None) => None,
            };
            match &chunk {
                Some(bytes) => decoder.feed(bytes),
                None => decoder.finish(),
            }
            while let Some(event) = decoder.next_event() {
                let ending = stream.on_event(&event, &mut events);
                if stream.take_progress() {
                    deadline = tokio::time::Instant::now() + idle;
                }
                for event in events.drain(..) {
                    let _ = run.events.send(event);
                }
                if let Some(ending) = ending {
                    return ending;
                }
            }
            if chunk.is_none() {
                return Ending::BodyEnded;
            }
        }
    }

    /// Sends the request, retrying what the SDK retries; `Ok` is a 2xx response.
    async fn open(&self, run: &PlatformRun) -> Result<awc::ClientResponse, String> {
        let url = format!(
            "{}/api/v1/workflow",
            self.config.api_url.trim_end_matches('/')
        );
        let body = Self::request_body(&run.workflow, &run.params).to_string();
        let mut attempt = 0;
        loop {
            let request = self
                .client
                .post(&url)
                .query(&[
                    ("runner", run.runner.as_str()),
                    ("operation", "execute_workflow"),
                    ("native_sse", "true"),
                ])
                .map_err(|error| format!("cannot build the platform request: {error}"))?
                .insert_header((
                    header::AUTHORIZATION,
                    format!("UserKey {}", self.config.api_key),
                ))
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .insert_header((header::ACCEPT, "text/event-stream"))
                .insert_header((
                    header::USER_AGENT,
                    concat!("kubiya-agent-server/", env!("CARGO_PKG_VERSION")),
                ));
            let (retry, retry_after) = match request.send_body(body.clone()).await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    // Read to its end either way, so the connection can be reused.
                    let text = response.body().limit(64 * 1024).await.unwrap_or_default();
                    if !RETRYABLE_STATUSES.contains(&status) || attempt == MAX_RETRIES {
                        return Err(describe_status(status, &text));
                    }
                    let retry_after = response
                        .headers()
                        .get(header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(parse_retry_after);
                    (format!("HTTP {status}"), retry_after)
                }
                Err(error @ awc::error::SendRequestError::Connect(_)) if attempt < MAX_RETRIES => {
                    (error.to_string(), None)
                }
                Err(error) => {
                    return Err(format!(
                        "cannot reach the Kubiya platform at {url}: {error}"
                    ));
                }
            };
            attempt += 1;
            let delay = retry_after.unwrap_or(Duration::from_secs(1 << (attempt - 1)));
            tracing::warn!(%retry, attempt, delay_secs = delay.as_secs(), "the Kubiya platform failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// `Retry-After` in seconds (the platform does not send HTTP dates), capped.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn describe_status(status: u16, body: &[u8]) -> String {
    if status == 401 || status == 403 {
        return format!(
            "the Kubiya platform refused the API key (HTTP {status}); check KUBIYA_API_KEY"
        );
    }
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .take(ERROR_BODY_CHARS)
        .collect();
    format!("the Kubiya platform answered HTTP {status}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_body_is_the_workflow_without_runner_plus_parameters() {
        let workflow = Workflow::from_value(json!({
            "name": "w", "runner": "k8s", "steps": [{"name": "a", "command": "echo hi"}],
            "custom": {"kept": true}
        }))
        .expect("parses");
        let mut params = Map::new();
        params.insert("NAME".to_owned(), json!("x"));
        assert_eq!(
            KubiyaRunner::request_body(&workflow, &params),
            json!({"name": "w", "steps": [{"name": "a", "command": "echo hi"}],
                   "custom": {"kept": true}, "parameters": {"NAME": "x"}})
        );
    }

    #[test]
    fn auth_failures_name_the_key_variable() {
        assert!(describe_status(401, b"").contains("KUBIYA_API_KEY"));
        assert_eq!(
            describe_status(500, "x".repeat(300).as_bytes()).len(),
            "the Kubiya platform answered HTTP 500: ".len() + 200
        );
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let config = KubiyaConfig::new("https://api.kubiya.ai", "uk-secret");
        assert!(!format!("{config:?}").contains("uk-secret"));
    }
}
