//! The one path every streamed response takes. Each body holds a [`StreamGuard`] while it is
//! open: it counts as an open stream, which the drain on shutdown waits for, and holds the
//! tenant's stream permit. Each sends the configured [`Heartbeat`] comment when it has been
//! idle, and goes out with the headers of [`response`] (no caching, no proxy buffering).
//!
//! Two bodies share that: [`EventBody`], a turn's [`TurnEvent`] channel encoded one event per
//! write, ending after the terminal event, with the permit freed before the last chunk goes
//! out; dropping it (the client left) closes the channel, which stops the Session. Its channel
//! is bounded: a client that reads slowly makes the Session wait, and each chunk handed over
//! is reported to the stalled-client watchdog. And [`ChunkBody`], chunks another task already
//! encoded: an execution's events, a resumable chat's log, the Responses API's events.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::HttpResponseBuilder;
use actix_web::http::header::CACHE_CONTROL;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use kubiya_actors::limits::StreamPermit;
use kubiya_actors::session::TurnEvent;
use tokio::sync::Notify;
use tokio::sync::mpsc::Receiver;

use crate::stalled_client::Delivery;
pub use crate::wire::SSE_HEARTBEAT;
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

/// A streamed response's status and headers, the same for every stream: 200, `content_type`,
/// no caching, and no buffering by a proxy in front (nginx honours `X-Accel-Buffering`).
pub fn response(content_type: &str) -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type(content_type)
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"));
    response
}

/// A comment sent when a stream has been idle for `every`.
pub struct Heartbeat {
    interval: tokio::time::Interval,
    comment: &'static [u8],
}

impl Heartbeat {
    /// `None` when the format has no comment or the interval is zero (heartbeats off).
    pub fn every(every: Duration, comment: Option<&'static [u8]>) -> Option<Self> {
        let comment = comment.filter(|_| !every.is_zero())?;
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(Self { interval, comment })
    }

    /// Something was sent: the idle time counts from now.
    fn reset(&mut self) {
        self.interval.reset();
    }

    /// The comment, once the stream has been idle for the interval.
    fn poll_due(&mut self, cx: &mut Context<'_>) -> Option<Bytes> {
        self.interval
            .poll_tick(cx)
            .is_ready()
            .then(|| Bytes::from_static(self.comment))
    }
}

/// Chunks encoded elsewhere as a response body, with the heartbeat and, when the body is what
/// the client holds open, its place among the open streams.
pub struct ChunkBody {
    chunks: BoxStream<'static, Bytes>,
    heartbeat: Option<Heartbeat>,
    guard: Option<StreamGuard>,
}

impl ChunkBody {
    pub fn new(chunks: BoxStream<'static, Bytes>, heartbeat: Option<Heartbeat>) -> Self {
        Self {
            chunks,
            heartbeat,
            guard: None,
        }
    }

    /// Counts this body as an open stream (and the tenant's, with a permit) until it ends.
    pub fn counted(mut self, guard: StreamGuard) -> Self {
        self.guard = Some(guard);
        self
    }
}

impl Stream for ChunkBody {
    type Item = Chunk;

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
        match this.heartbeat.as_mut().and_then(|beat| beat.poll_due(cx)) {
            Some(comment) => Poll::Ready(Some(Ok(comment))),
            None => Poll::Pending,
        }
    }
}

pub struct EventBody {
    events: Receiver<TurnEvent>,
    encoder: Box<dyn StreamEncoder>,
    /// The first event, already taken from the channel to decide the response status.
    first: Option<TurnEvent>,
    heartbeat: Option<Heartbeat>,
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
        let heartbeat = Heartbeat::every(heartbeat_every, encoder.heartbeat());
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
            if let Some(comment) = this.heartbeat.as_mut().and_then(|beat| beat.poll_due(cx)) {
                this.delivery.handed_over();
                return Poll::Ready(Some(Ok(comment)));
            }
            return Poll::Pending;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[actix_rt::test]
    async fn a_chunk_body_counts_as_open_until_its_last_chunk() {
        let streams = Arc::new(OpenStreams::default());
        let chunks = futures_util::stream::iter([Bytes::from_static(b"data: 1\n\n")]).boxed();
        let mut body = ChunkBody::new(chunks, None).counted(StreamGuard::new(streams.clone()));
        assert_eq!(streams.count(), 1);
        assert_eq!(
            body.next().await.map(Result::unwrap),
            Some(Bytes::from_static(b"data: 1\n\n"))
        );
        assert_eq!(streams.count(), 1, "open until the client has read its end");
        assert!(body.next().await.is_none());
        assert_eq!(streams.count(), 0);
    }

    #[actix_rt::test]
    async fn an_idle_chunk_body_sends_the_heartbeat_comment() {
        // Paused time: the default 15 s pass at once, to the timer's millisecond.
        tokio::time::pause();
        let near = |elapsed: Duration, expected: Duration| {
            elapsed >= expected && elapsed <= expected + Duration::from_millis(2)
        };
        let idle = futures_util::stream::pending().boxed();
        let every = Duration::from_secs(15);
        let beat = Heartbeat::every(every, Some(SSE_HEARTBEAT));
        let mut body = ChunkBody::new(idle, beat);
        let started = tokio::time::Instant::now();
        assert_eq!(
            body.next().await.map(Result::unwrap),
            Some(Bytes::from_static(SSE_HEARTBEAT))
        );
        assert!(near(started.elapsed(), every), "{:?}", started.elapsed());
        assert_eq!(
            body.next().await.map(Result::unwrap),
            Some(Bytes::from_static(SSE_HEARTBEAT))
        );
        assert!(
            near(started.elapsed(), every * 2),
            "{:?}",
            started.elapsed()
        );
        assert!(
            Heartbeat::every(Duration::ZERO, Some(SSE_HEARTBEAT)).is_none(),
            "0 is off"
        );
        assert!(
            Heartbeat::every(Duration::from_secs(1), None).is_none(),
            "no comment, no beat"
        );
    }
}
