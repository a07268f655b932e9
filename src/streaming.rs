//! The body of a streamed turn: a `Stream` over the Session's [`TurnEvent`] channel that
//! encodes each event into one chunk (one event per write), sends a heartbeat comment when
//! the stream has been idle, and ends after the terminal event. While it lives it counts as
//! an open stream, which the drain on shutdown waits for, and holds the tenant's stream
//! permit, freed before the last chunk goes out; dropping it (the client left) closes the
//! channel, which stops the Session. The channel is bounded: a client that reads slowly makes
//! the Session wait, and each chunk handed over is reported to the stalled-client watchdog.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use futures_util::future::BoxFuture;
use kubiya_actors::limits::StreamPermit;
use kubiya_actors::session::TurnEvent;
use tokio::sync::Notify;
use tokio::sync::mpsc::Receiver;

use crate::stalled_client::Delivery;
use crate::wire::StreamEncoder;

/// Turns in progress and open streams, so shutdown can wait for them to finish.
#[derive(Default)]
pub struct OpenStreams {
    count: AtomicUsize,
    idle: Notify,
}

impl OpenStreams {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Resolves once no stream is open.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Held by a stream body for as long as it is open.
pub struct StreamGuard(Arc<OpenStreams>, Option<StreamPermit>);

impl StreamGuard {
    pub fn new(streams: Arc<OpenStreams>) -> Self {
        streams.count.fetch_add(1, Ordering::AcqRel);
        Self(streams, None)
    }

    /// Counts the turn against its tenant's concurrent streams until the guard drops.
    pub fn with_permit(mut self, permit: StreamPermit) -> Self {
        self.1 = Some(permit);
        self
    }

    /// Frees the tenant's stream permit (completing once it is free), then stops counting.
    pub async fn close(mut self) {
        if let Some(permit) = self.1.take() {
            permit.release().await;
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

pub struct EventBody {
    events: Receiver<TurnEvent>,
    encoder: Box<dyn StreamEncoder>,
    /// The first event, already taken from the channel to decide the response status.
    first: Option<TurnEvent>,
    heartbeat: Option<tokio::time::Interval>,
    buffer: BytesMut,
    done: bool,
    guard: StreamGuard,
    /// The last chunk, held back until the tenant's stream permit is free again.
    last: Option<(BoxFuture<'static, ()>, Bytes)>,
    delivery: Arc<Delivery>,
}

/// Where a body's events come from and where it reports its progress.
pub struct EventSource {
    /// The first event, already taken from the channel to decide the response status.
    pub first: TurnEvent,
    pub events: Receiver<TurnEvent>,
    pub delivery: Arc<Delivery>,
}

impl EventBody {
    pub fn new(
        source: EventSource,
        encoder: Box<dyn StreamEncoder>,
        heartbeat_every: Duration,
        guard: StreamGuard,
    ) -> Self {
        let EventSource {
            first,
            events,
            delivery,
        } = source;
        let heartbeat = (encoder.heartbeat().is_some() && !heartbeat_every.is_zero()).then(|| {
            let mut interval = tokio::time::interval_at(
                tokio::time::Instant::now() + heartbeat_every,
                heartbeat_every,
            );
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        Self {
            events,
            encoder,
            first: Some(first),
            heartbeat,
            buffer: BytesMut::with_capacity(512),
            done: false,
            guard,
            last: None,
            delivery,
        }
    }

    fn encode(&mut self, event: &TurnEvent) -> Bytes {
        self.encoder.encode(event, &mut self.buffer);
        if event.is_terminal() {
            self.done = true;
        }
        if let Some(heartbeat) = self.heartbeat.as_mut() {
            heartbeat.reset();
        }
        self.buffer.split().freeze()
    }

    /// Sends `bytes`; the last chunk waits until the stream permit is released, so a client
    /// that starts its next stream at once is never refused because of this one.
    fn deliver(&mut self, bytes: Bytes, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        self.delivery.handed_over();
        if self.done
            && let Some(permit) = self.guard.1.take()
        {
            self.last = Some((permit.release(), bytes));
            return self.poll_last(cx);
        }
        Poll::Ready(Some(Ok(bytes)))
    }

    fn poll_last(&mut self, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        let Some((release, _)) = self.last.as_mut() else {
            return Poll::Ready(None);
        };
        if release.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let (_, bytes) = self.last.take().expect("checked above");
        Poll::Ready(Some(Ok(bytes)))
    }
}

impl Drop for EventBody {
    fn drop(&mut self) {
        self.delivery.body_dropped();
    }
}

type Chunk = Result<Bytes, std::convert::Infallible>;

impl Stream for EventBody {
    type Item = Chunk;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.last.is_some() {
            return this.poll_last(cx);
        }
        if let Some(first) = this.first.take() {
            let bytes = this.encode(&first);
            return this.deliver(bytes, cx);
        }
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.events.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    let bytes = this.encode(&event);
                    if bytes.is_empty() {
                        continue;
                    }
                    return this.deliver(bytes, cx);
                }
                // The Session ended without a terminal event (it cannot, but never hang).
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            if let Some(heartbeat) = this.heartbeat.as_mut()
                && heartbeat.poll_tick(cx).is_ready()
                && let Some(comment) = this.encoder.heartbeat()
            {
                this.delivery.handed_over();
                return Poll::Ready(Some(Ok(Bytes::from_static(comment))));
            }
            return Poll::Pending;
        }
    }
}
