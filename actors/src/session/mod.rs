//! Conversations: the per-request [`Session`] actor that runs one agent turn, the
//! [`TurnEvent`]s it emits, the [`approval`] gate before a run, (wire-independent; the HTTP layer encodes them), how it
//! follows a run's events with backpressure (`follow`), and the
//! [`store`] that keeps transcripts between turns (in memory, or in Redis with
//! [`redis_store`] when replicas share them), and the trace spans of a turn (`spans`).

mod actor;
pub mod approval;
mod event;
mod follow;
mod outbox;
pub mod redis_store;
mod spans;
pub mod store;

pub use actor::{
    BeginTurn, ComposeOptions, OverheadObserver, Session, SessionDeps, TurnMode, TurnRejected,
    TurnRequest,
};
pub use event::{TurnError, TurnErrorKind, TurnEvent};
pub use outbox::{CHANNEL_CAPACITY, QUEUE_LIMIT, event_channel};
pub use redis_store::{RedisSessionStore, RedisStoreSettings};
pub use store::{
    MemorySessionStore, SessionKey, SessionRecord, SessionStore, TurnLease, json_bytes,
    record_bytes,
};
