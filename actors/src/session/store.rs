//! Where conversations live between turns. [`SessionStore`] is the seam: the in-memory
//! [`MemorySessionStore`] (the default, one process) implements it here, the Redis store that
//! replicas share implements it in [`super::redis_store`]. A store also hands out [`TurnLease`]s so that a
//! session runs one turn at a time.
//!
//! The memory store is bounded by count and by bytes: records idle longer than the TTL are
//! dropped, and past the record cap or the byte budget (each record counted as the memory it
//! takes: its JSON size plus what the JSON leaves out, [`resident_bytes`]) the least
//! recently updated go first, so stateless traffic, however large its messages, cannot grow
//! memory without end. Every store also tells a record's size
//! ([`SessionStore::stored_bytes`]) so the HTTP layer can refuse a turn that would take one
//! session past its own cap before it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use futures_util::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hold::Release;
use crate::provider::{ChatMessage, Transcript};
use crate::store::{ExecutionId, SessionId, StoreError, TenantId, now_ms};

/// A session is addressed by tenant, user and id; ids of other tenants do not exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionKey {
    pub tenant: TenantId,
    pub user: String,
    pub id: SessionId,
}

/// Everything kept about a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub key: SessionKey,
    /// The whole conversation, tool calls and results the client never saw included.
    pub transcript: Transcript,
    /// Workflows the agent produced, newest last.
    pub workflows: Vec<Value>,
    /// Executions started in this session.
    pub executions: Vec<ExecutionId>,
    /// A run the agent wants to start, waiting for the user's approval. Boxed: few sessions
    /// have one, and inline it would widen every stored record by a hundred bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<Box<super::approval::PendingApproval>>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl SessionRecord {
    pub fn new(key: SessionKey) -> Self {
        let now = now_ms();
        Self {
            key,
            transcript: Transcript::new(),
            workflows: Vec::new(),
            executions: Vec::new(),
            pending_approval: None,
            created_at_ms: now,
            updated_at_ms: now,
        }
    }
}

/// A record's size as stored: its JSON, counted without building it.
pub fn record_bytes(record: &SessionRecord) -> usize {
    json_bytes(record)
}

/// What a record takes in the memory store, at least: its JSON length (the text it holds)
/// plus what the JSON leaves out, which for a one-line chat is three times the JSON: the map
/// slot of the key and record (a hash table that has just grown has half its slots free), the
/// map key's copy of the key's text, the transcript's shared head (its two reference counts and
/// the `Vec` of messages), each message's fixed part and the allocator's header and rounding
/// of every allocation.
fn resident_bytes(record: &SessionRecord, json: usize) -> usize {
    /// glibc malloc: an 8-byte header, chunks in steps of 16 bytes.
    const ALLOCATION: usize = 16;
    const SLOT: usize = size_of::<(SessionKey, StoredRecord)>();
    let key = &record.key;
    let key_text = key.tenant.len() + key.user.len() + key.id.len() + 3 * ALLOCATION;
    const TRANSCRIPT_HEAD: usize = 2 * size_of::<usize>() + size_of::<Vec<ChatMessage>>();
    // Each message owns at most a few strings (content, ids, a tool call's name).
    let messages = TRANSCRIPT_HEAD
        + ALLOCATION
        + record.transcript.capacity() * size_of::<ChatMessage>()
        + 3 * ALLOCATION * record.transcript.len();
    json + 2 * SLOT + key_text + messages + ALLOCATION
}

/// The length of `value`'s JSON, counted without building it.
pub fn json_bytes(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and our types serialize.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
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
    /// The size of the stored record (see [`record_bytes`]); 0 when there is none.
    fn stored_bytes(&self, key: &SessionKey) -> BoxFuture<'static, Result<usize, StoreError>>;
    /// `Err(Busy)` while another turn holds the session.
    fn acquire_turn(&self, key: &SessionKey) -> BoxFuture<'static, Result<TurnLease, StoreError>>;
    /// `Err(why)` while the store cannot serve requests (readiness reports it).
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

pub struct MemorySessionStore {
    records: Arc<DashMap<SessionKey, StoredRecord>>,
    leases: Arc<DashMap<SessionKey, ()>>,
    /// The memory the kept records take together ([`resident_bytes`]).
    total_bytes: AtomicUsize,
    ttl: Duration,
    max_records: usize,
    max_bytes: usize,
}

struct StoredRecord {
    record: SessionRecord,
    /// Its JSON size ([`record_bytes`]), what a session's own cap is measured in.
    bytes: usize,
    /// The memory it takes ([`resident_bytes`]), what the store's budget is measured in.
    resident: usize,
}

impl MemorySessionStore {
    /// A store of at most `max_records` sessions, with no byte budget until
    /// [`with_max_bytes`](Self::with_max_bytes).
    pub fn new(ttl: Duration, max_records: usize) -> Self {
        Self {
            records: Arc::new(DashMap::new()),
            leases: Arc::new(DashMap::new()),
            total_bytes: AtomicUsize::new(0),
            ttl,
            max_records: max_records.max(1),
            max_bytes: usize::MAX,
        }
    }

    /// Keeps the memory the records take together within `max_bytes`.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The memory the kept records take together, as counted by [`resident_bytes`].
    pub fn total_bytes(&self) -> usize {
        self.total_bytes.load(Ordering::Relaxed)
    }

    fn over_budget(&self) -> bool {
        self.records.len() > self.max_records || self.total_bytes() > self.max_bytes
    }

    /// Drops expired records, then the least recently updated ones until both the count and
    /// the bytes are a tenth under their caps (so the scan is not repeated on every save).
    /// `keep` was just saved: an acknowledged turn is never the one evicted.
    fn evict(&self, keep: &SessionKey) {
        let oldest_kept = now_ms().saturating_sub(self.ttl.as_millis() as u64);
        self.records.retain(|_, stored| {
            let fresh = stored.record.updated_at_ms >= oldest_kept;
            if !fresh {
                self.total_bytes
                    .fetch_sub(stored.resident, Ordering::Relaxed);
            }
            fresh
        });
        if !self.over_budget() {
            return;
        }
        // What goes is decided on ages and sizes alone, so the scan copies no key: the oldest
        // age that stays, and how many records of the newest age that goes go too (ages are
        // in milliseconds, and many records share one).
        let mut ages: Vec<(u64, usize)> = self
            .records
            .iter()
            .filter(|entry| entry.key() != keep)
            .map(|entry| (entry.record.updated_at_ms, entry.resident))
            .collect();
        ages.sort_unstable();
        let target_records = self.max_records - self.max_records / 10;
        let target_bytes = self.max_bytes - self.max_bytes / 10;
        let (mut records, mut bytes) = (self.records.len(), self.total_bytes());
        let mut newest_gone: Option<(u64, usize)> = None;
        for (age, resident) in ages {
            if records <= target_records && bytes <= target_bytes {
                break;
            }
            records -= 1;
            bytes = bytes.saturating_sub(resident);
            newest_gone = match newest_gone {
                Some((gone, count)) if gone == age => Some((gone, count + 1)),
                _ => Some((age, 1)),
            };
        }
        let Some((cutoff, mut at_cutoff)) = newest_gone else {
            return;
        };
        self.records.retain(|key, stored| {
            let age = stored.record.updated_at_ms;
            let goes = key != keep
                && (age < cutoff
                    || (age == cutoff && at_cutoff > 0 && {
                        at_cutoff -= 1;
                        true
                    }));
            if goes {
                self.total_bytes
                    .fetch_sub(stored.resident, Ordering::Relaxed);
            }
            !goes
        });
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
            .filter(|stored| stored.record.updated_at_ms >= oldest_kept)
            .map(|stored| stored.record.clone());
        futures_util::future::ready(Ok(record)).boxed()
    }

    fn save(&self, mut record: SessionRecord) -> BoxFuture<'static, Result<(), StoreError>> {
        record.updated_at_ms = now_ms();
        // A turn's pushes leave spare room the stored record would keep for its whole life.
        record.transcript.shrink_to_fit();
        let bytes = record_bytes(&record);
        let resident = resident_bytes(&record, bytes);
        let key = record.key.clone();
        self.total_bytes.fetch_add(resident, Ordering::Relaxed);
        let stored = StoredRecord {
            record,
            bytes,
            resident,
        };
        if let Some(replaced) = self.records.insert(key.clone(), stored) {
            self.total_bytes
                .fetch_sub(replaced.resident, Ordering::Relaxed);
        }
        if self.over_budget() {
            self.evict(&key);
        }
        futures_util::future::ready(Ok(())).boxed()
    }

    fn stored_bytes(&self, key: &SessionKey) -> BoxFuture<'static, Result<usize, StoreError>> {
        let bytes = self.records.get(key).map_or(0, |stored| stored.bytes);
        futures_util::future::ready(Ok(bytes)).boxed()
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
pub(crate) mod tests {
    use super::*;

    /// A session of tenant `t` and user `u`, for tests of what keys sessions.
    pub(crate) fn key(id: &str) -> SessionKey {
        SessionKey {
            tenant: TenantId::parse("t").unwrap(),
            user: "u".into(),
            id: SessionId::parse(id).unwrap(),
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
            tenant: TenantId::parse("other").unwrap(),
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

    #[actix_rt::test]
    async fn records_are_bounded_by_bytes_and_the_one_just_saved_stays() {
        let store =
            MemorySessionStore::new(Duration::from_secs(60), 1000).with_max_bytes(1_000_000);
        let big = "x".repeat(100_000);
        for i in 0..50 {
            let mut record = SessionRecord::new(key(&i.to_string()));
            record.transcript.push(ChatMessage::user(big.clone()));
            store.save(record).await.unwrap();
            assert!(store.total_bytes() <= 1_000_000, "{}", store.total_bytes());
            assert!(store.load(&key(&i.to_string())).await.unwrap().is_some());
        }
        assert!(store.len() < 10, "{}", store.len());
        let newest = store.stored_bytes(&key("49")).await.unwrap();
        assert!(newest > 100_000, "{newest}");
        assert_eq!(store.stored_bytes(&key("0")).await.unwrap(), 0);

        // A record larger than the whole budget is still kept: it was acknowledged.
        let mut huge = SessionRecord::new(key("huge"));
        huge.transcript
            .push(ChatMessage::user("y".repeat(2_000_000)));
        store.save(huge).await.unwrap();
        assert!(store.load(&key("huge")).await.unwrap().is_some());
        assert_eq!(store.len(), 1);
    }
}
