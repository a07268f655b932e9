//! [`ExecutionPublisher`]: writes one execution this replica runs into the shared store, so
//! other replicas can read and follow it (see [`shared`](super::shared)).
//!
//! The `ExecutionWatcher` hands it each new batch of events with the snapshot that follows
//! them; a task of its own writes them in order (a batch queued while a write is in flight
//! joins the next one), so the watcher's mailbox never waits on Redis. Between writes the
//! task renews the execution's heartbeat every `heartbeat`, and takes cancel requests other
//! replicas left, cancelling the run. A failed write is retried, in order, until it lands
//! (a gap would break every reader's resume) or until the store would have forgotten the
//! execution anyway. If another replica declared the execution lost
//! (this one was cut off from Redis for longer than `lost_after`), the task tells the watcher
//! and stops. Closing the publisher lets the task flush what is queued and end.

use crate::store::ExecutionId;

use std::time::{Duration, Instant};

use actix::Recipient;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::messages::ExecutionTakenOver;
use super::shared::{Append, ExecutionKeys, Ownership, SharedExecutions};
use super::state::{Execution, ExecutionEvent, ExecutionSnapshot};

/// The longest pause between two attempts of a failed write.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// What the publisher's task needs.
pub(crate) struct PublisherParts {
    pub shared: SharedExecutions,
    pub keys: ExecutionKeys,
    pub execution_id: ExecutionId,
    /// The run's cancellation, for cancel requests from other replicas.
    pub cancel: CancellationToken,
    /// Where a take-over is reported (the `ExecutionWatcher`).
    pub taken_over: Recipient<ExecutionTakenOver>,
    /// Fires when the watcher stops: writes still failing are abandoned.
    pub shutdown: CancellationToken,
}

/// The watcher's side of one execution's publishing.
pub(crate) struct ExecutionPublisher {
    updates: UnboundedSender<Update>,
    /// The last seq handed to the task.
    queued_seq: u64,
    task: JoinHandle<()>,
}

struct Update {
    events: Vec<ExecutionEvent>,
    snapshot: ExecutionSnapshot,
    written: Option<oneshot::Sender<()>>,
}

impl ExecutionPublisher {
    /// Starts publishing `execution` (still without events); the receiver is answered once
    /// its first snapshot is in the store, so a client sent to another replica finds it (or
    /// once the first attempt failed: waiting through an outage helps no one).
    pub fn start(parts: PublisherParts, execution: &Execution) -> (Self, oneshot::Receiver<()>) {
        let (updates, received) = unbounded_channel();
        let (written, registered) = oneshot::channel();
        let _ = updates.send(Update {
            events: execution.events_after(0).to_vec(),
            snapshot: execution.snapshot(),
            written: Some(written),
        });
        let publisher = Self {
            updates,
            queued_seq: execution.last_seq(),
            task: tokio::spawn(publish(parts, received)),
        };
        (publisher, registered)
    }

    /// Queues what changed in `execution` since the last call.
    pub fn publish(&mut self, execution: &Execution) {
        let events = execution.events_after(self.queued_seq).to_vec();
        self.queued_seq = execution.last_seq();
        let _ = self.updates.send(Update {
            events,
            snapshot: execution.snapshot(),
            written: None,
        });
    }

    /// No more updates: the task writes what is queued and ends.
    pub fn close(self) -> JoinHandle<()> {
        self.task
    }
}

/// Where the task stands with the store.
struct Progress {
    /// The last seq the store has from us.
    written_seq: u64,
    /// The final event is written: no more heartbeats.
    complete: bool,
    registered: bool,
}

async fn publish(parts: PublisherParts, mut updates: UnboundedReceiver<Update>) {
    let mut progress = Progress {
        written_seq: 0,
        complete: false,
        registered: false,
    };
    let mut heartbeat = tokio::time::interval(parts.shared.heartbeat());
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // The heartbeat first: it is due only every `heartbeat`, so it cannot starve the
            // writes, while a steady flow of writes would starve it (and cancel requests).
            biased;
            _ = heartbeat.tick(), if progress.registered && !progress.complete => {
                if !renew(&parts, &progress).await {
                    return;
                }
            }
            update = updates.recv() => {
                let Some(first) = update else { return };
                let mut batch = Batch::default();
                batch.absorb(first);
                while let Ok(more) = updates.try_recv() {
                    batch.absorb(more);
                }
                if !write(&parts, &mut progress, batch).await {
                    return;
                }
            }
        }
    }
}

/// Updates queued together, written as one.
#[derive(Default)]
struct Batch {
    events: Vec<ExecutionEvent>,
    snapshot: Option<ExecutionSnapshot>,
    written: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn absorb(&mut self, update: Update) {
        self.events.extend(update.events);
        self.snapshot = Some(update.snapshot);
        self.written.extend(update.written);
    }
}

/// Writes the batch, retrying until it lands; false when the task should end.
async fn write(parts: &PublisherParts, progress: &mut Progress, batch: Batch) -> bool {
    let Some(snapshot) = &batch.snapshot else {
        return true;
    };
    let mut delay = Duration::from_millis(100);
    let mut failing_since = None;
    let mut waiting = batch.written;
    loop {
        let append = Append {
            after_seq: progress.written_seq,
            events: &batch.events,
            snapshot,
        };
        let appended = parts.shared.append(&parts.keys, append).await;
        // A start waits for the store to have the execution, but not through an outage.
        for written in waiting.drain(..) {
            let _ = written.send(());
        }
        match appended {
            Ok(Ownership::Held) => break,
            Ok(Ownership::TakenOver) => {
                taken_over(parts);
                return false;
            }
            Err(error) => {
                let first_failure = failing_since.is_none();
                let since = *failing_since.get_or_insert_with(Instant::now);
                if first_failure {
                    tracing::warn!(execution = %parts.execution_id, %error, "publishing execution events failed; retrying");
                }
                // By now the store would have forgotten the execution anyway.
                if since.elapsed() > parts.shared.running_ttl() {
                    tracing::error!(execution = %parts.execution_id, %error, "publishing execution events abandoned: the store stayed unreachable");
                    return false;
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = parts.shutdown.cancelled() => return false,
                }
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
    if failing_since.is_some() {
        tracing::info!(execution = %parts.execution_id, "publishing execution events again");
    }
    progress.written_seq += batch.events.len() as u64;
    progress.complete |= snapshot.status.is_finished();
    progress.registered = true;
    true
}

/// Renews the heartbeat; false when the task should end.
async fn renew(parts: &PublisherParts, progress: &Progress) -> bool {
    match parts.shared.renew(&parts.keys, progress.written_seq).await {
        Ok(renewal) if renewal.ownership == Ownership::TakenOver => {
            taken_over(parts);
            return false;
        }
        Ok(renewal) => {
            if renewal.cancel_requested && !parts.cancel.is_cancelled() {
                tracing::info!(execution = %parts.execution_id, "execution cancel requested through another replica");
                parts.cancel.cancel();
            }
        }
        // The next tick tries again; a write also renews the heartbeat.
        Err(error) => {
            tracing::debug!(execution = %parts.execution_id, %error, "renewing the heartbeat failed");
        }
    }
    true
}

fn taken_over(parts: &PublisherParts) {
    tracing::warn!(
        execution = %parts.execution_id,
        "another replica declared this execution lost (this one could not reach Redis in time): stopping it"
    );
    parts.taken_over.do_send(ExecutionTakenOver {
        execution_id: parts.execution_id.clone(),
    });
}
