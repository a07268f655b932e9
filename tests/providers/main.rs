//! The `LlmProvider` actors against mock upstreams that speak each provider's real wire
//! protocol: streaming and whole answers, tool-call round trips, retries (429 with
//! `Retry-After`, 503), no retry once output has started, fallback, every timeout, broken
//! streams, and cancellation closing the upstream connection.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests (and their helpers) fail by panicking"
)]

#[path = "../support/mock_upstream.rs"]
mod mock_upstream;

use std::time::{Duration, Instant};

use actix::prelude::*;
use kubiya_actors::provider::{
    ChatMessage, ChatRequest, FinishReason, LlmEvent, Protocol, ProviderError, ProviderKind,
    ProviderPool, RetryPolicy, StartCompletion, StreamDecoder, TimeoutPhase, Timeouts, ToolCall,
    ToolSpec, UpstreamConfig, Usage,
};
use mock_upstream::{MockUpstream, Reply, fixture, openai_text_stream, openai_tool_call_stream};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Receives a call's events for the test.
struct Collector(mpsc::UnboundedSender<LlmEvent>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<LlmEvent> for Collector {
    type Result = ();

    fn handle(&mut self, event: LlmEvent, _: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

fn upstream(kind: ProviderKind, protocol: Protocol, base_url: String) -> UpstreamConfig {
    UpstreamConfig {
        kind,
        protocol,
        base_url,
        api_key: kind.preset().key_var.map(|_| "sk-test-key".to_owned()),
        model: "mock-model".into(),
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_secs(5),
            between_chunks: Duration::from_secs(5),
            total: Duration::from_secs(20),
        },
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        max_connections: 100,
    }
}

fn openai(mock: &MockUpstream) -> UpstreamConfig {
    upstream(
        ProviderKind::OpenAi,
        Protocol::OpenAiChat,
        format!("{}/v1", mock.base()),
    )
}

fn request(stream: bool) -> ChatRequest {
    ChatRequest {
        model: String::new(),
        system: Some("You write workflows.".into()),
        messages: vec![ChatMessage::user("What's the weather?")].into(),
        tools: vec![ToolSpec {
            name: "get_weather".into(),
            description: "Weather in a city".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        }]
        .into(),
        max_tokens: None,
        temperature: None,
        stream,
    }
}

/// Runs one call to its terminal event.
async fn call(pool: &ProviderPool, request: ChatRequest) -> Vec<LlmEvent> {
    call_with(pool, request, CancellationToken::new()).await
}

async fn call_with(
    pool: &ProviderPool,
    request: ChatRequest,
    cancel: CancellationToken,
) -> Vec<LlmEvent> {
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let collector = Collector(sender).start();
    pool.start_completion(StartCompletion {
        request,
        reply_to: collector.recipient(),
        cancel,
    });
    let mut events = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(30), receiver.recv()).await
    {
        let terminal = matches!(event, LlmEvent::Finished { .. } | LlmEvent::Failed(_));
        events.push(event);
        if terminal {
            return events;
        }
    }
    panic!("no terminal event; got {events:?}");
}

fn text_of(events: &[LlmEvent]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            LlmEvent::TextDelta(text) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn tool_calls(events: &[LlmEvent]) -> Vec<&ToolCall> {
    events
        .iter()
        .filter_map(|event| match event {
            LlmEvent::ToolCall(call) => Some(call),
            _ => None,
        })
        .collect()
}

fn failure(events: &[LlmEvent]) -> &ProviderError {
    match events.last() {
        Some(LlmEvent::Failed(error)) => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// What the decoder alone makes of a fixture: the transport must deliver exactly that.
fn decoded(protocol: Protocol, body: &str) -> Vec<LlmEvent> {
    let mut decoder = StreamDecoder::new(protocol).unwrap();
    let mut events = Vec::new();
    decoder.feed(body.as_bytes(), &mut events);
    decoder.finish(&mut events);
    events
}

/// A streamed answer is read to the end of its body after `[DONE]`, so the next call goes
/// out on the same keep-alive connection, and the pool counts the one connection it opened.
#[actix_rt::test]
async fn consecutive_calls_reuse_one_upstream_connection() {
    let body = fixture("openai_chat_stream_text.sse");
    let mock = MockUpstream::start(vec![Reply::sse(body.clone()); 5]);
    let pool = ProviderPool::start(vec![openai(&mock)], 1);
    for sent in 1..=5 {
        let events = call(&pool, request(true)).await;
        assert!(
            matches!(events.last(), Some(LlmEvent::Finished { .. })),
            "{events:?}"
        );
        // The body's end is read after the terminal event went out: the next call waits
        // until the mock has sent it.
        mock.wait_until("the stream's end sent", |mock| {
            mock.finished_streams() == sent
        })
        .await;
    }
    assert_eq!(mock.requests().len(), 5);
    assert_eq!(
        mock.connections(),
        1,
        "every call opened its own connection"
    );
    assert_eq!(
        pool.accounting
            .connections_opened
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(mock.abandoned_streams(), 0);
}

#[actix_rt::test]
async fn openai_streaming_and_whole_answers() {
    let body = fixture("openai_chat_stream_text.sse");
    let mock = MockUpstream::start(vec![
        Reply::sse(body.clone()),
        Reply::json(
            200,
            serde_json::from_str(&fixture("openai_chat_nonstream_text.json")).unwrap(),
        ),
    ]);
    let pool = ProviderPool::start(vec![openai(&mock)], 1);

    let events = call(&pool, request(true)).await;
    assert_eq!(events, decoded(Protocol::OpenAiChat, &body));
    assert!(text_of(&events).starts_with("I'm unable to provide real-time weather updates."));
    assert_eq!(
        events.last(),
        Some(&LlmEvent::Finished {
            reason: FinishReason::Stop
        })
    );

    let events = call(&pool, request(false)).await;
    assert!(!text_of(&events).is_empty());
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LlmEvent::Usage(u) if u.input > 0 && u.output > 0))
    );

    let sent = mock.requests();
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(sent[0].header("authorization"), Some("Bearer sk-test-key"));
    assert_eq!(sent[0].body["stream"], true);
    assert_eq!(sent[0].body["stream_options"]["include_usage"], true);
    assert_eq!(sent[0].body["model"], "mock-model");
    assert_eq!(
        sent[0].body["messages"][0],
        json!({"role": "system", "content": "You write workflows."})
    );
    assert_eq!(sent[0].body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent[1].body["stream"], false);
    assert_eq!(
        pool.accounting
            .calls
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

/// The second request of a round trip carries the call and its result in the protocol's shape.
fn follow_up(call: &ToolCall) -> ChatRequest {
    let mut follow_up = request(true);
    follow_up.messages.push(ChatMessage::Assistant {
        content: None,
        tool_calls: vec![call.clone()],
    });
    follow_up.messages.push(ChatMessage::tool_result(
        call,
        "{\"temperature\": 21}",
        false,
    ));
    follow_up
}

#[actix_rt::test]
async fn openai_tool_call_round_trip() {
    let mock = MockUpstream::start(vec![
        Reply::sse(openai_tool_call_stream(
            "call_1",
            "get_weather",
            &json!({"city": "Paris"}),
        )),
        Reply::sse(openai_text_stream("It is 21 degrees in Paris.")),
    ]);
    let pool = ProviderPool::start(vec![openai(&mock)], 1);
    let first = call(&pool, request(true)).await;
    let calls = tool_calls(&first);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].id.as_str(), calls[0].name.as_str()),
        ("call_1", "get_weather")
    );
    assert_eq!(calls[0].arguments, json!({"city": "Paris"}));
    assert!(first.contains(&LlmEvent::Usage(Usage {
        input: 20,
        output: 9
    })));
    assert_eq!(
        first.last(),
        Some(&LlmEvent::Finished {
            reason: FinishReason::ToolCalls
        })
    );

    let second = call(&pool, follow_up(calls[0])).await;
    assert_eq!(text_of(&second), "It is 21 degrees in Paris.");
    let messages = &mock.requests()[1].body["messages"];
    assert_eq!(
        messages[2]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 21}"})
    );
}

#[actix_rt::test]
async fn anthropic_streams_tool_calls_and_round_trips_results() {
    let body = fixture("anthropic_messages_stream_tool_use.sse");
    let mock = MockUpstream::start(vec![
        Reply::sse(body.clone()),
        Reply::sse(fixture("anthropic_messages_stream_text_claude37.sse")),
        Reply::json(
            200,
            serde_json::from_str(&fixture("anthropic_messages_nonstream_text.json")).unwrap(),
        ),
    ]);
    let config = upstream(
        ProviderKind::Anthropic,
        Protocol::AnthropicMessages,
        mock.base(),
    );
    let pool = ProviderPool::start(vec![config], 1);

    let first = call(&pool, request(true)).await;
    assert_eq!(first, decoded(Protocol::AnthropicMessages, &body));
    let calls = tool_calls(&first);
    assert_eq!(calls[0].name, "get_weather");
    assert!(calls[0].arguments.is_object());

    let second = call(&pool, follow_up(calls[0])).await;
    assert!(text_of(&second).starts_with("I'm Claude, an AI assistant made by Anthropic."));
    let whole = call(&pool, request(false)).await;
    assert!(!text_of(&whole).is_empty());

    let sent = mock.requests();
    assert_eq!(sent[0].path, "/v1/messages");
    assert_eq!(sent[0].header("x-api-key"), Some("sk-test-key"));
    assert_eq!(sent[0].header("anthropic-version"), Some("2023-06-01"));
    assert!(sent[0].header("authorization").is_none());
    assert_eq!(sent[0].body["system"], "You write workflows.");
    assert!(sent[0].body["max_tokens"].as_u64().is_some());
    assert_eq!(sent[0].body["tools"][0]["input_schema"]["type"], "object");
    let result_turn = &sent[1].body["messages"][2];
    assert_eq!(result_turn["role"], "user");
    assert_eq!(result_turn["content"][0]["type"], "tool_result");
    assert_eq!(
        result_turn["content"][0]["tool_use_id"],
        Value::from(calls[0].id.as_str())
    );
}

#[actix_rt::test]
async fn ollama_native_streams_whole_tool_calls_and_round_trips_results() {
    let body = fixture("ollama_api_chat_stream_tool_calls.ndjson");
    let mock = MockUpstream::start(vec![
        Reply::ndjson(body.clone()),
        Reply::ndjson(fixture("ollama_api_chat_stream_text.ndjson")),
    ]);
    let config = upstream(ProviderKind::Ollama, Protocol::OllamaChat, mock.base());
    let pool = ProviderPool::start(vec![config], 1);

    let first = call(&pool, request(true)).await;
    let calls = tool_calls(&first);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].arguments, json!({"city": "Detroit"}));
    assert!(
        calls.iter().all(|call| call.id.starts_with("call_")),
        "ids are generated"
    );
    assert_eq!(
        first.last(),
        Some(&LlmEvent::Finished {
            reason: FinishReason::ToolCalls
        })
    );

    let second = call(&pool, follow_up(calls[0])).await;
    assert!(text_of(&second).starts_with("I am Granite, a language model developed by IBM"));
    let sent = mock.requests();
    assert_eq!(sent[0].path, "/api/chat");
    assert!(sent[0].header("authorization").is_none());
    assert_eq!(sent[1].body["messages"][3]["role"], "tool");
}

#[actix_rt::test]
async fn retries_after_429_honouring_retry_after_and_after_503() {
    let mock = MockUpstream::start(vec![
        Reply::json(429, json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}))
            .with_header("retry-after", "1"),
        Reply::json(503, json!({"error": {"message": "overloaded"}})),
        Reply::sse(openai_text_stream("third time lucky")),
    ]);
    let pool = ProviderPool::start(vec![openai(&mock)], 1);
    let started = Instant::now();
    let events = call(&pool, request(true)).await;
    assert_eq!(text_of(&events), "third time lucky");
    assert_eq!(mock.requests().len(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
}

#[actix_rt::test]
async fn no_retry_once_output_has_started() {
    let mut chunks: Vec<String> = openai_text_stream("partial answer that never ends")
        .split_inclusive("\n\n")
        .map(str::to_owned)
        .collect();
    chunks.truncate(3);
    let mock = MockUpstream::start(vec![
        Reply::sse_chunks(chunks, Duration::ZERO, false),
        Reply::sse(openai_text_stream("a retry must not happen")),
    ]);
    let pool = ProviderPool::start(vec![openai(&mock)], 1);
    let events = call(&pool, request(true)).await;
    assert!(text_of(&events).starts_with("partial"));
    assert!(
        matches!(failure(&events), ProviderError::Protocol { .. }),
        "{events:?}"
    );
    assert_eq!(mock.requests().len(), 1);
}

#[actix_rt::test]
async fn auth_errors_are_not_retried_and_fall_back_to_the_next_provider() {
    let primary = MockUpstream::start(vec![Reply::json(
        401,
        json!({"error": {"message": "Incorrect API key provided: sk-test-key", "type": "invalid_request_error", "code": "invalid_api_key"}}),
    )]);
    let fallback = MockUpstream::start(vec![Reply::sse(fixture(
        "anthropic_messages_stream_text.sse",
    ))]);
    let mut anthropic = upstream(
        ProviderKind::Anthropic,
        Protocol::AnthropicMessages,
        fallback.base(),
    );
    anthropic.model = "claude-fallback".into();
    let pool = ProviderPool::start(vec![openai(&primary), anthropic], 1);
    let events = call(&pool, request(true)).await;
    assert!(!text_of(&events).is_empty());
    assert_eq!(
        events.last(),
        Some(&LlmEvent::Finished {
            reason: FinishReason::Stop
        })
    );
    assert_eq!(primary.requests().len(), 1, "401 is not retried");
    assert_eq!(fallback.requests()[0].body["model"], "claude-fallback");
}

#[actix_rt::test]
async fn the_last_error_is_reported_when_every_provider_fails() {
    let mock = MockUpstream::start(vec![
        Reply::json(500, json!({"error": {"message": "boom"}})),
        Reply::json(500, json!({"error": {"message": "boom"}})),
        Reply::json(500, json!({"error": {"message": "still boom"}})),
    ]);
    let pool = ProviderPool::start(vec![openai(&mock)], 1);
    let events = call(&pool, request(true)).await;
    assert_eq!(events.len(), 1);
    assert!(matches!(
        failure(&events),
        ProviderError::UpstreamUnavailable {
            status: Some(500),
            ..
        }
    ));
    assert!(failure(&events).to_string().contains("still boom"));
    assert_eq!(mock.requests().len(), 3);
}

#[actix_rt::test]
async fn first_byte_between_chunk_and_total_timeouts() {
    let slow_head = Reply::Delay(
        Duration::from_secs(3),
        Box::new(Reply::sse(openai_text_stream("late"))),
    );
    let hanging = Reply::sse_chunks(
        vec![
            openai_text_stream("x")
                .split_inclusive("\n\n")
                .next()
                .unwrap()
                .to_owned(),
        ],
        Duration::ZERO,
        true,
    );
    let trickle = Reply::sse_chunks(
        openai_text_stream("a b c d e f g h i j k l")
            .split_inclusive("\n\n")
            .map(str::to_owned)
            .collect(),
        Duration::from_millis(300),
        false,
    );
    let mock = MockUpstream::start(vec![slow_head, hanging, trickle]);
    let mut config = openai(&mock);
    config.retry.max_retries = 0;
    config.timeouts.first_byte = Duration::from_millis(500);
    config.timeouts.between_chunks = Duration::from_millis(800);
    let pool = ProviderPool::start(vec![config.clone()], 1);
    let events = call(&pool, request(true)).await;
    assert_eq!(
        failure(&events),
        &ProviderError::Timeout {
            phase: TimeoutPhase::Response
        }
    );
    let events = call(&pool, request(true)).await;
    assert_eq!(
        failure(&events),
        &ProviderError::Timeout {
            phase: TimeoutPhase::Stream
        }
    );

    config.timeouts.total = Duration::from_secs(1);
    let pool = ProviderPool::start(vec![config], 1);
    let events = call(&pool, request(true)).await;
    assert_eq!(
        failure(&events),
        &ProviderError::Timeout {
            phase: TimeoutPhase::Total
        }
    );
}

#[actix_rt::test]
async fn connect_timeout_when_the_upstream_never_accepts() {
    // A listener with a full accept queue: the kernel drops further SYNs, so connect hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            fillers.push(stream);
        }
    }
    let mut config = upstream(
        ProviderKind::OpenAi,
        Protocol::OpenAiChat,
        format!("http://{address}/v1"),
    );
    config.retry.max_retries = 0;
    config.timeouts.connect = Duration::from_millis(500);
    let pool = ProviderPool::start(vec![config], 1);
    let events = call(&pool, request(true)).await;
    assert_eq!(
        failure(&events),
        &ProviderError::Timeout {
            phase: TimeoutPhase::Connect
        }
    );
    drop(listener);
}

#[actix_rt::test]
async fn a_truncated_stream_and_a_malformed_line_are_clear_errors() {
    let whole = fixture("openai_chat_stream_text.sse");
    let truncated = whole[..whole.len() / 2].to_owned();
    let malformed = format!(
        "{}data: {{not json\n\n",
        openai_text_stream("x")
            .split_inclusive("\n\n")
            .next()
            .unwrap()
    );
    let mock = MockUpstream::start(vec![Reply::sse(truncated), Reply::sse(malformed)]);
    let mut config = openai(&mock);
    config.retry.max_retries = 0;
    let pool = ProviderPool::start(vec![config], 1);
    for _ in 0..2 {
        let events = call(&pool, request(true)).await;
        let error = failure(&events);
        assert!(matches!(error, ProviderError::Protocol { .. }), "{error:?}");
    }
}

/// A call under way on an upstream that never ends, past its first delta: the mock, the
/// collector receiving its events, and the call's cancel token.
async fn call_under_way() -> (MockUpstream, Addr<Collector>, CancellationToken) {
    let mock = MockUpstream::start(vec![Reply::endless_openai_stream()]);
    let pool = ProviderPool::start(vec![openai(&mock)], 1);
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let collector = Collector(sender).start();
    let cancel = CancellationToken::new();
    pool.start_completion(StartCompletion {
        request: request(true),
        reply_to: collector.clone().recipient(),
        cancel: cancel.clone(),
    });
    assert!(matches!(
        receiver.recv().await,
        Some(LlmEvent::TextDelta(_))
    ));
    (mock, collector, cancel)
}

#[actix_rt::test]
async fn cancelling_a_call_closes_the_upstream_connection() {
    let (mock, _collector, cancel) = call_under_way().await;
    cancel.cancel();
    mock.wait_until("the stream abandoned", |mock| mock.abandoned_streams() == 1)
        .await;
}

#[actix_rt::test]
async fn a_caller_that_goes_away_stops_the_upstream_read() {
    let (mock, collector, _cancel) = call_under_way().await;
    collector.do_send(StopCollector);
    mock.wait_until("the stream abandoned", |mock| mock.abandoned_streams() == 1)
        .await;
}

#[derive(Message)]
#[rtype(result = "()")]
struct StopCollector;

impl Handler<StopCollector> for Collector {
    type Result = ();

    fn handle(&mut self, _: StopCollector, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[actix_rt::test]
async fn the_offline_provider_needs_no_network() {
    let config = upstream(ProviderKind::Offline, Protocol::Offline, String::new());
    let pool = ProviderPool::start(vec![config], 1);
    let mut offline = request(true);
    offline.tools = Default::default();
    let events = call(&pool, offline).await;
    assert!(text_of(&events).contains("not a language model"));
    assert_eq!(
        events.last(),
        Some(&LlmEvent::Finished {
            reason: FinishReason::Stop
        })
    );
}
