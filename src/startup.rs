//! Building and running the HTTP server: [`Application::build`] binds the listener (port 0
//! picks a free one, which tests rely on) and mounts the routes; [`Application::run_until_stopped`]
//! serves until SIGTERM or SIGINT, then drains: readiness turns 503 at once, new requests
//! are refused, open streams (turns, and clients following an execution) get up to
//! `shutdown_timeout_secs` to finish, then running workflow executions are cancelled, and the
//! future resolves so the process can exit 0. It also starts
//! the `ExecutionWatcher` actor the execution routes talk to, and the MCP supervisor with the
//! configured servers, which it stops once the HTTP side has drained.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};

use actix::Addr;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, web};
use kubiya_actors::workflow::{DrainExecutions, ExecutionWatcher, LocalRunner};

use kubiya_actors::composer::{Composer, McpTools};
use kubiya_actors::mcp::{self, McpSupervisor};
use kubiya_actors::per_thread::PerThread;
use kubiya_actors::provider::ProviderPool;

use crate::auth::authenticate;
use crate::boundary::exposure;
use crate::boundary::guard::{BoundaryRules, guard};
use crate::boundary::origin::OriginPolicy;
use crate::boundary::oversized_head::OversizedHeadAnswer;
use crate::boundary::websocket::WsRequestRules;
use crate::config::Settings;
use crate::execution_setup;
use crate::extract::BodyLimit;
use crate::http_server::{self, ServerOptions};
use crate::mcp_http::{
    McpEndpoint, WorkflowToolsSetup, workflow_features, workflow_server_identity,
};
use crate::middleware::observe;
use crate::provider_setup::ProviderSetup;
use crate::routes;
use crate::state::{AppParts, AppState};
use crate::tenancy_setup;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    drain_delay: Duration,
    executions: Addr<ExecutionWatcher>,
    shutdown_timeout: Duration,
    signals: ShutdownSignals,
}

/// SIGTERM and SIGINT, caught from before the server says it listens: a signal that comes
/// early must drain the server, not kill it with the default action.
struct ShutdownSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

impl Application {
    pub fn build(settings: &Settings, provider: &ProviderSetup) -> std::io::Result<Self> {
        let signals = ShutdownSignals::install()?;
        let exposure = exposure::choose(&settings.server.host, !settings.auth.api_keys.is_empty());
        if exposure.open_to_network {
            tracing::warn!(host = %exposure.host, "{}", exposure.reason);
        } else {
            tracing::info!(host = %exposure.host, "{}", exposure.reason);
        }
        let listener = bind_listener(exposure.host.as_str(), settings.server.port)?;
        let own_address = listener.local_addr()?;
        let port = own_address.port();
        let providers = ProviderPool::start(provider.upstreams.clone(), settings.provider.actors);
        // Servers that ask for sampling are answered by the agent's own model.
        let supervisor = McpSupervisor::new(settings.mcp_servers.clone(), settings.mcp.clone())
            .with_sampler(mcp::Sampler::new(providers.clone()));
        let mcp_tools = McpTools {
            changes: supervisor.catalog_changes(),
            supervisor: supervisor.start_supervised(),
        };
        let supervisor = mcp_tools.supervisor.clone();
        let tenancy = tenancy_setup::build(settings)?;
        let mut watcher_config =
            execution_setup::watcher_config(&settings.runner, Some(own_address));
        watcher_config.local.model =
            execution_setup::step_model(&settings.runner.local, &providers);
        watcher_config.shared =
            execution_setup::shared_executions(&settings.store, &settings.runner);
        // `/mcp` checks workflows against this host as the watcher's local runner would.
        let mcp_runner = LocalRunner::new(watcher_config.local.clone());
        let executions = ExecutionWatcher::start_on_own_arbiter(watcher_config);
        let limiter = tenancy.tenants.limiter();
        let state = web::Data::new(AppState::new(AppParts {
            providers,
            composer: PerThread::new(move || Composer::new(Some(mcp_tools.clone()))),
            store: tenancy.store,
            agent: settings.agent.clone(),
            compose: settings.compose.clone(),
            max_transcript_bytes: settings.sessions.max_transcript_bytes,
            tenants: tenancy.tenants,
            turn_logs: tenancy.turn_logs,
            kept: tenancy.kept,
            executions: executions.clone(),
            mcp: Some(supervisor),
        }));
        let body_limit = web::Data::new(BodyLimit {
            bytes: settings.server.max_body_bytes,
            timeout: Duration::from_secs(settings.server.body_timeout_secs.max(1)),
        });
        let mcp_endpoint = web::Data::new(McpEndpoint::new(
            workflow_server_identity(),
            workflow_features(WorkflowToolsSetup {
                runner: mcp_runner,
                executions: executions.clone(),
                limiter,
                default_max_running: settings.runner.max_concurrent_executions,
            }),
            &exposure.host,
            OriginPolicy::new(&settings.server.cors),
            settings.server.max_body_bytes,
        ));
        let watcher = web::Data::new(executions.clone());
        let boundary = web::Data::new(BoundaryRules {
            origins: OriginPolicy::new(&settings.server.cors)
                .with_api_keys(!settings.auth.api_keys.is_empty()),
            max_header_bytes: settings.server.max_header_bytes,
            websocket: WsRequestRules {
                max_bytes: settings.server.max_body_bytes,
                timeout: Duration::from_secs(settings.server.ws_request_timeout_secs.max(1)),
            },
        });

        let app_state = state.clone();
        let options = ServerOptions {
            workers: settings.server.workers,
            shutdown_timeout_secs: settings.server.shutdown_timeout_secs,
            oversized_head: OversizedHeadAnswer::new(settings.server.max_header_bytes),
        };
        let server = http_server::serve(listener, options, move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(body_limit.clone())
                .app_data(watcher.clone())
                .app_data(mcp_endpoint.clone())
                .app_data(boundary.clone())
                .wrap(from_fn(authenticate))
                .wrap(from_fn(guard))
                .wrap(from_fn(observe))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })?;
        tracing::info!(
            port,
            host = %exposure.host,
            provider = %provider.kind(),
            model = provider.model(),
            "listening: /v1/chat/completions, /discover, /health"
        );
        Ok(Self {
            port,
            server,
            state,
            drain_delay: Duration::from_secs(settings.server.drain_delay_secs),
            executions,
            shutdown_timeout: Duration::from_secs(settings.server.shutdown_timeout_secs),
            signals,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until a shutdown signal, then drains and stops gracefully.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = actix_web::rt::spawn(self.server);
        tokio::select! {
            finished = &mut server => {
                stop_mcp_servers(&self.state).await;
                return finished.unwrap_or_else(|err| Err(std::io::Error::other(err)));
            }
            signal = self.signals.recv() => tracing::info!(signal, "shutdown requested: draining"),
        }
        self.state.begin_drain();
        if !self.drain_delay.is_zero() {
            tokio::time::sleep(self.drain_delay).await;
        }
        // Open streams (turns, and clients following an execution) may finish first.
        let open = self.state.open_streams.clone();
        let drained = tokio::time::timeout(self.shutdown_timeout, open.wait_idle())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                open = open.count(),
                "streams still open at the shutdown timeout: ending them"
            );
            self.state.shutdown.cancel();
        }
        // Then running workflows are cancelled, so their processes end with the server and
        // the streams following them end with `workflow_complete`. A watcher that is already
        // gone has nothing left to cancel.
        let _ = self
            .executions
            .send(DrainExecutions {
                within: self.shutdown_timeout,
            })
            .await;
        if !drained {
            let _ = tokio::time::timeout(Duration::from_secs(2), open.wait_idle()).await;
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

/// Connections the kernel holds for the server before it accepts them. The standard
/// library's 128 dropped the connection attempts of a burst of clients beyond it, and each
/// retried a second later; the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// The server's listening socket on the first of `host`'s addresses that binds.
fn bind_listener(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for address in (host, port).to_socket_addrs()? {
        match listen_on(address) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{host} has no address"),
        )
    }))
}

fn listen_on(address: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // As the standard library does: a restarted server binds while old connections linger.
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
