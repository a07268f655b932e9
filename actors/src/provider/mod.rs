//! LLM providers: which vendors we know, how to reach them, and how to speak their wire
//! protocols.
//!
//! [`preset`] maps each vendor to its wire protocol, default base URL, API-key variable and
//! default model. The start-up code resolves a [`preset::ProviderKind`] plus overrides into
//! the settings the provider actor runs with.
//!
//! [`actor`] holds the `LlmProvider` actor and the [`ProviderPool`] sessions call; [`call`]
//! runs one model call (retries, fallbacks, timeouts, cancellation) over an [`upstream`],
//! started by its [`StartCompletion`] message; [`accounting`] counts calls, tokens and
//! connections for metrics;
//! [`offline`] is the built-in planner that needs no network.
//!
//! The rest is pure code the provider actor calls around its HTTP requests:
//! [`message`] holds the normalised request ([`ChatRequest`]), [`prefix`] its shared system
//! prompt and tool catalog, encoded once, [`body`] the bytes the encoders write them into, [`transcript`] the conversation it shares with the
//! session that keeps it, [`event`] the normalised
//! output ([`LlmEvent`]) and error taxonomy ([`ProviderError`]); [`openai`], [`anthropic`]
//! and [`ollama`] translate between those and each protocol, over the SSE and NDJSON
//! framings of [`crate::framing`]; [`codec`] picks the right one for a [`Protocol`].

mod accounting;
mod actor;
pub mod anthropic;
mod body;
mod call;
pub mod codec;
pub mod event;
pub mod message;
pub mod offline;
pub mod ollama;
pub mod openai;
pub mod prefix;
pub mod preset;
pub mod transcript;
pub mod upstream;

#[cfg(test)]
mod tests;

pub use accounting::TokenAccounting;
pub use actor::{LlmProvider, ProviderPool};
pub use call::StartCompletion;
pub use codec::{StreamDecoder, chat_path, encode_request, parse_response};
pub use event::{FinishReason, LlmEvent, ProviderError, TimeoutPhase, Usage};
pub use message::{ChatMessage, ChatRequest, ToolCall, ToolSpec};
pub use prefix::{SystemPrompt, ToolCatalog};
pub use preset::{Protocol, ProviderKind};
pub use transcript::Transcript;
pub use upstream::{RetryPolicy, Timeouts, UpstreamConfig};
