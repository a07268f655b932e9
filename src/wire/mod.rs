//! Wire encoders: a turn's [`TurnEvent`]s in the format the client asked for. Each encoder
//! writes one event into a buffer the stream hands to the connection as one write: OpenAI
//! chat-completion chunks over SSE ([`openai`]), the Vercel AI SDK data stream ([`vercel`]),
//! and the whole `chat.completion` object for non-streaming clients ([`completion`]).
//! [`readable`] renders tool and workflow activity as text lines for plain clients.

pub mod completion;
pub mod compose;
pub mod openai;
pub mod readable;
pub mod vercel;

use bytes::BytesMut;
use kubiya_actors::session::TurnEvent;

/// The streaming formats a client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    OpenAiSse,
    Vercel,
    /// The Compose API's own events over SSE.
    ComposeSse,
    /// The Compose API's events as raw NDJSON (`stream_format: null`).
    Ndjson,
}

/// Encodes one event at a time; `None` from [`heartbeat`](StreamEncoder::heartbeat) means the
/// format has no way to say "still here".
pub trait StreamEncoder: Send {
    fn encode(&mut self, event: &TurnEvent, out: &mut BytesMut);
    fn heartbeat(&self) -> Option<&'static [u8]>;
}
