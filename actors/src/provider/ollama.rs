//! Ollama's native chat API (`POST {base}/api/chat`), streamed as NDJSON.
//!
//! [`encode_request`] turns a [`ChatRequest`] into the body (tool results name their tool
//! rather than a call id; limits go in `options`). [`OllamaStreamDecoder`] turns the lines
//! split by [`ndjson`](crate::framing::ndjson) into [`LlmEvent`]s: text, `thinking` as reasoning, tool calls
//! that arrive whole with object arguments and no ids, and a final `done: true` line with
//! the counts. [`parse_response`] handles the single object of a non-streamed answer.

use std::borrow::Cow;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::body::BodyWriter;
use super::event::{
    LlmEvent, ProviderError, Usage, clip, finish_reason_from_openai, settle_finish_reason,
};
use super::message::{
    ChatMessage, ChatRequest, ToolCall, generated_call_id, object_arguments, temperature_json,
};
use super::openai::tool_result_text;
use super::prefix::ToolShape;

/// Builds the `/api/chat` body. Written straight into bytes from the request, like
/// OpenAI's ([`super::openai::encode_request`]): the system prompt and the tools arrive
/// already encoded ([`super::prefix`]; the tools in OpenAI's function shape, which Ollama
/// shares), so only the conversation is encoded per call.
pub fn encode_request(request: &ChatRequest) -> Vec<u8> {
    let system = request.system.as_ref().map(|system| system.json());
    let tools = request.tools.json(ToolShape::Function);
    let prefix = system.map_or(0, <[u8]>::len) + tools.map_or(0, <[u8]>::len);
    let mut body = BodyWriter::for_request(request, prefix);
    body.field("model", &request.model);
    body.messages(system, request.messages.iter().map(MessageOutWire::from));
    body.field("stream", &request.stream);
    if let Some(tools) = tools {
        body.encoded_field("tools", tools);
    }
    let options = OptionsWire {
        num_predict: request.max_tokens,
        temperature: request.temperature.and_then(temperature_json),
    };
    if options.num_predict.is_some() || options.temperature.is_some() {
        body.field("options", &options);
    }
    body.finish()
}

/// One conversation message in the `/api/chat` shape, borrowed from the transcript. Tool
/// results name their tool: Ollama matches them by name, not by call id.
#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum MessageOutWire<'a> {
    User {
        content: &'a str,
    },
    Assistant {
        content: &'a str,
        #[serde(skip_serializing_if = "ToolCallsWire::is_empty")]
        tool_calls: ToolCallsWire<'a>,
    },
    Tool {
        content: Cow<'a, str>,
        tool_name: &'a str,
    },
}

impl<'a> From<&'a ChatMessage> for MessageOutWire<'a> {
    fn from(message: &'a ChatMessage) -> Self {
        match message {
            ChatMessage::User { content } => MessageOutWire::User { content },
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => MessageOutWire::Assistant {
                content: content.as_deref().unwrap_or(""),
                tool_calls: ToolCallsWire(tool_calls),
            },
            ChatMessage::Tool {
                name,
                content,
                is_error,
                ..
            } => MessageOutWire::Tool {
                content: tool_result_text(content, *is_error),
                tool_name: name,
            },
        }
    }
}

/// An assistant turn's tool calls, with their arguments as objects and no ids.
struct ToolCallsWire<'a>(&'a [ToolCall]);

impl ToolCallsWire<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for ToolCallsWire<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|call| ToolCallOutWire {
            function: FunctionOutWire {
                name: &call.name,
                arguments: &call.arguments,
            },
        }))
    }
}

#[derive(Serialize)]
struct ToolCallOutWire<'a> {
    function: FunctionOutWire<'a>,
}

#[derive(Serialize)]
struct FunctionOutWire<'a> {
    name: &'a str,
    arguments: &'a Value,
}

/// Sampling settings go in `options`, under Ollama's own names.
#[derive(Serialize)]
struct OptionsWire {
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<serde_json::Number>,
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
