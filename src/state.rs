//! `AppState`: what every handler may read, shared by all workers behind `web::Data`. It holds
//! no locks on the request path: the drain flag is atomic and metrics are lock-free. Actors the
//! handlers message (the MCP supervisor) are reached through their addresses here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use actix::Addr;
use kubiya_actors::mcp::McpSupervisor;
use kubiya_actors::provider::ProviderKind;

use crate::metrics::Metrics;

pub struct AppState {
    pub provider: ProviderKind,
    pub model: String,
    pub started: Instant,
    pub started_at: SystemTime,
    pub metrics: Metrics,
    /// The supervisor of the configured MCP servers, once started.
    pub mcp: Option<Addr<McpSupervisor>>,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(provider: ProviderKind, model: String) -> Self {
        Self {
            provider,
            model,
            started: Instant::now(),
            started_at: SystemTime::now(),
            metrics: Metrics::new(),
            mcp: None,
            draining: AtomicBool::new(false),
        }
    }

    pub fn with_mcp(mut self, supervisor: Addr<McpSupervisor>) -> Self {
        self.mcp = Some(supervisor);
        self
    }

    /// From now on readiness fails and new work is refused.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
