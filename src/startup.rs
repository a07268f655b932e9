//! Building and running the HTTP server: [`Application::build`] binds the listener (port 0
//! picks a free one, which tests rely on) and mounts the routes; [`Application::run_until_stopped`]
//! serves until SIGTERM or SIGINT, then drains: readiness turns 503 at once, new requests
//! are refused, open requests get up to `shutdown_timeout_secs`, and the future resolves so
//! the process can exit 0. It also starts the MCP supervisor with the configured servers and
//! stops them once the HTTP side has drained.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use kubiya_actors::mcp::{self, McpSupervisor};

use crate::config::Settings;
use crate::extract::BodyLimit;
use crate::middleware::observe;
use crate::provider_setup::ProviderSetup;
use crate::routes;
use crate::state::AppState;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    drain_delay: Duration,
}

impl Application {
    pub fn build(settings: &Settings, provider: &ProviderSetup) -> std::io::Result<Self> {
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))?;
        let port = listener.local_addr()?.port();
        let supervisor = McpSupervisor::new(settings.mcp_servers.clone(), settings.mcp.clone())
            .start_supervised();
        let state = web::Data::new(
            AppState::new(provider.kind, provider.model.clone()).with_mcp(supervisor),
        );
        let body_limit = web::Data::new(BodyLimit(settings.server.max_body_bytes));

        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(body_limit.clone())
                .wrap(from_fn(observe))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .disable_signals()
        .tcp_nodelay(true)
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener)?.run();
        tracing::info!(
            port,
            host = %settings.server.host,
            provider = %provider.kind,
            model = %provider.model,
            "listening: /v1/chat/completions, /discover, /health"
        );
        Ok(Self {
            port,
            server,
            state,
            drain_delay: Duration::from_secs(settings.server.drain_delay_secs),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until a shutdown signal, then drains and stops gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = actix_web::rt::spawn(self.server);
        tokio::select! {
            finished = &mut server => {
                stop_mcp_servers(&self.state).await;
                return finished.unwrap_or_else(|err| Err(std::io::Error::other(err)));
            }
            signal = shutdown_signal() => tracing::info!(signal, "shutdown requested: draining"),
        }
        self.state.begin_drain();
        if !self.drain_delay.is_zero() {
            tokio::time::sleep(self.drain_delay).await;
        }
        // Waits for in-flight requests up to the configured shutdown timeout.
        handle.stop(true).await;
        let result = server
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err)));
        // Tool calls end with the requests that made them; then the servers can go.
        stop_mcp_servers(&self.state).await;
        tracing::info!("stopped");
        result
    }
}

async fn stop_mcp_servers(state: &AppState) {
    if let Some(supervisor) = &state.mcp {
        let _ = supervisor.send(mcp::Shutdown).await;
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}
