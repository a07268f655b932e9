//! Per-tenant limits: requests per minute (a sliding-window counter, see [`window`]),
//! concurrent streams (a [`StreamPermit`] held from a chat turn's start until its stream
//! ends) and concurrent workflow executions (the same kind of permit, held by the execution
//! watcher until the run ends). [`RateLimiter`] counts them in this process ([`local`]) or, when replicas share
//! Redis, in Redis with atomic Lua scripts so that the limits hold across replicas
//! ([`shared`]). The HTTP layer decides which tenant a request is and maps [`LimitError`] to
//! 429 or 503; nothing here knows about HTTP.

pub mod local;
pub mod shared;
pub mod window;

use futures_util::future::{BoxFuture, FutureExt};
use local::LocalLimiter;
use shared::RedisLimiter;

use crate::hold::Release;
use crate::store::TenantId;

/// Requests per minute are counted over a minute.
pub const REQUEST_WINDOW_MS: u64 = 60_000;

/// A tenant's limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantLimits {
    pub requests_per_minute: Option<u32>,
    pub max_concurrent_streams: Option<u32>,
    pub max_concurrent_executions: Option<u32>,
}

/// What a concurrency permit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Stream,
    Execution,
}

impl Slot {
    /// The name of its counters (Redis key part).
    fn key(self) -> &'static str {
        match self {
            Slot::Stream => "streams",
            Slot::Execution => "executions",
        }
    }

    fn full(self, limit: u32) -> LimitError {
        match self {
            Slot::Stream => LimitError::Streams { limit },
            Slot::Execution => LimitError::Executions { limit },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "Rate limit reached: at most {limit} requests per minute for this API key; retry after the time in Retry-After."
    )]
    RequestRate { limit: u32, retry_after_ms: u64 },
    #[error(
        "Too many concurrent streams: at most {limit} at a time for this API key; retry when one has finished."
    )]
    Streams { limit: u32 },
    #[error(
        "Too many workflow executions running: at most {limit} at a time for this tenant; retry when one has finished."
    )]
    Executions { limit: u32 },
    /// The shared counters could not be reached.
    #[error("the rate limiter is unavailable: {0}")]
    Unavailable(String),
}

impl LimitError {
    /// Whole seconds for a `Retry-After` header, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            LimitError::RequestRate { retry_after_ms, .. } => retry_after_ms.div_ceil(1000).max(1),
            LimitError::Streams { .. }
            | LimitError::Executions { .. }
            | LimitError::Unavailable(_) => 1,
        }
    }
}

/// A counted stream (or execution), held for as long as it is open; dropping it frees the
/// slot, and [`StreamPermit::release`] frees it before the stream's last event is sent.
pub struct StreamPermit {
    held: Option<Box<dyn Release>>,
}

impl std::fmt::Debug for StreamPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamPermit")
            .field("held", &self.held.is_some())
            .finish()
    }
}

impl StreamPermit {
    /// A tenant without a stream limit holds nothing.
    pub fn unlimited() -> Self {
        Self { held: None }
    }

    fn held(slot: impl Release + 'static) -> Self {
        Self {
            held: Some(Box::new(slot)),
        }
    }

    /// Frees the slot now; completes once another stream may take it.
    pub fn release(self) -> BoxFuture<'static, ()> {
        match self.held {
            Some(held) => held.release(),
            None => futures_util::future::ready(()).boxed(),
        }
    }
}

/// Where the counts live: this process, or Redis for every replica.
pub enum RateLimiter {
    Local(LocalLimiter),
    Shared(RedisLimiter),
}

impl RateLimiter {
    /// Counts one request of `tenant` against its per-minute limit, if it has one.
    pub async fn admit_request(
        &self,
        tenant: &TenantId,
        limits: TenantLimits,
    ) -> Result<(), LimitError> {
        let Some(per_minute) = limits.requests_per_minute else {
            return Ok(());
        };
        match self {
            RateLimiter::Local(local) => local.admit_request(tenant, per_minute),
            RateLimiter::Shared(shared) => shared.admit_request(tenant, per_minute).await,
        }
    }

    /// A slot for one more concurrent stream of `tenant`, if it has a limit.
    pub async fn open_stream(
        &self,
        tenant: &TenantId,
        limits: TenantLimits,
    ) -> Result<StreamPermit, LimitError> {
        self.open_slot(Slot::Stream, tenant, limits.max_concurrent_streams)
            .await
    }

    /// A slot for one more running execution of `tenant`, if it has a limit.
    pub async fn open_execution(
        &self,
        tenant: &TenantId,
        limits: TenantLimits,
    ) -> Result<StreamPermit, LimitError> {
        self.open_slot(Slot::Execution, tenant, limits.max_concurrent_executions)
            .await
    }

    async fn open_slot(
        &self,
        slot: Slot,
        tenant: &TenantId,
        max: Option<u32>,
    ) -> Result<StreamPermit, LimitError> {
        let Some(max) = max else {
            return Ok(StreamPermit::unlimited());
        };
        match self {
            RateLimiter::Local(local) => local.open_slot(slot, tenant, max),
            RateLimiter::Shared(shared) => shared.open_slot(slot, tenant, max).await,
        }
    }
}
