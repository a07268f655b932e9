//! [`ExecutionEventStream`]: the per-request actor behind `GET /v1/executions/{id}/events`.
//!
//! The handler subscribes it to the `ExecutionWatcher`; it receives the execution's
//! [`ExecutionEvent`]s and writes each one, as one SSE event (`id: <seq>` and `data: <json>`),
//! into the channel that feeds the response body, a [`ChunkBody`](crate::streaming::ChunkBody)
//! like every other stream's (heartbeat, open-stream count, tenant permit). It stops after
//! `workflow_complete` (which ends the body), and as soon as the client goes away (the body,
//! and with it the channel's receiver, is dropped), after which the watcher drops it as a
//! subscriber.

use actix::prelude::*;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use kubiya_actors::workflow::ExecutionEvent;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

pub struct ExecutionEventStream {
    body: UnboundedSender<Bytes>,
}

impl ExecutionEventStream {
    /// Starts the actor; returns its address (to subscribe) and the chunks it writes.
    pub fn open() -> (Addr<Self>, BoxStream<'static, Bytes>) {
        let (body, receiver) = unbounded_channel();
        let actor = Self { body }.start();
        (actor, Box::pin(chunks(receiver)))
    }

    fn write(&mut self, bytes: Bytes, ctx: &mut Context<Self>) {
        if self.body.send(bytes).is_err() {
            ctx.stop();
        }
    }
}

fn chunks(receiver: UnboundedReceiver<Bytes>) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        let bytes = receiver.recv().await?;
        Some((bytes, receiver))
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
    use kubiya_actors::store::ExecutionId;
    use kubiya_actors::workflow::StepEvent;

    #[test]
    fn events_are_one_sse_event_each_with_the_seq_as_id() {
        let event = ExecutionEvent {
            execution_id: ExecutionId::parse("exec_1").unwrap(),
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
