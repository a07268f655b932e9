//! The HTTP side of resumable chats: a turn of the chat UI protocol runs detached from the
//! connection that started it. [`detach`] hands the turn's events to a task that encodes
//! them and appends each SSE event to the chat's [`TurnLogs`] entry; every client — the one
//! that asked, or one resuming later on any replica — reads that log as a
//! [`ChunkBody`](crate::streaming::ChunkBody).
//! Leaving does not stop the turn (it is bounded by the agent's model-call limit and by
//! shutdown); the tenant's stream permit is held until it ends.

use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use kubiya_actors::session::SessionKey;
use kubiya_actors::turn_log::TurnLogs;

use crate::turn::StartedTurn;
use crate::wire::StreamEncoder;

/// Runs the rest of `turn` in a task of its own, writing it into the chat's log; returns the
/// stream of that log from its start.
pub fn detach(
    logs: &TurnLogs,
    key: &SessionKey,
    turn: StartedTurn,
    mut encoder: Box<dyn StreamEncoder>,
) -> BoxStream<'static, Bytes> {
    let mut writer = logs.begin(key);
    let follower = writer.follower();
    let (first, mut events, guard) = turn.into_parts();
    actix_web::rt::spawn(async move {
        let mut buffer = BytesMut::with_capacity(512);
        let mut next = Some(first);
        let mut guard = Some(guard);
        while let Some(event) = next {
            let terminal = event.is_terminal();
            encoder.encode(&event, &mut buffer);
            if terminal && let Some(guard) = guard.take() {
                // Free the permit before the last chunk: a client continuing at once is
                // never refused because of this turn.
                guard.close().await;
            }
            // One log entry per SSE event, so an entry's position is the event's `id:`.
            while let Some(end) = buffer.windows(2).position(|pair| pair == b"\n\n") {
                writer.append(buffer.split_to(end + 2).freeze());
            }
            if !buffer.is_empty() {
                writer.append(buffer.split().freeze());
            }
            next = if terminal { None } else { events.recv().await };
        }
        writer.finish();
    });
    follower
}
