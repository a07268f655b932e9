//! Sampling for supervised MCP servers: a server's `sampling/createMessage` request is
//! answered by the agent's own model, through the configured provider ([`ProviderPool`]).
//! Text messages only (other content is refused), with limits a server cannot raise: at most
//! [`MAX_TOKENS`] tokens per answer, [`MAX_CONCURRENT`] requests at once across all servers
//! (one more is refused at once, not queued), and [`TIMEOUT`] per answer. No tools are offered
//! to the model, so a server cannot make it act.
//!
//! The provider replies to an actor, so a small collector actor on an arbiter of its own
//! gathers the text; the connection waits for it through a oneshot channel.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Arbiter, ArbiterHandle, Context, Handler};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use super::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS, RpcError};
use crate::provider::{
    ChatMessage, ChatRequest, FinishReason, LlmEvent, ProviderPool, StartCompletion,
};

/// The most tokens one answer may have, whatever the server asks.
pub const MAX_TOKENS: u32 = 1024;
/// Sampling requests answered at once; more are refused.
pub const MAX_CONCURRENT: usize = 2;
/// The longest one answer may take.
pub const TIMEOUT: Duration = Duration::from_secs(120);
/// The most text kept from the model for one answer.
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Answers servers' sampling requests with the agent's model; cheap to clone.
#[derive(Clone)]
pub struct Sampler {
    pool: ProviderPool,
    permits: Arc<Semaphore>,
    arbiter: Arc<OwnedArbiter>,
}

/// Stops the arbiter when the last sampler handle goes.
struct OwnedArbiter(ArbiterHandle);

impl Drop for OwnedArbiter {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl Sampler {
    /// Must be called inside a running actix system.
    pub fn new(pool: ProviderPool) -> Self {
        Self {
            pool,
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT)),
            arbiter: Arc::new(OwnedArbiter(Arbiter::new().handle())),
        }
    }

    /// The `CreateMessageResult` for a server's `sampling/createMessage` params.
    pub async fn answer(&self, server: &str, params: &Value) -> Result<Value, RpcError> {
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            return Err(RpcError::new(
                INTERNAL_ERROR,
                format!("at most {MAX_CONCURRENT} sampling requests are answered at once"),
            ));
        };
        let request = chat_request(params)?;
        tracing::info!(
            server,
            max_tokens = request.max_tokens,
            "MCP server asked the model (sampling)"
        );
        let (done, answer) = oneshot::channel();
        let pool = self.pool.clone();
        let cancel = CancellationToken::new();
        let provider_cancel = cancel.clone();
        let handed_over = self.arbiter.0.spawn_fn(move || {
            let collector = Collector {
                text: String::new(),
                done: Some(done),
            }
            .start();
            pool.start_completion(StartCompletion {
                request,
                reply_to: collector.recipient(),
                cancel: provider_cancel,
            });
        });
        if !handed_over {
            return Err(RpcError::new(INTERNAL_ERROR, "the model is not available"));
        }
        let _stop_on_drop = cancel.drop_guard();
        let (text, reason) = tokio::time::timeout(TIMEOUT, answer)
            .await
            .map_err(|_| RpcError::new(INTERNAL_ERROR, "the model did not answer in time"))?
            .map_err(|_| RpcError::new(INTERNAL_ERROR, "the model call ended without an answer"))?
            .map_err(|error| RpcError::new(INTERNAL_ERROR, format!("the model failed: {error}")))?;
        let stop_reason = match reason {
            FinishReason::Length => "maxTokens",
            _ => "endTurn",
        };
        Ok(json!({
            "role": "assistant",
            "content": {"type": "text", "text": text},
            "model": self.pool.model,
            "stopReason": stop_reason,
        }))
    }
}

/// The model request for sampling params: text messages, the system prompt, capped tokens.
fn chat_request(params: &Value) -> Result<ChatRequest, RpcError> {
    let invalid = |why: &str| RpcError::new(INVALID_PARAMS, why.to_owned());
    let messages = params
        .get("messages")
        .and_then(Value::as_array)
        .filter(|messages| !messages.is_empty())
        .ok_or_else(|| invalid("params.messages must be a non-empty array"))?;
    let mut chat = Vec::with_capacity(messages.len());
    for message in messages {
        let text = match message.get("content") {
            Some(block) if block.get("type").and_then(Value::as_str) == Some("text") => block
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => return Err(invalid("only text content can be sampled")),
        };
        chat.push(match message.get("role").and_then(Value::as_str) {
            Some("assistant") => ChatMessage::assistant_text(text),
            _ => ChatMessage::user(text),
        });
    }
    let requested = params
        .get("maxTokens")
        .and_then(Value::as_u64)
        .map_or(MAX_TOKENS, |tokens| {
            u32::try_from(tokens).unwrap_or(MAX_TOKENS)
        });
    Ok(ChatRequest {
        model: String::new(),
        system: params
            .get("systemPrompt")
            .and_then(Value::as_str)
            .map(Into::into),
        messages: chat.into(),
        tools: Default::default(),
        max_tokens: Some(requested.clamp(1, MAX_TOKENS)),
        temperature: params
            .get("temperature")
            .and_then(Value::as_f64)
            .map(|temperature| temperature as f32),
        stream: true,
    })
}

/// Gathers one model call's text.
struct Collector {
    text: String,
    done: Option<oneshot::Sender<Result<(String, FinishReason), String>>>,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<LlmEvent> for Collector {
    type Result = ();

    fn handle(&mut self, event: LlmEvent, ctx: &mut Self::Context) {
        let outcome = match event {
            LlmEvent::TextDelta(delta) => {
                let room = MAX_TEXT_BYTES.saturating_sub(self.text.len());
                if delta.len() <= room {
                    self.text.push_str(&delta);
                }
                return;
            }
            LlmEvent::Finished { reason } => Ok((std::mem::take(&mut self.text), reason)),
            LlmEvent::Failed(error) => Err(error.to_string()),
            _ => return,
        };
        if let Some(done) = self.done.take() {
            let _ = done.send(outcome);
        }
        actix::ActorContext::stop(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_text_and_cap_tokens() {
        let request = chat_request(&json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
            "systemPrompt": "be brief",
            "maxTokens": 100_000,
        }))
        .unwrap();
        assert_eq!(request.max_tokens, Some(MAX_TOKENS));
        assert_eq!(request.system.as_deref(), Some("be brief"));
        assert!(request.tools.is_empty());
        let image = json!({"messages": [{"role": "user", "content": {"type": "image", "data": "", "mimeType": "image/png"}}]});
        assert_eq!(chat_request(&image).unwrap_err().code, INVALID_PARAMS);
        assert!(chat_request(&json!({"messages": []})).is_err());
    }
}
