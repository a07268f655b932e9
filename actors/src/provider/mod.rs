//! LLM providers: which vendors we know, how to reach them, and how to speak their wire
//! protocols.
//!
//! [`preset`] maps each vendor to its wire protocol, default base URL, API-key variable and
//! default model. The start-up code resolves a [`preset::ProviderKind`] plus overrides into
//! the settings the provider actor runs with.
//!
//! The rest is pure code the provider actor calls around its HTTP requests:
//! [`message`] holds the normalised request ([`ChatRequest`]), [`event`] the normalised
//! output ([`LlmEvent`]) and error taxonomy ([`ProviderError`]); [`openai`], [`anthropic`]
//! and [`ollama`] translate between those and each protocol, over the [`sse`] and
//! [`ndjson`] framings; [`codec`] picks the right one for a [`Protocol`].

pub mod anthropic;
pub mod codec;
pub mod event;
mod lines;
pub mod message;
pub mod ndjson;
pub mod ollama;
pub mod openai;
pub mod preset;
pub mod sse;

#[cfg(test)]
mod tests;

pub use codec::{StreamDecoder, chat_path, encode_request, parse_response};
pub use event::{FinishReason, LlmEvent, ProviderError, TimeoutPhase, Usage};
pub use message::{ChatMessage, ChatRequest, ToolCall, ToolSpec};
pub use preset::{Protocol, ProviderKind};
