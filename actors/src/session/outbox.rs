//! The way a Session's [`TurnEvent`]s leave it: a bounded channel to the HTTP body, and a
//! short queue for what does not fit while the client reads slowly. What a turn holds for
//! its client is bounded by both: once the queue is full the model call waits for room
//! (backpressure, so a slow reader slows only its own turn), and a client that takes nothing
//! for the stall timeout is cut off by the Session.

use std::collections::VecDeque;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{self, OwnedPermit, Receiver, Sender};
use tokio::sync::oneshot;

use super::event::TurnEvent;

/// Events the channel to the HTTP body holds.
pub const CHANNEL_CAPACITY: usize = 32;
/// Events the Session queues beyond the channel before model calls wait for room. Tool
/// results and execution events of one step may add a few more; nothing adds without end.
pub const QUEUE_LIMIT: usize = 32;

/// The channel between a Session and the body of its response.
pub fn event_channel() -> (Sender<TurnEvent>, Receiver<TurnEvent>) {
    mpsc::channel(CHANNEL_CAPACITY)
}

/// What became of an event handed to the outbox.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// It is in the channel.
    Sent,
    /// It waits in the queue: a flush must be running.
    Queued,
    /// The client is gone; nothing will read it.
    ClientGone,
}

pub struct Outbox {
    sender: Sender<TurnEvent>,
    queued: VecDeque<TurnEvent>,
    /// Model calls waiting for the queue to have room.
    waiting: Vec<oneshot::Sender<()>>,
    /// A flush is waiting for room in the channel.
    pub flushing: bool,
}

impl Outbox {
    pub fn new(sender: Sender<TurnEvent>) -> Self {
        Self {
            sender,
            queued: VecDeque::new(),
            waiting: Vec::new(),
            flushing: false,
        }
    }

    /// Sends at once when nothing is queued ahead of it and the channel has room, queues
    /// otherwise, so the order never changes.
    pub fn push(&mut self, event: TurnEvent) -> Pushed {
        if !self.queued.is_empty() {
            self.queued.push_back(event);
            return Pushed::Queued;
        }
        match self.sender.try_send(event) {
            Ok(()) => Pushed::Sent,
            Err(TrySendError::Full(event)) => {
                self.queued.push_back(event);
                Pushed::Queued
            }
            Err(TrySendError::Closed(_)) => Pushed::ClientGone,
        }
    }

    /// A handle to wait for room in the channel with.
    pub fn sender(&self) -> Sender<TurnEvent> {
        self.sender.clone()
    }

    /// The client went away: resolves once the body is dropped.
    pub fn closed(&self) -> impl Future<Output = ()> + 'static {
        let sender = self.sender.clone();
        async move { sender.closed().await }
    }

    /// Moves the oldest queued event into the reserved slot and whatever else fits after it;
    /// wakes waiting model calls once the queue has room. True while events remain queued.
    pub fn drain_into(&mut self, permit: OwnedPermit<TurnEvent>) -> bool {
        if let Some(event) = self.queued.pop_front() {
            permit.send(event);
        }
        while let Some(event) = self.queued.pop_front() {
            match self.sender.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.queued.push_front(event);
                    break;
                }
                Err(TrySendError::Closed(_)) => self.discard(),
            }
        }
        if self.has_room() {
            for waiter in self.waiting.drain(..) {
                let _ = waiter.send(());
            }
        }
        !self.queued.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    pub fn has_room(&self) -> bool {
        self.queued.len() < QUEUE_LIMIT
    }

    /// Resolves when the queue has room again, or the turn ended.
    pub fn room(&mut self) -> Option<oneshot::Receiver<()>> {
        if self.has_room() {
            return None;
        }
        let (waiter, room) = oneshot::channel();
        self.waiting.push(waiter);
        Some(room)
    }

    /// Drops what is queued and releases whoever waits for room: nobody will read it.
    pub fn discard(&mut self) {
        self.queued.clear();
        self.waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> TurnEvent {
        TurnEvent::Text(n.to_string())
    }

    #[tokio::test]
    async fn events_keep_their_order_and_the_queue_asks_for_a_wait_when_full() {
        let (sender, mut receiver) = event_channel();
        let mut outbox = Outbox::new(sender);
        for n in 0..CHANNEL_CAPACITY {
            assert_eq!(outbox.push(text(n)), Pushed::Sent);
        }
        for n in CHANNEL_CAPACITY..CHANNEL_CAPACITY + QUEUE_LIMIT {
            assert_eq!(outbox.push(text(n)), Pushed::Queued);
        }
        let mut room = outbox.room().expect("the queue is full");
        assert!(room.try_recv().is_err());

        // The reader takes one: the queue moves one on, which makes room.
        assert_eq!(receiver.recv().await, Some(text(0)));
        let permit = outbox.sender().reserve_owned().await.unwrap();
        assert!(outbox.drain_into(permit));
        assert!(room.try_recv().is_ok());
        let mut seen = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            seen.push(event);
        }
        let expected: Vec<_> = (1..=CHANNEL_CAPACITY).map(text).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_closed_channel_means_the_client_is_gone() {
        let (sender, receiver) = event_channel();
        drop(receiver);
        let mut outbox = Outbox::new(sender);
        assert_eq!(outbox.push(text(0)), Pushed::ClientGone);
    }
}
