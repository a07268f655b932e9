//! Where conversations live between turns. [`SessionStore`] is the seam: the in-memory
//! [`MemorySessionStore`] (the default, one process) implements it here, the Redis store that
//! replicas share implements it in [`super::redis_store`]. A store also hands out [`TurnLease`]s so that a
//! session runs one turn at a time.
//!
//! The memory store is bounded: records idle longer than the TTL are dropped, and past the
//! record cap the least recently updated go first, so stateless traffic cannot grow memory
//! without end.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hold::Release;
use crate::provider::ChatMessage;

/// A session is addressed by tenant, user and id; ids of other tenants do not exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionKey {
    pub tenant: String,
    pub user: String,
    pub id: String,
}

/// Everything kept about a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub key: SessionKey,
    /// The whole conversation, tool calls and results the client never saw included.
    pub transcript: Vec<ChatMessage>,
    /// Workflows the agent produced, newest last.
    pub workflows: Vec<Value>,
    /// Executions started in this session.
    pub executions: Vec<String>,
    /// A run the agent wants to start, waiting for the user's approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<super::approval::PendingApproval>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl SessionRecord {
    pub fn new(key: SessionKey) -> Self {
        let now = now_ms();
        Self {
            key,
            transcript: Vec::new(),
            workflows: Vec::new(),
            executions: Vec::new(),
            pending_approval: None,
            created_at_ms: now,
            updated_at_ms: now,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("another turn of this session is in progress; retry when it has finished")]
    Busy,
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
}

/// Held for the length of a turn; dropping it frees the session for the next turn, and
/// [`TurnLease::release`] frees it before the turn is acknowledged.
pub struct TurnLease {
    held: Box<dyn Release>,
}

impl TurnLease {
    pub fn new(held: impl Release + 'static) -> Self {
        Self {
            held: Box::new(held),
        }
    }

    /// Frees the session now; completes once another turn may take it.
    pub fn release(self) -> BoxFuture<'static, ()> {
        self.held.release()
    }
}

pub trait SessionStore: Send + Sync + 'static {
    fn load(
        &self,
        key: &SessionKey,
    ) -> BoxFuture<'static, Result<Option<SessionRecord>, StoreError>>;
    /// Completes only once the record is kept.
    fn save(&self, record: SessionRecord) -> BoxFuture<'static, Result<(), StoreError>>;
    /// `Err(Busy)` while another turn holds the session.
    fn acquire_turn(&self, key: &SessionKey) -> BoxFuture<'static, Result<TurnLease, StoreError>>;
    /// `Err(why)` while the store cannot serve requests (readiness reports it).
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

pub struct MemorySessionStore {
    records: Arc<DashMap<SessionKey, SessionRecord>>,
    leases: Arc<DashMap<SessionKey, ()>>,
    ttl: Duration,
    max_records: usize,
}

impl MemorySessionStore {
    pub fn new(ttl: Duration, max_records: usize) -> Self {
        Self {
            records: Arc::new(DashMap::new()),
            leases: Arc::new(DashMap::new()),
            ttl,
            max_records: max_records.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Drops expired records, then the least recently updated ones above the cap.
    fn evict(&self) {
        let oldest_kept = now_ms().saturating_sub(self.ttl.as_millis() as u64);
        self.records
            .retain(|_, record| record.updated_at_ms >= oldest_kept);
        let excess = self.records.len().saturating_sub(self.max_records);
        if excess == 0 {
            return;
        }
        let mut ages: Vec<(u64, SessionKey)> = self
            .records
            .iter()
            .map(|entry| (entry.updated_at_ms, entry.key().clone()))
            .collect();
        // Evict a tenth more than needed so the scan is not repeated on every save.
        let evict = (excess + self.max_records / 10).min(ages.len());
        ages.select_nth_unstable_by_key(evict.saturating_sub(1), |(age, _)| *age);
        for (_, key) in ages.into_iter().take(evict) {
            self.records.remove(&key);
        }
    }
}

impl SessionStore for MemorySessionStore {
    fn load(
        &self,
        key: &SessionKey,
    ) -> BoxFuture<'static, Result<Option<SessionRecord>, StoreError>> {
        let oldest_kept = now_ms().saturating_sub(self.ttl.as_millis() as u64);
        let record = self
            .records
            .get(key)
            .filter(|record| record.updated_at_ms >= oldest_kept)
            .map(|record| record.clone());
        futures_util::future::ready(Ok(record)).boxed()
    }

    fn save(&self, mut record: SessionRecord) -> BoxFuture<'static, Result<(), StoreError>> {
        record.updated_at_ms = now_ms();
        self.records.insert(record.key.clone(), record);
        if self.records.len() > self.max_records {
            self.evict();
        }
        futures_util::future::ready(Ok(())).boxed()
    }

    fn acquire_turn(&self, key: &SessionKey) -> BoxFuture<'static, Result<TurnLease, StoreError>> {
        let result = match self.leases.entry(key.clone()) {
            dashmap::Entry::Occupied(_) => Err(StoreError::Busy),
            dashmap::Entry::Vacant(slot) => {
                slot.insert(());
                Ok(TurnLease::new(MemoryLease {
                    leases: self.leases.clone(),
                    key: key.clone(),
                }))
            }
        };
        futures_util::future::ready(result).boxed()
    }
}

struct MemoryLease {
    leases: Arc<DashMap<SessionKey, ()>>,
    key: SessionKey,
}

impl Release for MemoryLease {
    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        drop(self);
        futures_util::future::ready(()).boxed()
    }
}

impl Drop for MemoryLease {
    fn drop(&mut self) {
        self.leases.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> SessionKey {
        SessionKey {
            tenant: "t".into(),
            user: "u".into(),
            id: id.into(),
        }
    }

    #[actix_rt::test]
    async fn a_lease_is_exclusive_until_dropped() {
        let store = MemorySessionStore::new(Duration::from_secs(60), 10);
        let lease = store.acquire_turn(&key("a")).await.unwrap();
        assert!(matches!(
            store.acquire_turn(&key("a")).await,
            Err(StoreError::Busy)
        ));
        assert!(store.acquire_turn(&key("b")).await.is_ok());
        drop(lease);
        assert!(store.acquire_turn(&key("a")).await.is_ok());
    }

    #[actix_rt::test]
    async fn records_are_scoped_by_the_whole_key_and_bounded() {
        let store = MemorySessionStore::new(Duration::from_secs(60), 100);
        store.save(SessionRecord::new(key("a"))).await.unwrap();
        let other_tenant = SessionKey {
            tenant: "other".into(),
            ..key("a")
        };
        assert!(store.load(&key("a")).await.unwrap().is_some());
        assert!(store.load(&other_tenant).await.unwrap().is_none());
        for i in 0..500 {
            store
                .save(SessionRecord::new(key(&i.to_string())))
                .await
                .unwrap();
        }
        assert!(store.len() <= 100, "{}", store.len());
        assert!(
            store.load(&key("499")).await.unwrap().is_some(),
            "the newest survive"
        );
    }
}
