//! The HTTP side of resumable chats: a turn of the chat UI protocol runs detached from the
//! connection that started it. [`detach`] hands the turn's events to a task that encodes
//! them and appends each SSE event to the chat's [`TurnLogs`] entry; every client — the one
//! that asked, or one resuming later on any replica — reads that log through a [`LogBody`].
//! Leaving does not stop the turn (it is bounded by the agent's model-call limit and by
//! shutdown); the tenant's stream permit is held until it ends.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use futures_util::stream::BoxStream;
use kubiya_actors::session::SessionKey;
use kubiya_actors::turn_log::TurnLogs;

use crate::streaming::StreamGuard;
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

/// A log followed as a response body, with a heartbeat comment when it has been idle. A
/// resumed stream holds its own place among the tenant's streams while it is open.
pub struct LogBody {
    chunks: BoxStream<'static, Bytes>,
    heartbeat: Option<tokio::time::Interval>,
    comment: &'static [u8],
    guard: Option<StreamGuard>,
}

impl LogBody {
    pub fn new(chunks: BoxStream<'static, Bytes>, every: Duration, comment: &'static [u8]) -> Self {
        let heartbeat = (!every.is_zero()).then(|| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        Self {
            chunks,
            heartbeat,
            comment,
            guard: None,
        }
    }

    /// Counts this body as one of the tenant's open streams until it ends.
    pub fn counted(mut self, guard: StreamGuard) -> Self {
        self.guard = Some(guard);
        self
    }
}

impl Stream for LogBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.chunks.as_mut().poll_next(cx) {
            Poll::Ready(Some(chunk)) => {
                if let Some(heartbeat) = this.heartbeat.as_mut() {
                    heartbeat.reset();
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(None) => {
                this.guard = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if let Some(heartbeat) = this.heartbeat.as_mut()
            && heartbeat.poll_tick(cx).is_ready()
        {
            return Poll::Ready(Some(Ok(Bytes::from_static(this.comment))));
        }
        Poll::Pending
    }
}
