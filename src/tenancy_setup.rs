//! Builds what tenancy needs at start-up, from `[store]`, `[sessions]` and `[auth]`: where
//! shared state lives (with no URL, sessions and limits stay in this process, for one
//! replica; with a Redis URL, the session store, turn leases and rate-limit counters all go
//! through one [`RedisConnection`], so any number of replicas share them) and the
//! [`Tenants`] the API keys stand for. Logs both choices, never a key or a URL's password.

use std::sync::Arc;
use std::time::Duration;

use kubiya_actors::kept::Kept;
use kubiya_actors::limits::RateLimiter;
use kubiya_actors::limits::local::LocalLimiter;
use kubiya_actors::limits::shared::RedisLimiter;
use kubiya_actors::session::{
    MemorySessionStore, RedisSessionStore, RedisStoreSettings, SessionStore,
};
use kubiya_actors::store::RedisConnection;
use kubiya_actors::turn_log::TurnLogs;
use kubiya_actors::turn_log::shared::SharedTurnLogs;

use crate::config::Settings;
use crate::tenant::Tenants;

/// The session store, and the tenants with their limiter, backed by the same place.
pub struct Tenancy {
    pub store: Arc<dyn SessionStore>,
    pub tenants: Tenants,
    /// Chat turns in progress, shared through the same Redis when there is one.
    pub turn_logs: TurnLogs,
    /// The Responses API's responses and items, kept as long as sessions.
    pub kept: Kept,
}

/// Must run inside the server's runtime: the Redis health check starts here.
pub fn build(settings: &Settings) -> std::io::Result<Tenancy> {
    let (store, limiter, redis) = shared_state(settings)?;
    let session_ttl = Duration::from_secs(settings.sessions.ttl_secs);
    let kept = match &redis {
        Some(redis) => Kept::in_redis(
            redis.clone(),
            settings.store.key_prefix.clone(),
            session_ttl,
        ),
        None => Kept::in_memory(session_ttl, settings.sessions.max_sessions),
    };
    let turn_logs = TurnLogs::new(redis.map(|redis| {
        let running_ttl = Duration::from_secs(settings.sessions.ttl_secs.min(3600));
        SharedTurnLogs::new(redis, settings.store.key_prefix.clone(), running_ttl)
    }));
    let tenants = Tenants::new(
        &settings.auth,
        limiter,
        settings.runner.max_concurrent_executions,
    )
    .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
    if tenants.auth_enabled() {
        tracing::info!(
            keys = settings.auth.api_keys.len(),
            tenants = tenants.tenant_count(),
            "auth is on: API keys map requests to tenants"
        );
    } else {
        tracing::info!(
            "auth is off: no API keys configured, every request runs as tenant `default`"
        );
    }
    Ok(Tenancy {
        store,
        tenants,
        turn_logs,
        kept,
    })
}

type SharedState = (Arc<dyn SessionStore>, RateLimiter, Option<RedisConnection>);

fn shared_state(settings: &Settings) -> std::io::Result<SharedState> {
    let session_ttl = Duration::from_secs(settings.sessions.ttl_secs);
    let store = &settings.store;
    if store.url.is_empty() {
        tracing::info!(
            store = "memory",
            "sessions and limits are kept in this process"
        );
        let store = MemorySessionStore::new(session_ttl, settings.sessions.max_sessions)
            .with_max_bytes(settings.sessions.max_bytes);
        return Ok((
            Arc::new(store),
            RateLimiter::Local(LocalLimiter::default()),
            None,
        ));
    }
    let redis = RedisConnection::open(&store.endpoint(), Duration::from_millis(store.timeout_ms))
        .map_err(|err| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, err.to_string())
    })?;
    let lease_ttl = Duration::from_millis(store.lease_ttl_ms);
    tracing::info!(
        store = "redis",
        redis = redis.address(),
        key_prefix = %store.key_prefix,
        "sessions, turn leases and limits are shared through Redis"
    );
    let sessions = RedisSessionStore::new(
        redis.clone(),
        RedisStoreSettings {
            key_prefix: store.key_prefix.clone(),
            session_ttl,
            lease_ttl,
        },
    );
    let limiter = RedisLimiter::new(redis.clone(), store.key_prefix.clone(), lease_ttl);
    Ok((
        Arc::new(sessions),
        RateLimiter::Shared(limiter),
        Some(redis),
    ))
}
