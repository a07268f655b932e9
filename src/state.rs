//! `AppState`: what every handler may read, shared by all workers behind `web::Data`. It holds
//! no locks on the request path: the drain flag is atomic and metrics are lock-free. Actors the
//! handlers message (the MCP supervisor) are reached through their addresses here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use actix::Addr;
use kubiya_actors::composer::Composer;
use kubiya_actors::kept::Kept;
use kubiya_actors::mcp::McpSupervisor;
use kubiya_actors::per_thread::PerThread;
use kubiya_actors::provider::ProviderPool;
use kubiya_actors::session::{OverheadObserver, SessionDeps, SessionStore};
use kubiya_actors::turn_log::TurnLogs;
use kubiya_actors::workflow::ExecutionWatcher;
use tokio_util::sync::CancellationToken;

use crate::config::{AgentSettings, ComposeSettings};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::streaming::{Heartbeat, OpenStreams, StreamGuard};
use crate::tenant::{Tenant, Tenants};

pub struct AppState {
    pub providers: ProviderPool,
    pub composer: PerThread<Composer>,
    pub store: Arc<dyn SessionStore>,
    pub agent: AgentSettings,
    pub compose: ComposeSettings,
    /// The most one session's stored transcript may take; a turn that would pass it is 413.
    pub max_transcript_bytes: usize,
    /// API keys, the tenants they stand for, and those tenants' limits.
    pub tenants: Tenants,
    pub open_streams: Arc<OpenStreams>,
    /// Fires when the drain gives up waiting: open turns end with an error and terminator.
    pub shutdown: CancellationToken,
    pub started: Instant,
    pub started_at: SystemTime,
    pub metrics: Metrics,
    /// The turn overhead histogram in `metrics`, handed to every Session.
    turn_overhead: Arc<dyn OverheadObserver>,
    /// The supervisor of the configured MCP servers, once started.
    pub mcp: Option<Addr<McpSupervisor>>,
    pub executions: Addr<ExecutionWatcher>,
    /// Chat turns in progress as the chunks they streamed, for clients that resume.
    pub turn_logs: TurnLogs,
    /// What the Responses API keeps: responses and their output items.
    pub kept: Kept,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        let metrics = Metrics::new();
        Self {
            providers: parts.providers,
            composer: parts.composer,
            store: parts.store,
            agent: parts.agent,
            compose: parts.compose,
            max_transcript_bytes: parts.max_transcript_bytes,
            tenants: parts.tenants,
            open_streams: Arc::new(OpenStreams::default()),
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            turn_overhead: Arc::new(metrics.turn_overhead()),
            metrics,
            mcp: parts.mcp,
            executions: parts.executions,
            turn_logs: parts.turn_logs,
            kept: parts.kept,
            draining: AtomicBool::new(false),
        }
    }

    /// What a chat turn's Session talks to.
    pub fn session_deps(&self) -> SessionDeps {
        SessionDeps {
            providers: self.providers.clone(),
            composer: self.composer.clone(),
            store: self.store.clone(),
            executions: self.executions.clone(),
            mcp: self.mcp.clone(),
            max_iterations: self.agent.max_iterations,
            shutdown: self.shutdown.clone(),
            stalled_reader: std::time::Duration::from_secs(self.agent.stalled_reader_secs),
            overhead: self.turn_overhead.clone(),
            limiter: self.tenants.limiter(),
        }
    }

    /// A stream's place among the open streams (the drain waits for it) and among its
    /// tenant's (a refusal is 429 with `Retry-After`), held until the guard drops.
    pub async fn open_stream(&self, tenant: &Tenant) -> Result<StreamGuard, ApiError> {
        let permit = self.tenants.open_stream(tenant).await?;
        Ok(StreamGuard::new(self.open_streams.clone()).with_permit(permit))
    }

    /// The configured heartbeat for a stream whose format says "still here" with `comment`.
    pub fn heartbeat(&self, comment: &'static [u8]) -> Option<Heartbeat> {
        Heartbeat::every(
            std::time::Duration::from_secs(self.agent.heartbeat_secs),
            Some(comment),
        )
    }

    /// From now on readiness fails and new work is refused.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// The actors and stores start-up builds for the state.
pub struct AppParts {
    pub providers: ProviderPool,
    pub composer: PerThread<Composer>,
    pub store: Arc<dyn SessionStore>,
    pub agent: AgentSettings,
    pub compose: ComposeSettings,
    pub max_transcript_bytes: usize,
    pub executions: Addr<ExecutionWatcher>,
    pub mcp: Option<Addr<McpSupervisor>>,
    pub tenants: Tenants,
    pub turn_logs: TurnLogs,
    pub kept: Kept,
}
