//! What one model call costs on the request path, counted by an allocator that tallies the
//! allocations of the thread that makes them: composing the request from the session's
//! transcript (the `Composer` actor, on this thread as on a worker) and encoding its body in
//! each wire protocol. The system prompt and tool catalog are shared and encoded once, and
//! the transcript is shared with the request, so neither the catalog's size nor the
//! conversation's length adds an allocation to a model call; the figures print with
//! `--nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use std::time::Duration;

use actix::{Actor, Context, Handler};
use kubiya_actors::composer::{ComposeTurn, Composer, Purpose};
use kubiya_actors::mcp::McpAccess;
use kubiya_actors::provider::{
    ChatMessage, ChatRequest, LlmEvent, Protocol, ProviderKind, ProviderPool, RetryPolicy,
    StartCompletion, Timeouts, ToolCall, ToolSpec, Transcript, UpstreamConfig, encode_request,
};
use serde_json::json;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

struct Counting;

thread_local! {
    /// Allocations (and reallocations) made by this thread, and the bytes they asked for.
    static ALLOCATED: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

fn count(bytes: usize) {
    // `try_with`: a thread's last allocations may come after its locals are gone.
    let _ = ALLOCATED.try_with(|tally| {
        let (calls, total) = tally.get();
        tally.set((calls + 1, total + bytes as u64));
    });
}

// SAFETY: every call is passed to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What `work` allocated on this thread: (allocations, bytes).
fn allocations<T>(work: impl FnOnce() -> T) -> ((u64, u64), T) {
    let before = ALLOCATED.with(Cell::get);
    let output = work();
    let after = ALLOCATED.with(Cell::get);
    ((after.0 - before.0, after.1 - before.1), output)
}

/// A chat turn of `rounds` tool calls: each an assistant call and its result.
fn transcript(rounds: usize) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::user(
        "Build a workflow that backs up the database every night and run it",
    )];
    for round in 0..rounds {
        let call = ToolCall {
            id: format!("call_{round}"),
            name: "validate_workflow".into(),
            arguments: json!({"workflow": {"name": "backup", "steps": [
                {"name": "dump", "command": "pg_dump app > /tmp/app.sql"},
                {"name": "upload", "command": "aws s3 cp /tmp/app.sql s3://backups/", "depends": ["dump"]},
            ]}}),
        };
        messages.push(ChatMessage::Assistant {
            content: Some("Validating the workflow.".into()),
            tool_calls: vec![call.clone()],
        });
        messages.push(ChatMessage::tool_result(
            &call,
            r#"{"valid":true,"errors":[]}"#,
            false,
        ));
    }
    messages
}

/// What composing the next request costs the session and the composer: (allocations, bytes).
async fn compose_cost(composer: &actix::Addr<Composer>, kept: &Transcript) -> (u64, u64) {
    let before = ALLOCATED.with(Cell::get);
    let request = composer
        .send(ComposeTurn {
            transcript: kept.clone(),
            instructions: None,
            purpose: Purpose::Chat,
            model: None,
            mcp_access: McpAccess::All,
        })
        .await
        .expect("the composer answers");
    let after = ALLOCATED.with(Cell::get);
    assert_eq!(request.messages.len(), kept.len());
    (after.0 - before.0, after.1 - before.1)
}

#[actix_rt::test]
async fn composing_a_request_copies_nothing_of_the_conversation() {
    let composer = Composer::new(None).start();
    let short = Transcript::from(transcript(0));
    let long = Transcript::from(transcript(20));
    // The first request of a purpose encodes nothing yet, but settles the actor's queues.
    compose_cost(&composer, &short).await;
    let short_cost = compose_cost(&composer, &short).await;
    let long_cost = compose_cost(&composer, &long).await;
    assert_eq!(
        short_cost, long_cost,
        "a longer conversation costs composing nothing more"
    );
    println!(
        "compose, {} messages: {} allocations, {} bytes; {} messages: {} allocations, {} bytes",
        short.len(),
        short_cost.0,
        short_cost.1,
        long.len(),
        long_cost.0,
        long_cost.1
    );
}

/// The catalog a deployment with MCP servers offers: the built-in tools and `extra` more.
fn catalog(extra: usize) -> Vec<ToolSpec> {
    let mut tools = kubiya_actors::tools::builtin_catalog();
    tools.extend((0..extra).map(|index| ToolSpec {
        name: format!("github__tool_{index}"),
        description:
            "Does one thing to a repository, described at some length for the model.".into(),
        parameters: json!({"type": "object", "properties": {
            "owner": {"type": "string"}, "repo": {"type": "string"}, "number": {"type": "integer"},
        }, "required": ["owner", "repo"]}),
    }));
    tools
}

fn request(messages: impl Into<Transcript>, tools: Vec<ToolSpec>) -> ChatRequest {
    ChatRequest {
        model: "some-model".into(),
        system: Some("You are the Kubiya workflow agent. ".repeat(40).into()),
        messages: messages.into(),
        tools: tools.into(),
        max_tokens: None,
        temperature: Some(0.2),
        stream: true,
    }
}

#[test]
fn encoding_a_body_encodes_the_prefix_once() {
    for protocol in [
        Protocol::OpenAiChat,
        Protocol::AnthropicMessages,
        Protocol::OllamaChat,
    ] {
        let small = request(transcript(1), catalog(0));
        let large = request(transcript(1), catalog(40));
        // The first body of a catalog encodes its prefix; the ones after reuse it.
        let (_, first) = allocations(|| encode_request(protocol, &large).unwrap());
        let (small_cost, _) = allocations(|| encode_request(protocol, &small).unwrap());
        let (small_cost_again, _) = allocations(|| encode_request(protocol, &small).unwrap());
        let (large_cost, body) = allocations(|| encode_request(protocol, &large).unwrap());
        assert_eq!(body, first);
        assert_eq!(
            large_cost.0, small_cost_again.0,
            "{protocol:?}: a larger catalog costs no more allocations"
        );
        assert!(
            large_cost.1 < body.len() as u64 * 3 / 2,
            "{protocol:?}: {} bytes allocated for a body of {}: the buffer grew",
            large_cost.1,
            body.len()
        );
        println!(
            "{protocol:?}: body of {} bytes; {} allocations ({} bytes) with {} tools, {} ({} bytes) with {}",
            body.len(),
            large_cost.0,
            large_cost.1,
            large.tools.len(),
            small_cost_again.0,
            small_cost_again.1,
            small.tools.len(),
        );
        let _ = small_cost;
    }
}

/// Stands in for a session: keeps the transcript the request shares and, when the call has
/// finished, appends the answer to it, reporting what that append allocated.
struct Keeper {
    transcript: Transcript,
    appended: Option<oneshot::Sender<(u64, u64)>>,
}

impl Actor for Keeper {
    type Context = Context<Self>;
}

impl Handler<LlmEvent> for Keeper {
    type Result = ();

    fn handle(&mut self, event: LlmEvent, _: &mut Context<Self>) {
        if let LlmEvent::Finished { .. } = event {
            let answer = ChatMessage::assistant_text("The workflow is valid.");
            let (cost, ()) = allocations(|| self.transcript.push(answer));
            if let Some(appended) = self.appended.take() {
                let _ = appended.send(cost);
            }
        }
    }
}

#[actix_rt::test]
async fn a_finished_call_leaves_the_transcript_to_its_session() {
    let offline = UpstreamConfig {
        kind: ProviderKind::Offline,
        protocol: Protocol::Offline,
        base_url: String::new(),
        api_key: None,
        model: "offline".into(),
        timeouts: Timeouts::default(),
        retry: RetryPolicy::default(),
        max_connections: 1,
    };
    let pool = ProviderPool::start(vec![offline], 0);
    let mut messages = transcript(20);
    // Room for the answer, so an append that copies nothing allocates nothing.
    messages.reserve(4);
    let transcript = Transcript::from(messages);
    let (appended, append_cost) = oneshot::channel();
    let keeper = Keeper {
        transcript: transcript.clone(),
        appended: Some(appended),
    }
    .start();
    pool.start_completion(StartCompletion {
        // The request is the transcript's only other holder.
        request: request(transcript, catalog(0)),
        reply_to: keeper.recipient(),
        cancel: CancellationToken::new(),
    });
    let cost = tokio::time::timeout(Duration::from_secs(10), append_cost)
        .await
        .expect("the call finishes")
        .expect("the keeper appends");
    assert_eq!(
        cost,
        (0, 0),
        "the request still held the transcript when its call finished: the append copied it"
    );
}
