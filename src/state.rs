//! `AppState`: what every handler may read, shared by all workers behind `web::Data`. It holds
//! no locks on the request path: the drain flag is atomic and metrics are lock-free.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use kubiya_actors::provider::ProviderPool;

use crate::metrics::Metrics;

pub struct AppState {
    pub providers: ProviderPool,
    pub started: Instant,
    pub started_at: SystemTime,
    pub metrics: Metrics,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(providers: ProviderPool) -> Self {
        Self {
            providers,
            started: Instant::now(),
            started_at: SystemTime::now(),
            metrics: Metrics::new(),
            draining: AtomicBool::new(false),
        }
    }

    /// From now on readiness fails and new work is refused.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
