//! OpenAI-compatible chat completions (`POST {base}/chat/completions`), the protocol of
//! OpenAI, Together, Groq, DeepSeek, vLLM and Ollama's `/v1` endpoint.
//!
//! [`encode_request`] turns a [`ChatRequest`] into the JSON body; [`OpenAiStreamDecoder`]
//! turns the SSE events of a streamed answer (decoded by [`sse`](crate::framing::sse)) into
//! [`LlmEvent`]s, and [`parse_response`] does the same for a non-streamed body. The vendor
//! quirks handled here: tool-call arguments streamed as fragments keyed by `index`, usage
//! in a trailing `choices: []` chunk, on the finish chunk, in `x_groq.usage` or inside the
//! choice, reasoning in `reasoning_content` or `reasoning`, refusals as text, and only
//! choice 0 of an `n > 1` stream.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::body::{BodyWriter, write_json};
use super::event::{
    FinishReason, LlmEvent, ProviderError, Usage, clip, finish_reason_from_openai,
    settle_finish_reason,
};
use super::message::{
    ChatMessage, ChatRequest, ParametersSchema, ToolCall, ToolSpec, generated_call_id,
    object_arguments, parse_tool_arguments, temperature_json,
};
use super::prefix::ToolShape;
use crate::framing::sse::SseEvent;

/// Builds the `/chat/completions` body: system first, assistant tool-call arguments as
/// JSON strings, tool results as `tool` messages, and usage requested for streams. Written
/// straight into bytes; the system prompt and the tools arrive already encoded
/// ([`super::prefix`]), so only the conversation is encoded per call.
pub fn encode_request(request: &ChatRequest) -> Vec<u8> {
    let tools = request.tools.json(ToolShape::Function);
    let system = request.system.as_ref().map(|system| system.json());
    let prefix = system.map_or(0, <[u8]>::len) + tools.map_or(0, <[u8]>::len);
    let mut body = BodyWriter::for_request(request, prefix);
    body.field("model", &request.model);
    body.messages(system, request.messages.iter().map(MessageWire::from));
    body.field("stream", &request.stream);
    if request.stream {
        // Without it OpenAI (and some Together models) send no usage at all in streams.
        body.encoded_field("stream_options", b"{\"include_usage\":true}");
    }
    if let Some(tools) = tools {
        body.encoded_field("tools", tools);
    }
    if let Some(max_tokens) = request.max_tokens {
        // `max_tokens` rather than `max_completion_tokens`: every compatible server knows it.
        body.field("max_tokens", &max_tokens);
    }
    if let Some(temperature) = request.temperature.and_then(temperature_json) {
        body.field("temperature", &temperature);
    }
    body.finish()
}

/// One conversation message in the `/chat/completions` shape, borrowed from the transcript.
#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum MessageWire<'a> {
    User {
        content: &'a str,
    },
    Assistant {
        /// An assistant turn needs content or tool calls; never send neither.
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCallWire<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: Cow<'a, str>,
    },
}

impl<'a> From<&'a ChatMessage> for MessageWire<'a> {
    fn from(message: &'a ChatMessage) -> Self {
        match message {
            ChatMessage::User { content } => MessageWire::User { content },
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => MessageWire::Assistant {
                content: match (content.as_deref(), tool_calls.is_empty()) {
                    (None, true) => Some(""),
                    (content, _) => content,
                },
                tool_calls: tool_calls.iter().map(ToolCallWire::from).collect(),
            },
            ChatMessage::Tool {
                tool_call_id,
                content,
                is_error,
                ..
            } => MessageWire::Tool {
                tool_call_id,
                content: tool_result_text(content, *is_error),
            },
        }
    }
}

#[derive(Serialize)]
struct ToolCallWire<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCallWire<'a>,
}

#[derive(Serialize)]
struct FunctionCallWire<'a> {
    name: &'a str,
    /// A JSON string, per the spec.
    arguments: String,
}

impl<'a> From<&'a ToolCall> for ToolCallWire<'a> {
    fn from(call: &'a ToolCall) -> Self {
        ToolCallWire {
            id: &call.id,
            kind: "function",
            function: FunctionCallWire {
                name: &call.name,
                // Into a buffer of 128 bytes at once, where `to_string` would grow one from 8.
                arguments: serde_json::to_string(&call.arguments).unwrap_or_default(),
            },
        }
    }
}

/// Writes the `tools` array in the OpenAI function shape, shared with Ollama's native API;
/// once per catalog ([`super::prefix::ToolCatalog`]).
pub(crate) fn write_tools(tools: &[ToolSpec], body: &mut Vec<u8>) {
    let tools: Vec<FunctionToolWire<'_>> = tools
        .iter()
        .map(|tool| FunctionToolWire {
            kind: "function",
            function: FunctionSpecWire {
                name: &tool.name,
                description: &tool.description,
                parameters: tool.parameters_schema(),
            },
        })
        .collect();
    write_json(body, &tools);
}

#[derive(Serialize)]
struct FunctionToolWire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionSpecWire<'a>,
}

#[derive(Serialize)]
struct FunctionSpecWire<'a> {
    name: &'a str,
    description: &'a str,
    parameters: ParametersSchema<'a>,
}

/// Protocols without an error flag on tool results learn about failures from the text.
pub(crate) fn tool_result_text(content: &str, is_error: bool) -> Cow<'_, str> {
    if is_error {
        Cow::Owned(format!("Error: {content}"))
    } else {
        Cow::Borrowed(content)
    }
}

#[derive(Deserialize)]
struct UsageWire {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl UsageWire {
    fn normalise(&self) -> Usage {
        Usage {
            input: self.prompt_tokens.unwrap_or(0),
            output: self.completion_tokens.unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
struct ChunkWire {
    choices: Option<Vec<ChunkChoiceWire>>,
    usage: Option<UsageWire>,
    x_groq: Option<GroqExtrasWire>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct GroqExtrasWire {
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
struct ChunkChoiceWire {
    #[serde(default)]
    index: u32,
    delta: Option<DeltaWire>,
    finish_reason: Option<String>,
    /// Some Together models put usage inside the choice.
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
struct DeltaWire {
    content: Option<String>,
    refusal: Option<String>,
    reasoning_content: Option<String>,
    /// A string on Ollama, OpenRouter and Together; tolerated in any shape.
    reasoning: Option<Value>,
    tool_calls: Option<Vec<ToolCallDeltaWire>>,
}

#[derive(Deserialize)]
struct ToolCallDeltaWire {
    index: Option<u32>,
    id: Option<String>,
    function: Option<FunctionWire>,
}

#[derive(Deserialize)]
struct FunctionWire {
    name: Option<String>,
    /// A JSON string per the spec; some compatible servers send an object.
    arguments: Option<Value>,
}

/// A tool call whose argument fragments are still arriving.
#[derive(Debug)]
struct PartialToolCall {
    index: u32,
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Decodes one streamed chat completion. Feed every SSE event to
/// [`OpenAiStreamDecoder::push_event`]; when the body ends call
/// [`OpenAiStreamDecoder::end_of_stream`]. Terminated by `data: [DONE]`.
#[derive(Debug, Default)]
pub struct OpenAiStreamDecoder {
    tool_calls: Vec<PartialToolCall>,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    emitted_tool_calls: bool,
    /// `Finished` or `Failed` went out; everything after is ignored.
    done: bool,
}

impl OpenAiStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the stream reached its terminator or failed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes one SSE event, appending what it completes to `out`.
    pub fn push_event(&mut self, event: &SseEvent, out: &mut Vec<LlmEvent>) {
        if self.done {
            return;
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            self.finish(out);
            return;
        }
        if event.event.as_deref() == Some("error") {
            let error = serde_json::from_str::<Value>(data)
                .map(|value| ProviderError::from_error_value(value.get("error").unwrap_or(&value)))
                .unwrap_or_else(|_| {
                    ProviderError::protocol(format!("error event: {}", clip(data)))
                });
            return self.fail(error, out);
        }
        if data.is_empty() {
            return;
        }
        let chunk: ChunkWire = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(error) => {
                return self.fail(
                    ProviderError::protocol(format!("malformed chunk ({error}): {}", clip(data))),
                    out,
                );
            }
        };
        if let Some(error) = chunk.error.filter(|error| !error.is_null()) {
            return self.fail(ProviderError::from_error_value(&error), out);
        }
        let usage = chunk.usage.as_ref().or(chunk
            .x_groq
            .as_ref()
            .and_then(|extras| extras.usage.as_ref()));
        if let Some(usage) = usage {
            self.usage = Some(usage.normalise());
        }
        // Other choices belong to `n > 1` requests, which we never make on purpose.
        for choice in chunk.choices.into_iter().flatten() {
            if choice.index != 0 {
                continue;
            }
            if let Some(usage) = &choice.usage {
                self.usage = Some(usage.normalise());
            }
            if let Some(delta) = choice.delta {
                self.push_delta(delta, out);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(finish_reason_from_openai(&reason));
                if let Err(error) = self.flush_tool_calls(out) {
                    return self.fail(error, out);
                }
            }
        }
    }

    /// Call once the body has ended: reports a stream that stopped before `[DONE]`.
    pub fn end_of_stream(&mut self) -> Option<LlmEvent> {
        if self.done {
            return None;
        }
        self.done = true;
        Some(LlmEvent::Failed(ProviderError::protocol(
            "the stream ended before `data: [DONE]`",
        )))
    }

    fn push_delta(&mut self, delta: DeltaWire, out: &mut Vec<LlmEvent>) {
        if let Some(text) = reasoning_text(delta.reasoning_content, delta.reasoning) {
            out.push(LlmEvent::ReasoningDelta(text));
        }
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            if !text.is_empty() {
                out.push(LlmEvent::TextDelta(text));
            }
        }
        for fragment in delta.tool_calls.into_iter().flatten() {
            let slot = self.slot_for(&fragment);
            let call = &mut self.tool_calls[slot];
            if call.id.is_none() {
                call.id = fragment.id.filter(|id| !id.is_empty());
            }
            if let Some(function) = fragment.function {
                if call.name.is_empty()
                    && let Some(name) = function.name
                {
                    call.name = name;
                }
                match function.arguments {
                    Some(Value::String(text)) => call.arguments.push_str(&text),
                    Some(Value::Null) | None => {}
                    Some(value) => call.arguments.push_str(&value.to_string()),
                }
            }
        }
    }

    /// Which partial call a fragment continues. OpenAI keys fragments by `index`; servers
    /// that send whole calls sometimes omit it, and then a new `id` starts a new call.
    fn slot_for(&mut self, fragment: &ToolCallDeltaWire) -> usize {
        let id = fragment.id.as_deref().filter(|id| !id.is_empty());
        let existing = match (fragment.index, id) {
            (Some(index), _) => self.tool_calls.iter().position(|call| call.index == index),
            (None, Some(id)) => self
                .tool_calls
                .iter()
                .position(|call| call.id.as_deref() == Some(id)),
            (None, None) => self.tool_calls.len().checked_sub(1),
        };
        if let Some(slot) = existing {
            return slot;
        }
        let next_index = self.tool_calls.iter().map(|call| call.index + 1).max();
        self.tool_calls.push(PartialToolCall {
            index: fragment.index.or(next_index).unwrap_or(0),
            id: None,
            name: String::new(),
            arguments: String::new(),
        });
        self.tool_calls.len() - 1
    }

    fn flush_tool_calls(&mut self, out: &mut Vec<LlmEvent>) -> Result<(), ProviderError> {
        for call in self.tool_calls.drain(..) {
            if call.name.is_empty() {
                return Err(ProviderError::protocol(format!(
                    "tool call at index {} has no function name",
                    call.index
                )));
            }
            let arguments = parse_tool_arguments(&call.name, &call.arguments)?;
            out.push(LlmEvent::ToolCall(ToolCall {
                id: call.id.unwrap_or_else(generated_call_id),
                name: call.name,
                arguments,
            }));
            self.emitted_tool_calls = true;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<LlmEvent>) {
        if let Err(error) = self.flush_tool_calls(out) {
            return self.fail(error, out);
        }
        if let Some(usage) = self.usage {
            out.push(LlmEvent::Usage(usage));
        }
        let reason = settle_finish_reason(self.finish_reason.take(), self.emitted_tool_calls);
        out.push(LlmEvent::Finished { reason });
        self.done = true;
    }

    fn fail(&mut self, error: ProviderError, out: &mut Vec<LlmEvent>) {
        out.push(LlmEvent::Failed(error));
        self.done = true;
    }
}

/// Reasoning text from DeepSeek/vLLM's `reasoning_content` or the `reasoning` string of
/// Ollama, OpenRouter and Together.
fn reasoning_text(reasoning_content: Option<String>, reasoning: Option<Value>) -> Option<String> {
    let text = match (reasoning_content, reasoning) {
        (Some(text), _) if !text.is_empty() => text,
        (_, Some(Value::String(text))) => text,
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

#[derive(Deserialize)]
struct ResponseWire {
    choices: Option<Vec<ResponseChoiceWire>>,
    usage: Option<UsageWire>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ResponseChoiceWire {
    #[serde(default)]
    index: u32,
    message: Option<ResponseMessageWire>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponseMessageWire {
    content: Option<String>,
    refusal: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<Value>,
    tool_calls: Option<Vec<ResponseToolCallWire>>,
}

#[derive(Deserialize)]
struct ResponseToolCallWire {
    id: Option<String>,
    function: FunctionWire,
}

/// Decodes a non-streamed chat completion body into the same events a stream produces.
pub fn parse_response(body: &[u8]) -> Vec<LlmEvent> {
    let response: ResponseWire = match serde_json::from_slice(body) {
        Ok(response) => response,
        Err(error) => {
            return vec![LlmEvent::Failed(ProviderError::protocol(format!(
                "malformed chat completion: {error}"
            )))];
        }
    };
    if let Some(error) = response.error.filter(|error| !error.is_null()) {
        return vec![LlmEvent::Failed(ProviderError::from_error_value(&error))];
    }
    let Some(choice) = response
        .choices
        .into_iter()
        .flatten()
        .find(|choice| choice.index == 0)
    else {
        return vec![LlmEvent::Failed(ProviderError::protocol(
            "chat completion without a choice",
        ))];
    };
    let mut events = Vec::new();
    let mut emitted_tool_calls = false;
    if let Some(message) = choice.message {
        if let Some(text) = reasoning_text(message.reasoning_content, message.reasoning) {
            events.push(LlmEvent::ReasoningDelta(text));
        }
        for text in [message.content, message.refusal].into_iter().flatten() {
            if !text.is_empty() {
                events.push(LlmEvent::TextDelta(text));
            }
        }
        for call in message.tool_calls.into_iter().flatten() {
            let name = call.function.name.unwrap_or_default();
            if name.is_empty() {
                return vec![LlmEvent::Failed(ProviderError::protocol(
                    "tool call without a function name",
                ))];
            }
            let arguments =
                match object_arguments(&name, call.function.arguments.unwrap_or_default()) {
                    Ok(arguments) => arguments,
                    Err(error) => return vec![LlmEvent::Failed(error)],
                };
            events.push(LlmEvent::ToolCall(ToolCall {
                id: call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(generated_call_id),
                name,
                arguments,
            }));
            emitted_tool_calls = true;
        }
    }
    if let Some(usage) = response.usage {
        events.push(LlmEvent::Usage(usage.normalise()));
    }
    let reason = choice
        .finish_reason
        .as_deref()
        .map(finish_reason_from_openai);
    events.push(LlmEvent::Finished {
        reason: settle_finish_reason(reason, emitted_tool_calls),
    });
    events
}
