//! Following an execution another replica runs: [`subscribe`] answers the
//! `ExecutionWatcher`'s `Subscribe` for an execution it does not own, from the shared store
//! (see [`shared`](super::shared)).
//!
//! A finished execution's events after `after_seq` are read at once and sent. For a running
//! one, a task of its own, on a Redis connection of its own (a blocking read would hold up
//! every other command on the shared one), reads the events after the last one sent with
//! `XREAD BLOCK`, sends them to the subscriber in order, and ends after `workflow_complete`,
//! when the subscriber has gone, or when the watcher drains. Each time a read comes back
//! empty it looks at the owner's heartbeat, declaring the execution lost when it has lapsed:
//! the `workflow_complete {status: "lost"}` it (or another reader) appends is then read like
//! any other event.

use crate::store::ExecutionId;

use std::time::Duration;

use actix::Recipient;
use redis::aio::MultiplexedConnection;
use tokio_util::sync::CancellationToken;

use super::error::ExecutionError;
use super::shared::{ExecutionKeys, SharedError, SharedExecutions};
use super::state::{ExecutionEvent, Subscription};

/// The longest pause between two attempts of a failed read.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// A subscription to an execution another replica runs.
pub(crate) struct RemoteSubscribe {
    pub shared: SharedExecutions,
    pub keys: ExecutionKeys,
    pub execution_id: ExecutionId,
    pub after_seq: u64,
    pub subscriber: Recipient<ExecutionEvent>,
    /// Fires when the watcher drains or stops.
    pub stop: CancellationToken,
}

/// Replays and, while the execution runs, follows it; `NotFound` when the store has no such
/// execution for this tenant.
pub(crate) async fn subscribe(request: RemoteSubscribe) -> Result<Subscription, ExecutionError> {
    let snapshot = request
        .shared
        .snapshot(&request.keys)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ExecutionError::NotFound(request.execution_id.to_string()))?;
    if snapshot.status.is_finished() {
        let events = request
            .shared
            .events_after(&request.keys, request.after_seq)
            .await
            .map_err(unavailable)?;
        if events.is_empty() {
            return Ok(Subscription::Finished);
        }
        for event in events {
            request.subscriber.do_send(event);
        }
        return Ok(Subscription::Following);
    }
    let connection = request
        .shared
        .blocking_connection()
        .await
        .map_err(unavailable)?;
    tokio::spawn(follow(request, connection));
    Ok(Subscription::Following)
}

async fn follow(request: RemoteSubscribe, mut connection: MultiplexedConnection) {
    let RemoteSubscribe {
        shared,
        keys,
        execution_id,
        mut after_seq,
        subscriber,
        stop,
    } = request;
    let mut delay = Duration::from_millis(100);
    let mut warned = false;
    while subscriber.connected() && !stop.is_cancelled() {
        let read = shared
            .wait_events_after(&mut connection, &keys, after_seq)
            .await;
        match read {
            Ok(events) if events.is_empty() => {
                // Nothing new: make sure that is not because the owner is gone.
                match shared.snapshot(&keys).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        tracing::warn!(execution = %execution_id, "a followed execution expired from the store");
                        return;
                    }
                    Err(error) => {
                        tracing::debug!(execution = %execution_id, %error, "checking the owner's heartbeat failed");
                    }
                }
            }
            Ok(events) => {
                for event in events {
                    after_seq = event.seq;
                    let last = event.is_final();
                    subscriber.do_send(event);
                    if last {
                        return;
                    }
                }
                delay = Duration::from_millis(100);
                warned = false;
            }
            Err(error) => {
                if !warned {
                    tracing::warn!(execution = %execution_id, %error, "following an execution in Redis failed; retrying");
                    warned = true;
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.cancelled() => return,
                }
                delay = (delay * 2).min(MAX_RETRY_DELAY);
                // The connection may be broken for good: take a new one.
                if let Ok(fresh) = shared.blocking_connection().await {
                    connection = fresh;
                }
            }
        }
    }
}

fn unavailable(error: SharedError) -> ExecutionError {
    ExecutionError::Unavailable(error.to_string())
}
