//! [`TurnLogs`]: the encoded chunks of each chat's turn in progress, kept while it runs so a
//! client that lost its stream can resume it ("resumable chats"). The turn is not tied to
//! the connection that started it: a writer appends every chunk as the turn produces it,
//! the stream answering the request follows the log like any resumed one, and the log ends
//! with the turn (following it after that finds nothing to resume).
//!
//! Logs live in this process; with a shared store, a [`shared`] mirror also writes them to
//! Redis in order, so a client sent to another replica resumes there. Logs are keyed by the
//! whole session key (tenant, user, chat id): one tenant never sees another's stream.

pub mod shared;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::Notify;

use crate::session::SessionKey;
use crate::store::StoreError;
use shared::{SharedTurnLogs, SharedWriter};

/// Where logs are kept: this process, and Redis when replicas share state.
#[derive(Clone, Default)]
pub struct TurnLogs {
    local: Arc<DashMap<SessionKey, Arc<LocalLog>>>,
    shared: Option<SharedTurnLogs>,
}

#[derive(Default)]
struct LocalLog {
    chunks: Mutex<Vec<Bytes>>,
    finished: AtomicBool,
    grew: Notify,
}

/// Appends one turn's chunks; dropping it without [`finish`](Self::finish) ends the log too.
pub struct TurnLogWriter {
    key: SessionKey,
    log: Arc<LocalLog>,
    logs: Arc<DashMap<SessionKey, Arc<LocalLog>>>,
    shared: Option<SharedWriter>,
}

impl TurnLogs {
    pub fn new(shared: Option<SharedTurnLogs>) -> Self {
        Self {
            local: Arc::default(),
            shared,
        }
    }

    /// Starts the log of `key`'s new turn, replacing the previous (finished) one.
    pub fn begin(&self, key: &SessionKey) -> TurnLogWriter {
        let log = Arc::new(LocalLog::default());
        self.local.insert(key.clone(), log.clone());
        TurnLogWriter {
            key: key.clone(),
            log,
            logs: self.local.clone(),
            shared: self.shared.as_ref().map(|shared| shared.writer(key)),
        }
    }

    /// The chunks after the first `after`, then each new one until the turn ends; `None`
    /// when no turn of `key` is running here or, with a shared store, on any replica.
    pub async fn follow(
        &self,
        key: &SessionKey,
        after: u64,
    ) -> Result<Option<BoxStream<'static, Bytes>>, StoreError> {
        let local = self.local.get(key).map(|entry| entry.value().clone());
        if let Some(log) = local.filter(|log| !log.finished.load(Ordering::Acquire)) {
            return Ok(Some(follow_local(log, after)));
        }
        match &self.shared {
            Some(shared) => shared.follow(key, after).await,
            None => Ok(None),
        }
    }
}

fn follow_local(log: Arc<LocalLog>, after: u64) -> BoxStream<'static, Bytes> {
    let next = usize::try_from(after).unwrap_or(usize::MAX);
    stream::unfold((log, next), |(log, next)| async move {
        loop {
            let chunk = {
                let grew = log.grew.notified();
                tokio::pin!(grew);
                grew.as_mut().enable();
                let chunk = log
                    .chunks
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .get(next)
                    .cloned();
                if chunk.is_none() {
                    if log.finished.load(Ordering::Acquire) {
                        return None;
                    }
                    grew.await;
                }
                chunk
            };
            if let Some(chunk) = chunk {
                return Some((chunk, (log, next + 1)));
            }
        }
    })
    .boxed()
}

impl TurnLogWriter {
    /// Follows this log from its first chunk: the stream answering the request that started
    /// the turn.
    pub fn follower(&self) -> BoxStream<'static, Bytes> {
        follow_local(self.log.clone(), 0)
    }

    pub fn append(&mut self, chunk: Bytes) {
        if let Some(shared) = self.shared.as_mut() {
            shared.append(chunk.clone());
        }
        self.log
            .chunks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(chunk);
        self.log.grew.notify_waiters();
    }

    /// The turn ended: followers read to the end and stop, and nothing is left to resume.
    pub fn finish(self) {
        // Drop does the work; this names the moment.
    }
}

impl Drop for TurnLogWriter {
    fn drop(&mut self) {
        self.log.finished.store(true, Ordering::Release);
        self.log.grew.notify_waiters();
        self.logs
            .remove_if(&self.key, |_, log| Arc::ptr_eq(log, &self.log));
        if let Some(shared) = self.shared.take() {
            shared.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::store::tests::key;
    use crate::store::TenantId;

    #[actix_rt::test]
    async fn a_follower_reads_what_was_written_then_live_chunks_until_the_end() {
        let logs = TurnLogs::default();
        let mut writer = logs.begin(&key("a"));
        writer.append(Bytes::from_static(b"one"));
        writer.append(Bytes::from_static(b"two"));
        let from_start = logs.follow(&key("a"), 0).await.unwrap().unwrap();
        let after_one = logs.follow(&key("a"), 1).await.unwrap().unwrap();
        assert!(logs.follow(&key("b"), 0).await.unwrap().is_none());
        let other_tenant = SessionKey {
            tenant: TenantId::parse("other").unwrap(),
            ..key("a")
        };
        assert!(logs.follow(&other_tenant, 0).await.unwrap().is_none());
        let reader = tokio::spawn(from_start.collect::<Vec<_>>());
        writer.append(Bytes::from_static(b"three"));
        writer.finish();
        assert_eq!(reader.await.unwrap(), ["one", "two", "three"]);
        assert_eq!(after_one.collect::<Vec<_>>().await, ["two", "three"]);
        assert!(
            logs.follow(&key("a"), 0).await.unwrap().is_none(),
            "nothing to resume once the turn ended"
        );
    }
}
