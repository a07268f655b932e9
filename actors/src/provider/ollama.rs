//! Ollama's native chat API (`POST {base}/api/chat`), streamed as NDJSON.
//!
//! [`encode_request`] turns a [`ChatRequest`] into the body (tool results name their tool
//! rather than a call id; limits go in `options`). [`OllamaStreamDecoder`] turns the lines
//! split by [`ndjson`](crate::framing::ndjson) into [`LlmEvent`]s: text, `thinking` as reasoning, tool calls
//! that arrive whole with object arguments and no ids, and a final `done: true` line with
//! the counts. [`parse_response`] handles the single object of a non-streamed answer.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::event::{
    LlmEvent, ProviderError, Usage, clip, finish_reason_from_openai, settle_finish_reason,
};
use super::message::{
    ChatMessage, ChatRequest, ToolCall, generated_call_id, object_arguments, temperature_json,
};
use super::openai::{encode_tools, tool_result_text};

/// Builds the `/api/chat` body.
pub fn encode_request(request: &ChatRequest) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request.system.as_deref() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        messages.push(match message {
            ChatMessage::User { content } => json!({"role": "user", "content": content}),
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                let mut turn = json!({
                    "role": "assistant",
                    "content": content.as_deref().unwrap_or(""),
                });
                if !tool_calls.is_empty() {
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .map(|call| {
                            json!({"function": {"name": call.name, "arguments": call.arguments}})
                        })
                        .collect();
                    turn["tool_calls"] = calls.into();
                }
                turn
            }
            ChatMessage::Tool {
                name,
                content,
                is_error,
                ..
            } => json!({
                "role": "tool",
                "content": tool_result_text(content, *is_error),
                "tool_name": name,
            }),
        });
    }
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "stream": request.stream,
    });
    if !request.tools.is_empty() {
        body["tools"] = encode_tools(&request.tools);
    }
    let mut options = Map::new();
    if let Some(max_tokens) = request.max_tokens {
        options.insert("num_predict".into(), max_tokens.into());
    }
    if let Some(temperature) = request.temperature.map(temperature_json)
        && !temperature.is_null()
    {
        options.insert("temperature".into(), temperature);
    }
    if !options.is_empty() {
        body["options"] = options.into();
    }
    body
}

#[derive(Deserialize)]
struct LineWire {
    message: Option<MessageWire>,
    #[serde(default)]
    done: bool,
    done_reason: Option<String>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct MessageWire {
    content: Option<String>,
    thinking: Option<String>,
    tool_calls: Option<Vec<ToolCallWire>>,
}

#[derive(Deserialize)]
struct ToolCallWire {
    /// Absent in most Ollama versions.
    id: Option<String>,
    function: FunctionWire,
}

#[derive(Deserialize)]
struct FunctionWire {
    name: String,
    #[serde(default)]
    arguments: Value,
}

/// Decodes one `/api/chat` answer. Feed every NDJSON line to
/// [`OllamaStreamDecoder::push_line`]; when the body ends call
/// [`OllamaStreamDecoder::end_of_stream`]. Terminated by the `done: true` line.
#[derive(Debug, Default)]
pub struct OllamaStreamDecoder {
    emitted_tool_calls: bool,
    /// `Finished` or `Failed` went out; everything after is ignored.
    done: bool,
}

impl OllamaStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the stream reached its `done: true` line or failed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Decodes one line, appending what it completes to `out`.
    pub fn push_line(&mut self, line: &[u8], out: &mut Vec<LlmEvent>) {
        if self.done {
            return;
        }
        let parsed: LineWire = match serde_json::from_slice(line) {
            Ok(parsed) => parsed,
            Err(error) => {
                let text = String::from_utf8_lossy(line);
                return self.fail(
                    ProviderError::protocol(format!("malformed line ({error}): {}", clip(&text))),
                    out,
                );
            }
        };
        if let Some(error) = parsed.error.filter(|error| !error.is_null()) {
            return self.fail(ProviderError::from_error_value(&error), out);
        }
        if let Some(message) = parsed.message {
            if let Some(thinking) = message.thinking.filter(|text| !text.is_empty()) {
                out.push(LlmEvent::ReasoningDelta(thinking));
            }
            if let Some(content) = message.content.filter(|text| !text.is_empty()) {
                out.push(LlmEvent::TextDelta(content));
            }
            for call in message.tool_calls.into_iter().flatten() {
                let name = call.function.name;
                let arguments = match object_arguments(&name, call.function.arguments) {
                    Ok(arguments) => arguments,
                    Err(error) => return self.fail(error, out),
                };
                out.push(LlmEvent::ToolCall(ToolCall {
                    id: call
                        .id
                        .filter(|id| !id.is_empty())
                        .unwrap_or_else(generated_call_id),
                    name,
                    arguments,
                }));
                self.emitted_tool_calls = true;
            }
        }
        if parsed.done {
            // Ollama omits counts that are zero.
            out.push(LlmEvent::Usage(Usage {
                input: parsed.prompt_eval_count.unwrap_or(0),
                output: parsed.eval_count.unwrap_or(0),
            }));
            // `done_reason` stays `stop` when the model called tools.
            let reason = parsed.done_reason.as_deref().map(finish_reason_from_openai);
            out.push(LlmEvent::Finished {
                reason: settle_finish_reason(reason, self.emitted_tool_calls),
            });
            self.done = true;
        }
    }

    /// Call once the body has ended: reports a stream that stopped before `done: true`.
    pub fn end_of_stream(&mut self) -> Option<LlmEvent> {
        if self.done {
            return None;
        }
        self.done = true;
        Some(LlmEvent::Failed(ProviderError::protocol(
            "the stream ended before the `done: true` line",
        )))
    }

    fn fail(&mut self, error: ProviderError, out: &mut Vec<LlmEvent>) {
        out.push(LlmEvent::Failed(error));
        self.done = true;
    }
}

/// Decodes a non-streamed `/api/chat` body (one object with `done: true`).
pub fn parse_response(body: &[u8]) -> Vec<LlmEvent> {
    let mut decoder = OllamaStreamDecoder::new();
    let mut events = Vec::new();
    decoder.push_line(body.trim_ascii(), &mut events);
    events.extend(decoder.end_of_stream());
    events
}
