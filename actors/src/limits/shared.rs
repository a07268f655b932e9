//! [`RedisLimiter`]: per-tenant limits enforced across every replica sharing one Redis. Each
//! decision is one atomic Lua script, using Redis's own clock (`TIME`) so replicas with
//! skewed clocks agree:
//!
//! - request rates: the sliding-window counter of [`super::window`], in a hash
//!   `{prefix}:rate:{tenant}` holding the current window's index and the two counts;
//! - concurrent streams: a sorted set `{prefix}:streams:{tenant}` of open permits scored by
//!   their expiry. A permit is renewed while its stream lasts and removed when it drops; a
//!   crashed replica's permits expire and are swept by the next acquisition;
//! - concurrent executions: the same, in `{prefix}:executions:{tenant}`. While Redis cannot
//!   be reached, executions are counted in this process instead (each replica then allows
//!   the limit on its own), so that a replica keeps running its own executions through an
//!   outage, as the execution store does.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::local::LocalLimiter;
use super::{LimitError, REQUEST_WINDOW_MS, Slot, StreamPermit};
use crate::store::{RedisConnection, StoreError, TenantId, key_part};

/// Redis's clock in milliseconds, as every script computes it.
const NOW_MS: &str = "local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
";

/// KEYS[1] the tenant's window hash; ARGV limit, window ms. Answers 0 when admitted, else the
/// milliseconds until a request would be. The same arithmetic (and float tolerance) as
/// [`super::window::admit`].
static ADMIT_REQUEST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW_MS}{}",
        r"local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local index = math.floor(now / window)
local elapsed = now - index * window
local stored = redis.call('HMGET', KEYS[1], 'index', 'current', 'previous')
local stored_index = tonumber(stored[1])
local current, previous = 0, 0
if stored_index == index then
  current = tonumber(stored[2]) or 0
  previous = tonumber(stored[3]) or 0
elseif stored_index == index - 1 then
  previous = tonumber(stored[2]) or 0
end
if previous * (window - elapsed) / window + current + 1 <= limit + 1e-6 then
  redis.call('HSET', KEYS[1], 'index', index, 'current', current + 1, 'previous', previous)
  redis.call('PEXPIRE', KEYS[1], 2 * window)
  return 0
end
if current + 1 <= limit and previous > 0 then
  local at = window * (1 - (limit - 1 - current) / previous)
  if at < window then
    return math.max(1, math.ceil(at - elapsed - 1e-6))
  end
end
local at_next = 0
if current > 0 then
  at_next = math.max(0, window * (1 - (limit - 1) / current))
end
return math.max(1, math.ceil(window - elapsed + at_next - 1e-6))"
    ))
});

/// KEYS[1] the tenant's permit set; ARGV limit, permit id, ttl ms. Answers 1 when taken.
static OPEN_STREAM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW_MS}{}",
        r"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1"
    ))
});

/// KEYS[1] the permit set; ARGV permit id, ttl ms. Answers 1 while the permit is held.
static RENEW_STREAM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW_MS}{}",
        r"if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1"
    ))
});

static CLOSE_STREAM: LazyLock<Script> =
    LazyLock::new(|| Script::new("return redis.call('ZREM', KEYS[1], ARGV[1])"));

pub struct RedisLimiter {
    redis: RedisConnection,
    key_prefix: String,
    /// A permit not renewed this long (its replica died) stops counting.
    permit_ttl: Duration,
    /// Counts executions while Redis is unreachable.
    outage: LocalLimiter,
}

impl RedisLimiter {
    pub fn new(redis: RedisConnection, key_prefix: String, permit_ttl: Duration) -> Self {
        Self {
            redis,
            key_prefix,
            permit_ttl,
            outage: LocalLimiter::default(),
        }
    }

    fn key(&self, kind: &str, tenant: &TenantId) -> String {
        format!("{}:{kind}:{}", self.key_prefix, key_part(tenant))
    }

    pub async fn admit_request(
        &self,
        tenant: &TenantId,
        per_minute: u32,
    ) -> Result<(), LimitError> {
        let mut admit = ADMIT_REQUEST.prepare_invoke();
        admit
            .key(self.key("rate", tenant))
            .arg(per_minute)
            .arg(REQUEST_WINDOW_MS);
        match self.redis.invoke::<u64>(admit).await.map_err(unavailable)? {
            0 => Ok(()),
            retry_after_ms => Err(LimitError::RequestRate {
                limit: per_minute,
                retry_after_ms,
            }),
        }
    }

    pub async fn open_stream(
        &self,
        tenant: &TenantId,
        max: u32,
    ) -> Result<StreamPermit, LimitError> {
        self.open_slot(Slot::Stream, tenant, max).await
    }

    pub async fn open_slot(
        &self,
        slot: Slot,
        tenant: &TenantId,
        max: u32,
    ) -> Result<StreamPermit, LimitError> {
        let key = self.key(slot.key(), tenant);
        let id = uuid::Uuid::new_v4().to_string();
        let ttl_ms = u64::try_from(self.permit_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut open = OPEN_STREAM.prepare_invoke();
        open.key(&key).arg(max).arg(&id).arg(ttl_ms);
        let opened = match self.redis.invoke::<i64>(open).await.map_err(unavailable) {
            Err(LimitError::Unavailable(why)) if slot == Slot::Execution => {
                tracing::warn!(%why, "counting executions in this replica while the store is unreachable");
                return self.outage.open_slot(slot, tenant, max);
            }
            opened => opened?,
        };
        if opened != 1 {
            return Err(slot.full(max));
        }
        let mut close = CLOSE_STREAM.prepare_invoke();
        close.key(&key).arg(&id);
        let renew = move || {
            let mut renew = RENEW_STREAM.prepare_invoke();
            renew.key(&key).arg(&id).arg(ttl_ms);
            renew
        };
        Ok(StreamPermit::held(self.redis.hold(
            "stream permit",
            self.permit_ttl,
            renew,
            close,
        )))
    }
}

fn unavailable(error: StoreError) -> LimitError {
    LimitError::Unavailable(match error {
        StoreError::Unavailable(message) => message,
        other => other.to_string(),
    })
}
