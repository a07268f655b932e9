//! [`follow`]: an execution's events as a channel, for callers that are not actors (the MCP
//! server's tools and resource subscriptions). A small actor, started by the
//! `ExecutionWatcher` on its arbiter, subscribes on their behalf and forwards each event; it
//! stops after the final one, or at the next event once the [`EventFeed`] is dropped.

use actix::prelude::*;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::error::ExecutionError;
use super::messages::Subscribe;
use super::state::{ExecutionEvent, Subscription};
use super::watcher::ExecutionWatcher;

/// The events of one execution after a sequence number, ending with `workflow_complete`.
pub struct EventFeed {
    // Unbounded, as the watcher's own subscribers are: an execution's events are bounded by
    // its run (steps, attempts, the log budget) and the feed ends with the final one.
    events: UnboundedReceiver<ExecutionEvent>,
}

impl EventFeed {
    /// The next event; `None` once the final one was taken (or the watcher went away).
    pub async fn next(&mut self) -> Option<ExecutionEvent> {
        self.events.recv().await
    }
}

/// Follows execution `execution_id` of `tenant` from after `after_seq`: `None` when it has
/// ended and nothing follows `after_seq`. Callable from any task.
pub async fn follow(
    watcher: &Addr<ExecutionWatcher>,
    tenant: &str,
    execution_id: &str,
    after_seq: u64,
) -> Result<Option<EventFeed>, ExecutionError> {
    watcher
        .send(Follow {
            tenant: tenant.to_owned(),
            execution_id: execution_id.to_owned(),
            after_seq,
        })
        .await
        .map_err(|error| ExecutionError::Unavailable(format!("executions: {error}")))?
}

/// [`follow`] as a message: the watcher starts the forwarder on its own arbiter (an actor
/// needs one, and the caller's task may have none) and subscribes it.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<EventFeed>, ExecutionError>")]
pub(super) struct Follow {
    pub(super) tenant: String,
    pub(super) execution_id: String,
    pub(super) after_seq: u64,
}

impl Handler<Follow> for ExecutionWatcher {
    type Result = ResponseFuture<Result<Option<EventFeed>, ExecutionError>>;

    fn handle(&mut self, follow: Follow, ctx: &mut Self::Context) -> Self::Result {
        let (sender, events) = unbounded_channel();
        let forwarder = Forwarder { events: sender }.start();
        let subscribing = self.handle(
            Subscribe {
                tenant: follow.tenant,
                execution_id: follow.execution_id,
                after_seq: follow.after_seq,
                subscriber: forwarder.clone().recipient(),
            },
            ctx,
        );
        Box::pin(async move {
            match subscribing.await {
                Ok(Subscription::Following) => Ok(Some(EventFeed { events })),
                Ok(Subscription::Finished) => {
                    forwarder.do_send(Stop);
                    Ok(None)
                }
                Err(error) => {
                    forwarder.do_send(Stop);
                    Err(error)
                }
            }
        })
    }
}

/// Forwards the events it is sent into its channel.
struct Forwarder {
    events: UnboundedSender<ExecutionEvent>,
}

impl Actor for Forwarder {
    type Context = Context<Self>;
}

impl Handler<ExecutionEvent> for Forwarder {
    type Result = ();

    fn handle(&mut self, event: ExecutionEvent, ctx: &mut Self::Context) {
        let last = event.is_final();
        if self.events.send(event).is_err() || last {
            ctx.stop();
        }
    }
}

/// Nothing will be forwarded: the subscription was refused or had nothing to follow.
#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

impl Handler<Stop> for Forwarder {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
