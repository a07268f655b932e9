//! [`LocalLimiter`]: per-tenant limits counted in this process, for a single replica with the
//! in-memory store. Request rates use the sliding-window counter of [`super::window`]; a
//! concurrent-stream permit is a counter slot given back when the permit drops. State is one
//! small entry per tenant, and no lock is held across an await.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dashmap::DashMap;
use futures_util::future::{BoxFuture, FutureExt};

use super::window::{self, Decision, WindowCounts};
use super::{LimitError, REQUEST_WINDOW_MS, Slot, StreamPermit};
use crate::hold::Release;
use crate::store::{TenantId, now_ms};

#[derive(Default)]
pub struct LocalLimiter {
    requests: DashMap<TenantId, WindowCounts>,
    /// Open slots by kind and tenant.
    slots: DashMap<(&'static str, TenantId), Arc<AtomicU32>>,
}

impl LocalLimiter {
    pub fn admit_request(&self, tenant: &TenantId, per_minute: u32) -> Result<(), LimitError> {
        let mut counts = self.requests.entry(tenant.clone()).or_default();
        match window::admit(
            &mut counts,
            now_ms(),
            u64::from(per_minute),
            REQUEST_WINDOW_MS,
        ) {
            Decision::Admitted => Ok(()),
            Decision::Refused { retry_after_ms } => Err(LimitError::RequestRate {
                limit: per_minute,
                retry_after_ms,
            }),
        }
    }

    pub fn open_stream(&self, tenant: &TenantId, max: u32) -> Result<StreamPermit, LimitError> {
        self.open_slot(Slot::Stream, tenant, max)
    }

    pub fn open_slot(
        &self,
        slot: Slot,
        tenant: &TenantId,
        max: u32,
    ) -> Result<StreamPermit, LimitError> {
        let open = self
            .slots
            .entry((slot.key(), tenant.clone()))
            .or_default()
            .value()
            .clone();
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
            (count < max).then_some(count + 1)
        })
        .map_err(|_| slot.full(max))?;
        Ok(StreamPermit::held(LocalSlot(open)))
    }
}

/// One counted stream; dropping it frees the slot.
struct LocalSlot(Arc<AtomicU32>);

impl Release for LocalSlot {
    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        drop(self);
        futures_util::future::ready(()).boxed()
    }
}

impl Drop for LocalSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    #[test]
    fn streams_are_counted_per_tenant_until_their_permit_drops() {
        let limiter = LocalLimiter::default();
        let first = limiter.open_stream(&tenant("a"), 2).unwrap();
        let _second = limiter.open_stream(&tenant("a"), 2).unwrap();
        assert_eq!(
            limiter.open_stream(&tenant("a"), 2).err(),
            Some(LimitError::Streams { limit: 2 })
        );
        assert!(
            limiter.open_stream(&tenant("b"), 2).is_ok(),
            "tenants are separate"
        );
        let _execution = limiter
            .open_slot(Slot::Execution, &tenant("a"), 1)
            .expect("executions are counted apart from streams");
        assert_eq!(
            limiter.open_slot(Slot::Execution, &tenant("a"), 1).err(),
            Some(LimitError::Executions { limit: 1 })
        );
        drop(first);
        assert!(limiter.open_stream(&tenant("a"), 2).is_ok());
    }

    #[test]
    fn requests_beyond_the_rate_are_refused_with_a_retry_time() {
        let limiter = LocalLimiter::default();
        assert!(limiter.admit_request(&tenant("a"), 2).is_ok());
        assert!(limiter.admit_request(&tenant("a"), 2).is_ok());
        let Err(LimitError::RequestRate {
            limit,
            retry_after_ms,
        }) = limiter.admit_request(&tenant("a"), 2)
        else {
            panic!("a third request in the same instant was admitted");
        };
        assert_eq!(limit, 2);
        assert!((1..=90_000).contains(&retry_after_ms), "{retry_after_ms}");
        assert!(limiter.admit_request(&tenant("b"), 2).is_ok());
    }
}
