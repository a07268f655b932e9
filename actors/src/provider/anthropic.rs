//! Anthropic Messages (`POST {base}/v1/messages`).
//!
//! [`encode_request`] turns a [`ChatRequest`] into the Messages body: `system` at the top
//! level, `max_tokens` always present, tool calls as `tool_use` blocks and tool results as
//! `tool_result` blocks inside user turns, with consecutive same-role turns merged so roles
//! alternate. [`AnthropicStreamDecoder`] turns the SSE events of a streamed answer (decoded by
//! [`sse`](crate::framing::sse)) into [`LlmEvent`]s, dispatching on the JSON `type` of each payload;
//! [`parse_response`] does the same for a non-streamed body. Terminated by `message_stop`.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::body::{BodyWriter, write_json};
use super::event::{FinishReason, LlmEvent, ProviderError, Usage, clip, settle_finish_reason};
use super::message::{
    ChatMessage, ChatRequest, ParametersSchema, ToolCall, ToolSpec, object_arguments,
    parse_tool_arguments, temperature_json,
};
use super::prefix::ToolShape;
use crate::framing::sse::SseEvent;

/// Messages requires `max_tokens`; this is what we send when the caller set none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The `anthropic-version` header every official SDK sends with this body shape.
pub const API_VERSION: &str = "2023-06-01";

/// Builds the `/v1/messages` body. Written straight into bytes from the request, like
/// OpenAI's ([`super::openai::encode_request`]): the system prompt and the tools arrive
/// already encoded ([`super::prefix`]), so only the conversation is encoded per call.
pub fn encode_request(request: &ChatRequest) -> Vec<u8> {
    let system = request
        .system
        .as_ref()
        .filter(|system| !system.is_empty())
        .map(|system| system.json());
    let tools = request.tools.json(ToolShape::Anthropic);
    let prefix = system.map_or(0, <[u8]>::len) + tools.map_or(0, <[u8]>::len);
    let mut body = BodyWriter::for_request(request, prefix);
    body.field("model", &request.model);
    body.field(
        "max_tokens",
        &request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
    );
    body.field_with("messages", |bytes| write_turns(bytes, &request.messages));
    body.field("stream", &request.stream);
    if let Some(system) = system {
        body.encoded_field("system", system);
    }
    if let Some(tools) = tools {
        body.encoded_field("tools", tools);
    }
    if let Some(temperature) = request.temperature.and_then(temperature_json) {
        body.field("temperature", &temperature);
    }
    body.finish()
}

/// Writes the conversation as turns whose roles alternate: Messages rejects two turns in a
/// row from one role, so a message's blocks join the turn before when the role is the same
/// (tool results and the user's next words make one user turn), and rejects empty turns, so
/// a message without blocks is left out.
fn write_turns(body: &mut Vec<u8>, messages: &[ChatMessage]) {
    body.push(b'[');
    let mut open_role = None;
    for message in messages {
        let (role, first, calls) = blocks_of(message);
        if first.is_none() && calls.is_empty() {
            continue;
        }
        if open_role == Some(role) {
            body.push(b',');
        } else {
            if open_role.is_some() {
                body.extend_from_slice(b"]},");
            }
            body.extend_from_slice(b"{\"role\":\"");
            body.extend_from_slice(role.as_bytes());
            body.extend_from_slice(b"\",\"content\":[");
            open_role = Some(role);
        }
        let uses = calls.iter().map(|call| BlockWire::ToolUse {
            id: &call.id,
            name: &call.name,
            input: &call.arguments,
        });
        for (index, block) in first.into_iter().chain(uses).enumerate() {
            if index > 0 {
                body.push(b',');
            }
            write_json(body, &block);
        }
    }
    if open_role.is_some() {
        body.extend_from_slice(b"]}");
    }
    body.push(b']');
}

/// A message's role in Messages, its text or tool result block, and the tool calls that
/// become `tool_use` blocks after it.
fn blocks_of(message: &ChatMessage) -> (&'static str, Option<BlockWire<'_>>, &[ToolCall]) {
    match message {
        ChatMessage::User { content } => ("user", text_block(content), &[]),
        ChatMessage::Assistant {
            content,
            tool_calls,
        } => (
            "assistant",
            content.as_deref().and_then(text_block),
            tool_calls,
        ),
        ChatMessage::Tool {
            tool_call_id,
            content,
            is_error,
            ..
        } => (
            "user",
            Some(BlockWire::ToolResult {
                tool_use_id: tool_call_id,
                content,
                is_error: *is_error,
            }),
            &[],
        ),
    }
}

/// Messages rejects empty text blocks, so empty text is left out.
fn text_block(text: &str) -> Option<BlockWire<'_>> {
    (!text.is_empty()).then_some(BlockWire::Text { text })
}

/// One content block of a request, borrowed from the transcript.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockWire<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        #[serde(serialize_with = "object_or_empty")]
        input: &'a Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        /// Left out when empty: an empty text block is rejected.
        #[serde(skip_serializing_if = "is_empty")]
        content: &'a str,
        is_error: bool,
    },
}

/// A `tool_use` block's input must be an object; arguments are always one, but a stored
/// transcript may hold anything.
fn object_or_empty<S: Serializer>(input: &&Value, serializer: S) -> Result<S::Ok, S::Error> {
    if input.is_object() {
        input.serialize(serializer)
    } else {
        serializer.serialize_map(Some(0))?.end()
    }
}

fn is_empty(text: &&str) -> bool {
    text.is_empty()
}

/// Writes the `tools` array in Messages' shape, the description left out when empty; once
/// per catalog ([`super::prefix::ToolCatalog`]).
pub(crate) fn write_tools(tools: &[ToolSpec], body: &mut Vec<u8>) {
    let tools: Vec<ToolWire<'_>> = tools
        .iter()
        .map(|tool| ToolWire {
            name: &tool.name,
            description: &tool.description,
            input_schema: tool.parameters_schema(),
        })
        .collect();
    write_json(body, &tools);
}

#[derive(Serialize)]
struct ToolWire<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    description: &'a str,
    input_schema: ParametersSchema<'a>,
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
