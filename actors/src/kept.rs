//! [`Kept`]: small documents kept for a while by tenant, kind and id — what the Responses
//! API stores (responses, for `GET` and `previous_response_id`; output items, for
//! `item_reference`). In this process, bounded by a TTL and a cap (the oldest go first), or
//! in Redis under `{prefix}:kept:{kind}:{tenant}:{id}` with the same TTL, so every replica
//! reads what any replica kept. The tenant is part of every key: another tenant's ids do
//! not exist.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use crate::store::{RedisConnection, StoreError, key_part, now_ms};

#[derive(Clone)]
pub struct Kept {
    place: Place,
    ttl: Duration,
}

/// Documents by (tenant, kind, id), with when they were kept.
type Documents = DashMap<(String, &'static str, String), (u64, String)>;

#[derive(Clone)]
enum Place {
    Memory {
        documents: Arc<Documents>,
        max: usize,
    },
    Redis {
        redis: RedisConnection,
        key_prefix: String,
    },
}

impl Kept {
    pub fn in_memory(ttl: Duration, max: usize) -> Self {
        Self {
            place: Place::Memory {
                documents: Arc::default(),
                max: max.max(1),
            },
            ttl,
        }
    }

    pub fn in_redis(redis: RedisConnection, key_prefix: String, ttl: Duration) -> Self {
        Self {
            place: Place::Redis { redis, key_prefix },
            ttl,
        }
    }

    /// Completes once the document is kept.
    pub async fn put(
        &self,
        tenant: &str,
        kind: &'static str,
        id: &str,
        document: String,
    ) -> Result<(), StoreError> {
        match &self.place {
            Place::Memory { documents, max } => {
                documents.insert(
                    (tenant.to_owned(), kind, id.to_owned()),
                    (now_ms(), document),
                );
                if documents.len() > *max {
                    self.evict(documents, *max);
                }
                Ok(())
            }
            Place::Redis { redis, key_prefix } => {
                let mut set = redis::cmd("SET");
                set.arg(redis_key(key_prefix, tenant, kind, id))
                    .arg(document)
                    .arg("PX")
                    .arg(
                        u64::try_from(self.ttl.as_millis())
                            .unwrap_or(u64::MAX)
                            .max(1),
                    );
                redis.query(set).await
            }
        }
    }

    pub async fn get(
        &self,
        tenant: &str,
        kind: &'static str,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        match &self.place {
            Place::Memory { documents, .. } => {
                let oldest = now_ms().saturating_sub(self.ttl.as_millis() as u64);
                Ok(documents
                    .get(&(tenant.to_owned(), kind, id.to_owned()))
                    .filter(|entry| entry.0 >= oldest)
                    .map(|entry| entry.1.clone()))
            }
            Place::Redis { redis, key_prefix } => {
                let mut get = redis::cmd("GET");
                get.arg(redis_key(key_prefix, tenant, kind, id));
                redis.query(get).await
            }
        }
    }

    /// Drops expired documents, then the oldest above the cap (a tenth more, so the scan
    /// is not repeated on every put).
    fn evict(&self, documents: &Documents, max: usize) {
        let oldest = now_ms().saturating_sub(self.ttl.as_millis() as u64);
        documents.retain(|_, (at, _)| *at >= oldest);
        let excess = documents.len().saturating_sub(max);
        if excess == 0 {
            return;
        }
        let mut ages: Vec<_> = documents
            .iter()
            .map(|entry| (entry.value().0, entry.key().clone()))
            .collect();
        let evict = (excess + max / 10).min(ages.len());
        ages.select_nth_unstable_by_key(evict.saturating_sub(1), |(at, _)| *at);
        for (_, key) in ages.into_iter().take(evict) {
            documents.remove(&key);
        }
    }
}

fn redis_key(prefix: &str, tenant: &str, kind: &str, id: &str) -> String {
    format!("{prefix}:kept:{kind}:{}:{}", key_part(tenant), key_part(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn documents_are_kept_per_tenant_and_bounded() {
        let kept = Kept::in_memory(Duration::from_secs(60), 100);
        kept.put("a", "response", "r1", "one".into()).await.unwrap();
        assert_eq!(
            kept.get("a", "response", "r1").await.unwrap().as_deref(),
            Some("one")
        );
        assert_eq!(kept.get("b", "response", "r1").await.unwrap(), None);
        assert_eq!(kept.get("a", "item", "r1").await.unwrap(), None);
        for i in 0..500 {
            kept.put("a", "item", &i.to_string(), "x".into())
                .await
                .unwrap();
        }
        let Place::Memory { documents, .. } = &kept.place else {
            unreachable!()
        };
        assert!(documents.len() <= 100);
    }
}
