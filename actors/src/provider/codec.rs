//! Protocol dispatch: the one place that picks the encoder and decoders for a [`Protocol`].
//!
//! The provider actor calls [`encode_request`] for the body it POSTs, then either feeds the
//! streamed body through a [`StreamDecoder`] or hands a whole body to [`parse_response`].
//! Both yield the same [`LlmEvent`] sequence. The offline planner has no wire format, so
//! every entry point answers `None` for [`Protocol::Offline`].

use super::anthropic::{self, AnthropicStreamDecoder};
use super::event::LlmEvent;
use super::message::ChatRequest;
use super::ollama::{self, OllamaStreamDecoder};
use super::openai::{self, OpenAiStreamDecoder};
use super::preset::Protocol;
use crate::framing::ndjson::NdjsonDecoder;
use crate::framing::sse::{SseDecoder, SseEvent};

/// The chat endpoint, appended to the base URL in the vendor's own convention (OpenAI-style
/// bases already end in `/v1`; Anthropic's and Ollama's do not).
pub fn chat_path(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::OpenAiChat => Some("/chat/completions"),
        Protocol::AnthropicMessages => Some("/v1/messages"),
        Protocol::OllamaChat => Some("/api/chat"),
        Protocol::Offline => None,
    }
}

/// The JSON body for `request` in `protocol`'s shape.
pub fn encode_request(protocol: Protocol, request: &ChatRequest) -> Option<Vec<u8>> {
    match protocol {
        Protocol::OpenAiChat => Some(openai::encode_request(request)),
        Protocol::AnthropicMessages => Some(anthropic::encode_request(request)),
        Protocol::OllamaChat => Some(ollama::encode_request(request)),
        Protocol::Offline => None,
    }
}

/// The events of a non-streamed (2xx) response body.
pub fn parse_response(protocol: Protocol, body: &[u8]) -> Option<Vec<LlmEvent>> {
    match protocol {
        Protocol::OpenAiChat => Some(openai::parse_response(body)),
        Protocol::AnthropicMessages => Some(anthropic::parse_response(body)),
        Protocol::OllamaChat => Some(ollama::parse_response(body)),
        Protocol::Offline => None,
    }
}

/// Turns the chunks of one streamed (2xx) response body into events: framing plus the
/// protocol decoder. Once it has produced `Finished` or `Failed` it ignores further input.
#[derive(Debug)]
pub struct StreamDecoder {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    OpenAi(SseDecoder, OpenAiStreamDecoder),
    Anthropic(SseDecoder, AnthropicStreamDecoder),
    Ollama(NdjsonDecoder, OllamaStreamDecoder),
}

impl StreamDecoder {
    pub fn new(protocol: Protocol) -> Option<Self> {
        let inner = match protocol {
            Protocol::OpenAiChat => Inner::OpenAi(SseDecoder::new(), OpenAiStreamDecoder::new()),
            Protocol::AnthropicMessages => {
                Inner::Anthropic(SseDecoder::new(), AnthropicStreamDecoder::new())
            }
            Protocol::OllamaChat => Inner::Ollama(NdjsonDecoder::new(), OllamaStreamDecoder::new()),
            Protocol::Offline => return None,
        };
        Some(StreamDecoder { inner })
    }

    /// Decodes a chunk of the body as delivered by the HTTP client, appending the events
    /// it completes to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<LlmEvent>) {
        if self.is_done() {
            return;
        }
        match &mut self.inner {
            Inner::OpenAi(sse, decoder) => {
                sse.feed(bytes);
                drain_sse(sse, decoder, out);
            }
            Inner::Anthropic(sse, decoder) => {
                sse.feed(bytes);
                drain_sse(sse, decoder, out);
            }
            Inner::Ollama(lines, decoder) => {
                lines.feed(bytes);
                drain_lines(lines, decoder, out);
            }
        }
    }

    /// Call when the body has ended (cleanly or not): decodes what was left unterminated
    /// and reports a stream that stopped before its protocol's terminator as
    /// `Failed(Protocol)`.
    pub fn finish(&mut self, out: &mut Vec<LlmEvent>) {
        match &mut self.inner {
            Inner::OpenAi(sse, decoder) => {
                if !decoder.is_done() {
                    sse.finish();
                    drain_sse(sse, decoder, out);
                }
                out.extend(decoder.end_of_stream());
            }
            Inner::Anthropic(sse, decoder) => {
                if !decoder.is_done() {
                    sse.finish();
                    drain_sse(sse, decoder, out);
                }
                out.extend(decoder.end_of_stream());
            }
            Inner::Ollama(lines, decoder) => {
                if !decoder.is_done() {
                    lines.finish();
                    drain_lines(lines, decoder, out);
                }
                out.extend(decoder.end_of_stream());
            }
        }
    }

    /// Whether `Finished` or `Failed` has been produced.
    pub fn is_done(&self) -> bool {
        match &self.inner {
            Inner::OpenAi(_, decoder) => decoder.is_done(),
            Inner::Anthropic(_, decoder) => decoder.is_done(),
            Inner::Ollama(_, decoder) => decoder.is_done(),
        }
    }
}

/// The protocol decoders that sit on SSE framing.
trait SseProtocolDecoder {
    fn push_event(&mut self, event: &SseEvent, out: &mut Vec<LlmEvent>);
    fn is_done(&self) -> bool;
}

impl SseProtocolDecoder for OpenAiStreamDecoder {
    fn push_event(&mut self, event: &SseEvent, out: &mut Vec<LlmEvent>) {
        OpenAiStreamDecoder::push_event(self, event, out);
    }

    fn is_done(&self) -> bool {
        OpenAiStreamDecoder::is_done(self)
    }
}

impl SseProtocolDecoder for AnthropicStreamDecoder {
    fn push_event(&mut self, event: &SseEvent, out: &mut Vec<LlmEvent>) {
        AnthropicStreamDecoder::push_event(self, event, out);
    }

    fn is_done(&self) -> bool {
        AnthropicStreamDecoder::is_done(self)
    }
}

fn drain_sse(sse: &mut SseDecoder, decoder: &mut impl SseProtocolDecoder, out: &mut Vec<LlmEvent>) {
    while !decoder.is_done()
        && let Some(event) = sse.next_event()
    {
        decoder.push_event(&event, out);
    }
}

fn drain_lines(
    lines: &mut NdjsonDecoder,
    decoder: &mut OllamaStreamDecoder,
    out: &mut Vec<LlmEvent>,
) {
    while !decoder.is_done()
        && let Some(line) = lines.next_line()
    {
        decoder.push_line(line, out);
    }
}
