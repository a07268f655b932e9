//! Anthropic Messages (`POST {base}/v1/messages`).
//!
//! [`encode_request`] turns a [`ChatRequest`] into the Messages body: `system` at the top
//! level, `max_tokens` always present, tool calls as `tool_use` blocks and tool results as
//! `tool_result` blocks inside user turns, with consecutive same-role turns merged so roles
//! alternate. [`AnthropicStreamDecoder`] turns the SSE events of a streamed answer (decoded by
//! [`sse`](crate::framing::sse)) into [`LlmEvent`]s, dispatching on the JSON `type` of each payload;
//! [`parse_response`] does the same for a non-streamed body. Terminated by `message_stop`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::event::{FinishReason, LlmEvent, ProviderError, Usage, clip, settle_finish_reason};
use super::message::{
    ChatMessage, ChatRequest, ToolCall, object_arguments, parse_tool_arguments, temperature_json,
};
use crate::framing::sse::SseEvent;

/// Messages requires `max_tokens`; this is what we send when the caller set none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The `anthropic-version` header every official SDK sends with this body shape.
pub const API_VERSION: &str = "2023-06-01";

/// Builds the `/v1/messages` body.
pub fn encode_request(request: &ChatRequest) -> Value {
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            ChatMessage::User { content } => ("user", text_block(content).into_iter().collect()),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                let text = content.as_deref().and_then(text_block);
                let calls = tool_calls.iter().map(|call| {
                    let input = if call.arguments.is_object() {
                        call.arguments.clone()
                    } else {
                        Value::Object(Map::new())
                    };
                    json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
                });
                ("assistant", text.into_iter().chain(calls).collect())
            }
            ChatMessage::Tool {
                tool_call_id,
                content,
                is_error,
                ..
            } => {
                let mut block = json!({
                    "type": "tool_result",
                    "tool_use_id": tool_call_id,
                    "is_error": is_error,
                });
                if !content.is_empty() {
                    block["content"] = content.as_str().into();
                }
                ("user", vec![block])
            }
        };
        // Empty turns are rejected, and so are two turns in a row from the same role.
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks)| json!({"role": role, "content": blocks}))
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": request.stream,
    });
    if let Some(system) = request
        .system
        .as_deref()
        .filter(|system| !system.is_empty())
    {
        body["system"] = system.into();
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut spec = json!({"name": tool.name, "input_schema": tool.parameters_schema()});
                if !tool.description.is_empty() {
                    spec["description"] = tool.description.as_str().into();
                }
                spec
            })
            .collect();
        body["tools"] = tools.into();
    }
    if let Some(temperature) = request.temperature.map(temperature_json)
        && !temperature.is_null()
    {
        body["temperature"] = temperature;
    }
    body
}

/// Messages rejects empty text blocks, so empty text is left out.
fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

#[derive(Deserialize)]
struct UsageWire {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl UsageWire {
    /// Merges these counts into `usage`. Counts are totals so far, never increments; cached
    /// prompt tokens are added to the input so it compares with OpenAI's `prompt_tokens`.
    fn apply_to(&self, usage: &mut Usage) {
        if let Some(input) = self.input_tokens {
            usage.input = input
                + self.cache_creation_input_tokens.unwrap_or(0)
                + self.cache_read_input_tokens.unwrap_or(0);
        }
        if let Some(output) = self.output_tokens {
            usage.output = output;
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEventWire {
    MessageStart {
        message: MessageStartWire,
    },
    ContentBlockStart {
        index: u32,
        content_block: StreamBlockWire,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDeltaWire,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaWire,
        usage: Option<UsageWire>,
    },
    MessageStop,
    Error {
        error: Value,
    },
    /// `ping` and event types newer than this code.
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
struct MessageStartWire {
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamBlockWire {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDeltaWire {
    TextDelta {
        text: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// `signature_delta`, `citations_delta` and newer kinds.
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
struct MessageDeltaWire {
    stop_reason: Option<String>,
}

/// A `tool_use` block whose `input_json_delta` fragments are still arriving.
#[derive(Debug)]
struct PartialToolUse {
    index: u32,
    id: String,
    name: String,
    input_json: String,
}

/// Decodes one streamed Messages answer. Feed every SSE event to
/// [`AnthropicStreamDecoder::push_event`]; when the body ends call
/// [`AnthropicStreamDecoder::end_of_stream`].
#[derive(Debug, Default)]
pub struct AnthropicStreamDecoder {
    tool_uses: Vec<PartialToolUse>,
    usage: Option<Usage>,
    stop_reason: Option<FinishReason>,
    emitted_tool_calls: bool,
    /// `Finished` or `Failed` went out; everything after is ignored.
    done: bool,
}

impl AnthropicStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the stream reached `message_stop` or failed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes one SSE event, appending what it completes to `out`. The SSE event name is
    /// not consulted: the payload's `type` says the same and survives re-framing.
    pub fn push_event(&mut self, event: &SseEvent, out: &mut Vec<LlmEvent>) {
        if self.done {
            return;
        }
        // Real captures pad some payloads with trailing spaces.
        let data = event.data.trim();
        let parsed: StreamEventWire = match serde_json::from_str(data) {
            Ok(parsed) => parsed,
            Err(error) => {
                return self.fail(
                    ProviderError::protocol(format!("malformed event ({error}): {}", clip(data))),
                    out,
                );
            }
        };
        match parsed {
            StreamEventWire::MessageStart { message } => {
                if let Some(counts) = message.usage {
                    counts.apply_to(self.usage.get_or_insert_with(Usage::default));
                }
            }
            StreamEventWire::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                StreamBlockWire::Text { text } if !text.is_empty() => {
                    out.push(LlmEvent::TextDelta(text));
                }
                StreamBlockWire::Thinking { thinking } if !thinking.is_empty() => {
                    out.push(LlmEvent::ReasoningDelta(thinking));
                }
                // The block's own `input` is always `{}` here; the deltas carry the real one.
                StreamBlockWire::ToolUse { id, name } => self.tool_uses.push(PartialToolUse {
                    index,
                    id,
                    name,
                    input_json: String::new(),
                }),
                _ => {}
            },
            StreamEventWire::ContentBlockDelta { index, delta } => match delta {
                BlockDeltaWire::TextDelta { text } if !text.is_empty() => {
                    out.push(LlmEvent::TextDelta(text));
                }
                BlockDeltaWire::ThinkingDelta { thinking } if !thinking.is_empty() => {
                    out.push(LlmEvent::ReasoningDelta(thinking));
                }
                // Deltas of blocks we do not track (server tools) are dropped.
                BlockDeltaWire::InputJsonDelta { partial_json } => {
                    if let Some(tool_use) = self.tool_uses.iter_mut().find(|t| t.index == index) {
                        tool_use.input_json.push_str(&partial_json);
                    }
                }
                _ => {}
            },
            StreamEventWire::ContentBlockStop { index } => {
                if let Some(slot) = self.tool_uses.iter().position(|t| t.index == index) {
                    let tool_use = self.tool_uses.remove(slot);
                    if let Err(error) = self.emit_tool_use(tool_use, out) {
                        self.fail(error, out);
                    }
                }
            }
            StreamEventWire::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    self.stop_reason = Some(finish_reason(&reason));
                }
                if let Some(counts) = usage {
                    counts.apply_to(self.usage.get_or_insert_with(Usage::default));
                }
            }
            StreamEventWire::MessageStop => self.finish(out),
            // The caller decides about retries: text may already have been forwarded.
            StreamEventWire::Error { error } => {
                self.fail(ProviderError::from_error_value(&error), out);
            }
            StreamEventWire::Ignored => {}
        }
    }

    /// Call once the body has ended: reports a stream that stopped before `message_stop`.
    pub fn end_of_stream(&mut self) -> Option<LlmEvent> {
        if self.done {
            return None;
        }
        self.done = true;
        Some(LlmEvent::Failed(ProviderError::protocol(
            "the stream ended before `message_stop`",
        )))
    }

    fn emit_tool_use(
        &mut self,
        tool_use: PartialToolUse,
        out: &mut Vec<LlmEvent>,
    ) -> Result<(), ProviderError> {
        let arguments = parse_tool_arguments(&tool_use.name, &tool_use.input_json)?;
        out.push(LlmEvent::ToolCall(ToolCall {
            id: tool_use.id,
            name: tool_use.name,
            arguments,
        }));
        self.emitted_tool_calls = true;
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<LlmEvent>) {
        // A block left open is still complete once the message is.
        for tool_use in std::mem::take(&mut self.tool_uses) {
            if let Err(error) = self.emit_tool_use(tool_use, out) {
                return self.fail(error, out);
            }
        }
        if let Some(usage) = self.usage {
            out.push(LlmEvent::Usage(usage));
        }
        let reason = settle_finish_reason(self.stop_reason.take(), self.emitted_tool_calls);
        out.push(LlmEvent::Finished { reason });
        self.done = true;
    }

    fn fail(&mut self, error: ProviderError, out: &mut Vec<LlmEvent>) {
        if !self.done {
            out.push(LlmEvent::Failed(error));
            self.done = true;
        }
    }
}

#[derive(Deserialize)]
struct MessageWire {
    #[serde(rename = "type")]
    kind: Option<String>,
    content: Option<Vec<ResponseBlockWire>>,
    stop_reason: Option<String>,
    usage: Option<UsageWire>,
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlockWire {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Ignored,
}

/// Decodes a non-streamed Messages body into the same events a stream produces.
pub fn parse_response(body: &[u8]) -> Vec<LlmEvent> {
    let message: MessageWire = match serde_json::from_slice(body) {
        Ok(message) => message,
        Err(error) => {
            return vec![LlmEvent::Failed(ProviderError::protocol(format!(
                "malformed message: {error}"
            )))];
        }
    };
    if let Some(error) = message.error.filter(|error| !error.is_null()) {
        return vec![LlmEvent::Failed(ProviderError::from_error_value(&error))];
    }
    if message.kind.as_deref() == Some("error") {
        return vec![LlmEvent::Failed(ProviderError::protocol(
            "error body without details",
        ))];
    }
    let mut events = Vec::new();
    let mut emitted_tool_calls = false;
    for block in message.content.into_iter().flatten() {
        match block {
            ResponseBlockWire::Text { text } if !text.is_empty() => {
                events.push(LlmEvent::TextDelta(text));
            }
            ResponseBlockWire::Thinking { thinking } if !thinking.is_empty() => {
                events.push(LlmEvent::ReasoningDelta(thinking));
            }
            ResponseBlockWire::ToolUse { id, name, input } => {
                let arguments = match object_arguments(&name, input) {
                    Ok(arguments) => arguments,
                    Err(error) => return vec![LlmEvent::Failed(error)],
                };
                events.push(LlmEvent::ToolCall(ToolCall {
                    id,
                    name,
                    arguments,
                }));
                emitted_tool_calls = true;
            }
            _ => {}
        }
    }
    if let Some(counts) = message.usage {
        let mut usage = Usage::default();
        counts.apply_to(&mut usage);
        events.push(LlmEvent::Usage(usage));
    }
    let reason = message.stop_reason.as_deref().map(finish_reason);
    events.push(LlmEvent::Finished {
        reason: settle_finish_reason(reason, emitted_tool_calls),
    });
    events
}
