//! How a Session follows the execution its turn started, with backpressure. The watcher
//! pushes each event to its subscribers without waiting, so a client reading slower than a
//! loud workflow runs would make the Session queue the difference until the stall timeout.
//! Instead the Session subscribes through a [`Relay`] and passes events on in sequence; when
//! its queue for the client is full it cuts the relay off (a stopped subscriber is dropped
//! by the watcher) and, once the client has made room, subscribes again after the last
//! event it passed on: the watcher replays the rest from the execution's log, which its own
//! byte budget bounds. Nothing is lost, and the Session holds at most its queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::prelude::*;

use crate::store::{ExecutionId, TenantId};
use crate::workflow::{ExecutionEvent, Subscribe};

/// The execution a turn follows and how far its events have been passed on.
#[derive(Debug)]
pub struct Follow {
    pub execution_id: ExecutionId,
    /// The sequence number of the last event passed on to the client.
    passed: u64,
    /// Set to cut the current relay off; `None` while none is subscribed.
    relay: Option<Arc<AtomicBool>>,
}

impl Follow {
    pub fn new(execution_id: ExecutionId) -> Self {
        Self {
            execution_id,
            passed: 0,
            relay: None,
        }
    }

    /// A subscription through a new relay to `session`, for the events after the last one
    /// passed on; the previous relay, if any, is cut off.
    pub fn subscribe(&mut self, tenant: TenantId, session: Recipient<ExecutionEvent>) -> Subscribe {
        self.cut();
        let cut = Arc::new(AtomicBool::new(false));
        self.relay = Some(cut.clone());
        let relay = Relay { to: session, cut }.start();
        Subscribe {
            tenant,
            execution_id: self.execution_id.clone(),
            after_seq: self.passed,
            subscriber: relay.recipient(),
        }
    }

    /// Whether `event` is the next one to pass on: events of a relay cut off, or replayed
    /// twice, are not.
    pub fn is_next(&self, event: &ExecutionEvent) -> bool {
        self.relay.is_some()
            && event.execution_id == self.execution_id
            && event.seq == self.passed + 1
    }

    pub fn passed(&mut self, event: &ExecutionEvent) {
        self.passed = event.seq;
    }

    /// Whether the relay was cut off for lack of room.
    pub fn is_cut(&self) -> bool {
        self.relay.is_none()
    }

    /// Stops taking events until [`Follow::subscribe`] is called again.
    pub fn cut(&mut self) {
        if let Some(cut) = self.relay.take() {
            cut.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Passes an execution's events to a Session until it is cut off or the Session is gone,
/// then stops at the next event, so the watcher drops it.
struct Relay {
    to: Recipient<ExecutionEvent>,
    cut: Arc<AtomicBool>,
}

impl Actor for Relay {
    type Context = Context<Self>;
}

impl Handler<ExecutionEvent> for Relay {
    type Result = ();

    fn handle(&mut self, event: ExecutionEvent, ctx: &mut Context<Self>) {
        if self.cut.load(Ordering::Relaxed) || !self.to.connected() {
            ctx.stop();
            return;
        }
        self.to.do_send(event);
    }
}
