//! Wire-level tests of [`super::server`] over [`super::stdio_server`]: raw JSON lines in, raw
//! JSON lines out, over an in-memory pipe, with a small tool provider. They pin the era rules, the error codes and
//! cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

use super::features::ServerFeatures;
use super::jsonrpc::{INVALID_PARAMS, RpcError};
use super::notify::CallContext;
use super::server::{McpServer, ServerIdentity};
use super::stdio_server::serve;

/// `echo` returns its text; `slow` says it started, then waits for cancellation (recording
/// it); `steps` reports two progress notes first.
#[derive(Default)]
struct TestTools {
    slow_started: Arc<tokio::sync::Notify>,
    slow_cancelled: Arc<AtomicBool>,
}

impl ServerFeatures for TestTools {
    fn tools(&self) -> Vec<Value> {
        vec![json!({"name": "echo", "inputSchema": {"type": "object"}})]
    }

    fn call(
        &self,
        name: &str,
        arguments: Value,
        mut context: CallContext,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        let started = self.slow_started.clone();
        let cancelled = self.slow_cancelled.clone();
        let name = name.to_owned();
        Box::pin(async move {
            match name.as_str() {
                "echo" => Ok(json!({"content": [{"type": "text", "text": arguments["text"]}]})),
                "slow" => {
                    started.notify_one();
                    context.cancel.cancelled().await;
                    cancelled.store(true, Ordering::SeqCst);
                    Ok(json!({"content": []}))
                }
                "steps" => {
                    if let Some(progress) = context.progress.as_mut() {
                        progress.report("one".into());
                        progress.report("two".into());
                    }
                    Ok(json!({"content": [{"type": "text", "text": "done"}]}))
                }
                other => Err(RpcError::new(
                    INVALID_PARAMS,
                    format!("Unknown tool: {other}"),
                )),
            }
        })
    }
}

struct Peer {
    input: DuplexStream,
    output: tokio::io::Lines<BufReader<DuplexStream>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Peer {
    fn start(tools: TestTools) -> Self {
        let (input, server_input) = tokio::io::duplex(1 << 16);
        let (server_output, output) = tokio::io::duplex(1 << 16);
        let identity = ServerIdentity {
            name: "test".into(),
            version: "1".into(),
            instructions: "be good".into(),
        };
        let server = tokio::spawn(serve(
            server_input,
            server_output,
            McpServer::new(identity, Arc::new(tools)),
        ));
        Self {
            input,
            output: BufReader::new(output).lines(),
            server,
        }
    }

    async fn send(&mut self, message: Value) {
        let line = format!("{message}\n");
        self.input.write_all(line.as_bytes()).await.unwrap();
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(5), self.output.next_line())
            .await
            .expect("a message within 5 s")
            .unwrap()
            .expect("the server is still writing");
        serde_json::from_str(&line).unwrap()
    }

    async fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        self.next().await
    }
}

fn modern_meta() -> Value {
    json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}})
}

#[tokio::test]
async fn a_modern_connection_carries_meta_and_refuses_the_handshake() {
    let mut peer = Peer::start(TestTools::default());
    let discovered = peer.request(1, "server/discover", modern_meta()).await;
    let result = &discovered["result"];
    assert_eq!(result["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(result["resultType"], "complete");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "test"
    );

    let handshake = peer
        .request(2, "initialize", json!({"protocolVersion": "2025-11-25"}))
        .await;
    assert_eq!(handshake["error"]["code"], -32022);
    assert_eq!(
        handshake["error"]["data"]["supported"],
        json!(["2026-07-28"])
    );

    let bare = peer.request(3, "tools/list", json!({})).await;
    assert_eq!(bare["error"]["code"], -32602);
    let old = peer
        .request(
            4,
            "tools/list",
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2025-11-25"}}),
        )
        .await;
    assert_eq!(old["error"]["code"], -32022);

    let listed = peer.request(5, "tools/list", modern_meta()).await;
    assert_eq!(listed["result"]["tools"][0]["name"], "echo");
    assert_eq!(listed["result"]["ttlMs"], 0);
    assert_eq!(listed["result"]["resultType"], "complete");
}

#[tokio::test]
async fn a_legacy_connection_negotiates_and_keeps_protocol_errors_apart() {
    let mut peer = Peer::start(TestTools::default());
    let init = peer
        .request(
            1,
            "initialize",
            json!({"protocolVersion": "2099-01-01", "capabilities": {}}),
        )
        .await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init["result"]["serverInfo"]["name"], "test");
    assert!(init["result"].get("resultType").is_none());
    peer.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;

    let discover = peer.request(2, "server/discover", modern_meta()).await;
    assert_eq!(discover["error"]["code"], -32601);

    let echoed = peer
        .request(
            3,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        )
        .await;
    assert_eq!(echoed["result"]["content"][0]["text"], "hi");

    let unknown = peer
        .request(4, "tools/call", json!({"name": "nope", "arguments": {}}))
        .await;
    assert_eq!(unknown["error"]["code"], -32602);
    let bad_arguments = peer
        .request(5, "tools/call", json!({"name": "echo", "arguments": [1]}))
        .await;
    assert_eq!(bad_arguments["error"]["code"], -32602);
    let no_method = peer.request(6, "sampling/createMessage", json!({})).await;
    assert_eq!(no_method["error"]["code"], -32601);

    peer.input.write_all(b"{not json\n").await.unwrap();
    let parse = peer.next().await;
    assert_eq!(parse["error"]["code"], -32700);
    assert!(parse["id"].is_null());
}

#[tokio::test]
async fn progress_goes_out_before_the_reply_and_a_cancelled_call_gets_no_reply() {
    let tools = TestTools::default();
    let cancelled = tools.slow_cancelled.clone();
    let mut peer = Peer::start(tools);
    peer.request(1, "initialize", json!({"protocolVersion": "2025-11-25"}))
        .await;

    peer.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "steps", "_meta": {"progressToken": "p"}}}))
        .await;
    let first = peer.next().await;
    let second = peer.next().await;
    let reply = peer.next().await;
    assert_eq!(first["method"], "notifications/progress");
    assert_eq!(
        first["params"],
        json!({"progressToken": "p", "progress": 1, "message": "one"})
    );
    assert_eq!(second["params"]["progress"], 2);
    assert_eq!(reply["id"], 2);

    peer.send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "slow"}}),
    )
    .await;
    peer.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3, "reason": "enough"}}))
        .await;
    // The next message is the ping's reply: nothing came for the cancelled request.
    let pong = peer.request(4, "ping", json!({})).await;
    assert_eq!(pong, json!({"jsonrpc": "2.0", "id": 4, "result": {}}));
    assert!(cancelled.load(Ordering::SeqCst));
}

#[tokio::test]
async fn stdin_eof_cancels_running_calls_and_ends_the_session() {
    let tools = TestTools::default();
    let started = tools.slow_started.clone();
    let cancelled = tools.slow_cancelled.clone();
    let mut peer = Peer::start(tools);
    peer.request(1, "initialize", json!({"protocolVersion": "2025-11-25"}))
        .await;
    peer.send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "slow"}}),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(5), started.notified())
        .await
        .expect("the call is running");
    let Peer { input, server, .. } = peer;
    drop(input);
    let finished = tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("the session ends promptly");
    assert!(finished.unwrap().is_ok());
    assert!(cancelled.load(Ordering::SeqCst));
}
