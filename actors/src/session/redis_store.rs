//! [`RedisSessionStore`]: the [`SessionStore`] that replicas share. A session is one JSON
//! value under `{prefix}:session:{tenant}:{user}:{id}` that expires after the session TTL
//! (each save starts it again). A turn lease is a key `{prefix}:lease:...` set with
//! `SET NX PX` to a random token: a task owned by the lease renews it every third of its TTL
//! while the turn runs, dropping the lease stops that task and deletes the key with a
//! compare-and-delete script (only if it still holds our token), and if the replica dies the
//! key simply expires. Talks to Redis through the shared [`RedisConnection`].

use std::sync::LazyLock;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use redis::Script;

use super::store::{SessionKey, SessionRecord, SessionStore, TurnLease};
use crate::store::{RedisConnection, StoreError, key_part, now_ms};

/// Extends the lease only while it still holds our token: 1 while it does, 0 once lost.
static RENEW_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('PEXPIRE', KEYS[1], ARGV[2])
          end
          return 0",
    )
});

/// Deletes the lease only while it still holds our token: a lease that expired and was taken
/// by another turn is not ours to free.
static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
          end
          return 0",
    )
});

/// How long records and leases live.
#[derive(Debug, Clone)]
pub struct RedisStoreSettings {
    /// Namespace of every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// A session untouched this long is forgotten.
    pub session_ttl: Duration,
    /// A lease not renewed this long (its replica died) frees the session by itself.
    pub lease_ttl: Duration,
}

pub struct RedisSessionStore {
    redis: RedisConnection,
    settings: RedisStoreSettings,
}

impl RedisSessionStore {
    pub fn new(redis: RedisConnection, settings: RedisStoreSettings) -> Self {
        Self { redis, settings }
    }

    fn key(&self, kind: &str, key: &SessionKey) -> String {
        format!(
            "{}:{kind}:{}:{}:{}",
            self.settings.key_prefix,
            key_part(&key.tenant),
            key_part(&key.user),
            key_part(&key.id)
        )
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl SessionStore for RedisSessionStore {
    fn load(
        &self,
        key: &SessionKey,
    ) -> BoxFuture<'static, Result<Option<SessionRecord>, StoreError>> {
        let redis = self.redis.clone();
        let mut get = redis::cmd("GET");
        get.arg(self.key("session", key));
        async move {
            let stored: Option<String> = redis.query(get).await?;
            stored
                .map(|json| {
                    serde_json::from_str(&json).map_err(|err| {
                        StoreError::Unavailable(format!("a stored session is unreadable: {err}"))
                    })
                })
                .transpose()
        }
        .boxed()
    }

    fn save(&self, mut record: SessionRecord) -> BoxFuture<'static, Result<(), StoreError>> {
        record.updated_at_ms = now_ms();
        let redis = self.redis.clone();
        let key = self.key("session", &record.key);
        let ttl = millis(self.settings.session_ttl);
        async move {
            let json = serde_json::to_string(&record).map_err(|err| {
                StoreError::Unavailable(format!("the session could not be encoded: {err}"))
            })?;
            let mut set = redis::cmd("SET");
            set.arg(key).arg(json).arg("PX").arg(ttl);
            redis.query::<()>(set).await
        }
        .boxed()
    }

    fn stored_bytes(&self, key: &SessionKey) -> BoxFuture<'static, Result<usize, StoreError>> {
        let redis = self.redis.clone();
        let mut strlen = redis::cmd("STRLEN");
        strlen.arg(self.key("session", key));
        async move { redis.query::<usize>(strlen).await }.boxed()
    }

    fn acquire_turn(&self, key: &SessionKey) -> BoxFuture<'static, Result<TurnLease, StoreError>> {
        let redis = self.redis.clone();
        let lease_key = self.key("lease", key);
        let ttl = self.settings.lease_ttl;
        async move {
            let token = uuid::Uuid::new_v4().to_string();
            let mut set = redis::cmd("SET");
            set.arg(&lease_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl));
            let taken: Option<String> = redis.query(set).await?;
            if taken.is_none() {
                return Err(StoreError::Busy);
            }
            let mut release = RELEASE_LEASE.prepare_invoke();
            release.key(&lease_key).arg(&token);
            let renew = move || {
                let mut renew = RENEW_LEASE.prepare_invoke();
                renew.key(&lease_key).arg(&token).arg(millis(ttl));
                renew
            };
            Ok(TurnLease::new(redis.hold(
                "turn lease",
                ttl,
                renew,
                release,
            )))
        }
        .boxed()
    }

    fn readiness(&self) -> Result<(), String> {
        self.redis.readiness()
    }
}
