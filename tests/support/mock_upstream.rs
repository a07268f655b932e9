//! A mock LLM upstream for tests: an actix-web server on its own thread and port that answers
//! each request with the next scripted [`Reply`] — real provider wire bytes (captured
//! fixtures or streams built here), error statuses with headers, slow or hanging streams —
//! records what it was sent, and counts streams the client abandoned mid-way, which is how
//! tests see that a cancelled call really closed its connection, streams it sent to their
//! end, and the TCP connections it accepted, which is how they see that calls reuse them.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the mock"
)]

use std::collections::VecDeque;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A whole response.
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        content_type: &'static str,
        body: String,
    },
    /// A streamed 200: each chunk after `delay`; then end, or hang forever if `hang`.
    Stream {
        content_type: &'static str,
        chunks: Vec<String>,
        delay: Duration,
        hang: bool,
    },
    /// Wait before sending anything at all (a slow first byte), then answer with `then`.
    Delay(Duration, Box<Reply>),
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply::Full {
            status,
            headers: Vec::new(),
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        if let Reply::Full { headers, .. } = &mut self {
            headers.push((name, value.to_owned()));
        }
        self
    }

    /// The body sent as one chunk.
    pub fn sse(body: impl Into<String>) -> Self {
        Reply::Stream {
            content_type: "text/event-stream",
            chunks: vec![body.into()],
            delay: Duration::ZERO,
            hang: false,
        }
    }

    pub fn ndjson(body: impl Into<String>) -> Self {
        Reply::Stream {
            content_type: "application/x-ndjson",
            chunks: vec![body.into()],
            delay: Duration::ZERO,
            hang: false,
        }
    }

    /// An OpenAI stream that never ends: a numbered text delta every 50 ms, then silence.
    pub fn endless_openai_stream() -> Self {
        let chunks = (0..1000)
            .map(|i| openai_chunk(json!({"content": format!("{i} ")}), None))
            .collect();
        Reply::sse_chunks(chunks, Duration::from_millis(50), true)
    }

    /// Chunks one after another with `delay` between them.
    pub fn sse_chunks(chunks: Vec<String>, delay: Duration, hang: bool) -> Self {
        Reply::Stream {
            content_type: "text/event-stream",
            chunks,
            delay,
            hang,
        }
    }
}

/// What a request carried.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct MockState {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    abandoned_streams: AtomicUsize,
    finished_streams: AtomicUsize,
    connections: AtomicUsize,
}

pub struct MockUpstream {
    pub port: u16,
    state: Arc<MockState>,
}

impl MockUpstream {
    /// Starts the mock; it lives until the test process ends.
    pub fn start(script: Vec<Reply>) -> Self {
        let state = Arc::new(MockState::default());
        state.script.lock().unwrap().extend(script);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = state.clone();
        let counted = state.clone();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::from(shared.clone()))
                        .default_service(web::to(answer))
                })
                .on_connect(move |_, _| {
                    counted.connections.fetch_add(1, Ordering::SeqCst);
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap();
            });
        });
        Self { port, state }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn push(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Streams whose body the client stopped reading before it ended.
    pub fn abandoned_streams(&self) -> usize {
        self.state.abandoned_streams.load(Ordering::SeqCst)
    }

    /// Streams whose body was sent to its end.
    pub fn finished_streams(&self) -> usize {
        self.state.finished_streams.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits up to `within` for `condition` on the mock, blocking the thread.
    pub fn wait_until_blocking(
        &self,
        what: &str,
        within: Duration,
        condition: impl Fn(&Self) -> bool,
    ) {
        let deadline = std::time::Instant::now() + within;
        while !condition(self) {
            assert!(
                std::time::Instant::now() < deadline,
                "the mock upstream never saw: {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to 10 s for `condition` on the mock.
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&Self) -> bool) {
        for _ in 0..500 {
            if condition(self) {
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the mock upstream never saw: {what}");
    }
}

async fn answer(req: HttpRequest, body: web::Bytes, state: web::Data<MockState>) -> HttpResponse {
    state.requests.lock().unwrap().push(Recorded {
        path: req.uri().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let reply = state.script.lock().unwrap().pop_front();
    let mut reply = reply.unwrap_or_else(|| {
        Reply::json(
            500,
            json!({"error": {"message": "the mock's script ran out"}}),
        )
    });
    while let Reply::Delay(wait, then) = reply {
        actix_rt::time::sleep(wait).await;
        reply = *then;
    }
    match reply {
        Reply::Full {
            status,
            headers,
            content_type,
            body,
        } => {
            let mut response =
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
            for (name, value) in headers {
                response.insert_header((name, value));
            }
            response.content_type(content_type).body(body)
        }
        Reply::Stream {
            content_type,
            chunks,
            delay,
            hang,
        } => HttpResponse::Ok()
            .content_type(content_type)
            .streaming(ScriptedBody {
                chunks: chunks.into(),
                delay,
                hang,
                timer: None,
                finished: false,
                state: state.into_inner(),
            }),
        Reply::Delay(..) => unreachable!("unwrapped above"),
    }
}

/// A body that yields its chunks on a timer and notices when it is dropped unfinished.
struct ScriptedBody {
    chunks: VecDeque<String>,
    delay: Duration,
    hang: bool,
    timer: Option<Pin<Box<actix_rt::time::Sleep>>>,
    finished: bool,
    state: Arc<MockState>,
}

impl Stream for ScriptedBody {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.chunks.is_empty() {
            if this.hang {
                return Poll::Pending;
            }
            if !this.finished {
                this.finished = true;
                this.state.finished_streams.fetch_add(1, Ordering::SeqCst);
            }
            return Poll::Ready(None);
        }
        if !this.delay.is_zero() {
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(actix_rt::time::sleep(this.delay)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.timer = None;
        }
        let chunk = this.chunks.pop_front().expect("checked non-empty");
        Poll::Ready(Some(Ok(Bytes::from(chunk))))
    }
}

impl Drop for ScriptedBody {
    fn drop(&mut self) {
        if !self.finished {
            self.state.abandoned_streams.fetch_add(1, Ordering::SeqCst);
        }
    }
}

use std::future::Future as _;

/// A captured fixture from `tests/fixtures/protocols/`.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/protocols/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|err| panic!("fixture {name}: {err}"))
}

/// An OpenAI chat stream answering with `text`, in `pieces` deltas.
pub fn openai_text_stream(text: &str) -> String {
    let mut body = openai_chunk(json!({"role": "assistant", "content": ""}), None);
    for piece in text.split_inclusive(' ') {
        body.push_str(&openai_chunk(json!({"content": piece}), None));
    }
    body.push_str(&openai_chunk(json!({}), Some("stop")));
    body.push_str(&openai_usage_chunk(11, 7));
    body.push_str("data: [DONE]\n\n");
    body
}

/// An OpenAI chat stream whose answer is one tool call, arguments split in two deltas.
/// A model that validates `workflow`, runs it, then answers `answer`.
pub fn validate_run_answer(workflow: &Value, answer: &str) -> Vec<Reply> {
    vec![
        Reply::sse(openai_tool_call_stream(
            "call_v",
            "validate_workflow",
            &serde_json::json!({ "workflow": workflow }),
        )),
        Reply::sse(openai_tool_call_stream(
            "call_x",
            "execute_workflow",
            &serde_json::json!({ "workflow": workflow }),
        )),
        Reply::sse(openai_text_stream(answer)),
    ]
}

pub fn openai_tool_call_stream(id: &str, name: &str, arguments: &Value) -> String {
    let arguments = arguments.to_string();
    let (first, second) = arguments.split_at(arguments.len() / 2);
    let mut body = openai_chunk(
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": first}}
        ]}),
        None,
    );
    body.push_str(&openai_chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": second}}]}),
        None,
    ));
    body.push_str(&openai_chunk(json!({}), Some("tool_calls")));
    body.push_str(&openai_usage_chunk(20, 9));
    body.push_str("data: [DONE]\n\n");
    body
}

pub fn openai_chunk(delta: Value, finish_reason: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "mock-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    });
    format!("data: {chunk}\n\n")
}

fn openai_usage_chunk(prompt: u64, completion: u64) -> String {
    let chunk = json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "mock-model",
        "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    });
    format!("data: {chunk}\n\n")
}
