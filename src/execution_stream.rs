//! [`ExecutionEventStream`]: the per-request actor behind `GET /v1/executions/{id}/events`.
//!
//! The handler subscribes it to the `ExecutionWatcher`; it receives the execution's
//! [`ExecutionEvent`]s and writes each one, as one SSE event (`id: <seq>` and `data: <json>`),
//! into the channel that feeds the response body. It sends a `: keep-alive` comment when the
//! stream has been idle for a while, stops after `workflow_complete` (which ends the body),
//! and stops as soon as the client goes away (the body, and with it the channel's receiver,
//! is dropped), after which the watcher drops it as a subscriber.

use std::convert::Infallible;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use futures_util::Stream;
use kubiya_actors::workflow::ExecutionEvent;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// How long a stream may stay silent before a comment keeps proxies from closing it.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

const HEARTBEAT: &[u8] = b": keep-alive\n\n";

pub struct ExecutionEventStream {
    body: UnboundedSender<Bytes>,
    /// Something was written since the last heartbeat tick.
    wrote_since_tick: bool,
}

impl ExecutionEventStream {
    /// Starts the actor; returns its address (to subscribe) and the response body it feeds.
    pub fn open() -> (
        Addr<Self>,
        impl Stream<Item = Result<Bytes, Infallible>> + 'static,
    ) {
        let (body, receiver) = unbounded_channel();
        let actor = Self {
            body,
            wrote_since_tick: false,
        }
        .start();
        (actor, body_stream(receiver))
    }

    fn write(&mut self, bytes: Bytes, ctx: &mut Context<Self>) {
        self.wrote_since_tick = true;
        if self.body.send(bytes).is_err() {
            ctx.stop();
        }
    }
}

fn body_stream(
    receiver: UnboundedReceiver<Bytes>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + 'static {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        let bytes = receiver.recv().await?;
        Some((Ok(bytes), receiver))
    })
}

/// One SSE event: the sequence number as its id, the event as JSON data.
pub fn encode_event(event: &ExecutionEvent) -> Bytes {
    // Serializing an event cannot fail: every key is a string.
    let json = serde_json::to_string(event).unwrap_or_default();
    Bytes::from(format!("id: {}\ndata: {json}\n\n", event.seq))
}

impl Actor for ExecutionEventStream {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let body = self.body.clone();
        // The client went away: stop at once rather than at the next write.
        ctx.spawn(
            actix::fut::wrap_future(async move { body.closed().await })
                .map(|(), _: &mut Self, ctx: &mut Context<Self>| ctx.stop()),
        );
        ctx.run_interval(HEARTBEAT_INTERVAL, |stream, ctx| {
            if !std::mem::take(&mut stream.wrote_since_tick) {
                stream.write(Bytes::from_static(HEARTBEAT), ctx);
                stream.wrote_since_tick = false;
            }
        });
    }
}

impl Handler<ExecutionEvent> for ExecutionEventStream {
    type Result = ();

    fn handle(&mut self, event: ExecutionEvent, ctx: &mut Self::Context) {
        self.write(encode_event(&event), ctx);
        if event.is_final() {
            // Dropping the sender (with the actor) ends the response body.
            ctx.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubiya_actors::workflow::StepEvent;

    #[test]
    fn events_are_one_sse_event_each_with_the_seq_as_id() {
        let event = ExecutionEvent {
            execution_id: "exec_1".to_owned(),
            seq: 7,
            event: StepEvent::StepRunning {
                step: "build".to_owned(),
                message: "running".to_owned(),
                timestamp: 1,
            },
        };
        let text = String::from_utf8(encode_event(&event).to_vec()).expect("utf-8");
        assert_eq!(
            text,
            "id: 7\ndata: {\"execution_id\":\"exec_1\",\"seq\":7,\"type\":\"step_running\",\"step\":\"build\",\"message\":\"running\",\"timestamp\":1}\n\n"
        );
    }
}
