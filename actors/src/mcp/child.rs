//! One supervised server: a tokio task that starts the process, negotiates, lists its tools,
//! watches it, re-lists on `list_changed`, and restarts it with capped exponential backoff
//! and jitter when it dies or fails to start, until told to stop. The
//! [`super::McpSupervisor`] holds a [`ServerChild`] per configured server and reads its
//! [`ChildState`] (a short-lived lock, never held across an await) to answer catalog and
//! status requests and to route calls to the live [`Connection`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::catalog::{CatalogChanges, ServerCatalog};
use super::config::expand_env;
use super::config::{McpServerConfig, McpSettings};
use super::connection::{ClientOffer, Connection, RequestLimits};
use super::http_client::HttpTarget;
use super::oauth::{OAuth, OAuthCredentials, TokenCache};
use super::process::spawn_server;
use super::sampling::Sampler;

/// The first wait before a restart; it doubles per consecutive failure up to the configured cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// A server that ran this long before dying starts the backoff ladder again from the bottom.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    /// The first start is under way.
    Starting,
    /// Negotiated and listed; its tools are in the catalog.
    Running,
    /// It was running and exited; it is being started again after a backoff.
    Restarting,
    /// The last start failed (spawn error, handshake, timeout); it is retried after a backoff.
    Failed,
    /// Disabled in the configuration, or shut down.
    Stopped,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// What `GET /v1/mcp/servers` shows about one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct McpServerStatus {
    pub name: String,
    pub state: ServerState,
    /// The negotiated protocol revision while running.
    pub protocol_version: Option<String>,
    pub tool_count: usize,
    /// Namespaced tool names.
    pub tools: Vec<String>,
    /// Times the server was started again after its first start.
    pub restarts: u32,
    pub last_error: Option<String>,
    /// The process (and process group) id while one exists.
    pub pid: Option<u32>,
}

/// The part of a child the supervisor reads.
pub(crate) struct ChildState {
    pub state: ServerState,
    pub protocol_version: Option<String>,
    pub catalog: ServerCatalog,
    pub restarts: u32,
    pub last_error: Option<String>,
    pub connection: Option<Arc<Connection>>,
}

/// The supervisor's handle on one server's task.
pub(crate) struct ServerChild {
    pub name: String,
    pub config: McpServerConfig,
    pub state: Arc<Mutex<ChildState>>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl ServerChild {
    /// Starts the server's task, or records it as stopped when it is disabled.
    pub(crate) fn start(
        name: String,
        config: McpServerConfig,
        settings: Arc<McpSettings>,
        sampler: Option<Sampler>,
        changes: CatalogChanges,
    ) -> Self {
        let enabled = config.is_enabled();
        let state = Arc::new(Mutex::new(ChildState {
            state: if enabled {
                ServerState::Starting
            } else {
                ServerState::Stopped
            },
            protocol_version: None,
            catalog: ServerCatalog::default(),
            restarts: 0,
            last_error: None,
            connection: None,
        }));
        let stop = CancellationToken::new();
        let task = enabled.then(|| {
            let lifecycle = Lifecycle {
                name: name.clone(),
                config: config.clone(),
                settings,
                sampler,
                state: state.clone(),
                stop: stop.clone(),
                changes,
                tokens: Arc::default(),
            };
            tokio::spawn(lifecycle.run())
        });
        Self {
            name,
            config,
            state,
            stop,
            task,
        }
    }

    pub(crate) fn status(&self) -> McpServerStatus {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let tools: Vec<String> = state
            .catalog
            .specs
            .iter()
            .map(|spec| spec.name.clone())
            .collect();
        McpServerStatus {
            name: self.name.clone(),
            state: state.state,
            protocol_version: state.protocol_version.clone(),
            tool_count: tools.len(),
            tools,
            restarts: state.restarts,
            last_error: state.last_error.clone(),
            pid: state
                .connection
                .as_ref()
                .and_then(|connection| connection.pid()),
        }
    }

    /// Asks the task to stop the server; the returned handle finishes when it has.
    pub(crate) fn stop(&mut self) -> Option<JoinHandle<()>> {
        self.stop.cancel();
        self.task.take()
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The task's own view: everything needed to (re)start the server.
struct Lifecycle {
    name: String,
    config: McpServerConfig,
    settings: Arc<McpSettings>,
    /// Answers the server's sampling requests, when the agent offers sampling.
    sampler: Option<Sampler>,
    state: Arc<Mutex<ChildState>>,
    stop: CancellationToken,
    changes: CatalogChanges,
    /// A remote server's OAuth tokens, kept across reconnects.
    tokens: Arc<TokenCache>,
}

/// How one run of the server ended.
enum RunEnd {
    Stopped,
    StartFailed(String),
    Exited { how: String, ran: Duration },
}

impl Lifecycle {
    async fn run(self) {
        let mut failures = 0u32;
        loop {
            let end = self.run_once().await;
            let next_state = match end {
                RunEnd::Stopped => break,
                RunEnd::StartFailed(error) => {
                    tracing::warn!(server = %self.name, error = %error, "MCP server failed to start");
                    self.update(|state| state.last_error = Some(error));
                    ServerState::Failed
                }
                RunEnd::Exited { how, ran } => {
                    tracing::warn!(server = %self.name, how = %how, "MCP server exited; restarting");
                    self.update(|state| state.last_error = Some(how));
                    if ran >= HEALTHY_RUN {
                        failures = 0;
                    }
                    ServerState::Restarting
                }
            };
            self.update(|state| {
                state.state = next_state;
                state.connection = None;
                state.protocol_version = None;
                state.catalog = ServerCatalog::default();
            });
            let backoff = backoff_delay(failures, self.settings.max_restart_backoff());
            failures = failures.saturating_add(1);
            tokio::select! {
                () = sleep(backoff) => {}
                () = self.stop.cancelled() => break,
            }
            self.update(|state| state.restarts += 1);
        }
        self.update(|state| {
            state.state = ServerState::Stopped;
            state.connection = None;
            state.protocol_version = None;
            state.catalog = ServerCatalog::default();
        });
    }

    fn update(&self, change: impl FnOnce(&mut ChildState)) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        change(&mut state);
        // Any change may change what the catalog offers; readers re-list on their next use.
        self.changes.bump();
    }

    fn offer(&self) -> ClientOffer {
        ClientOffer {
            sampler: self.sampler.clone(),
            elicitation: self.config.elicitation,
        }
    }

    /// Spawns a local server, or opens the transport to a remote one.
    fn connect(&self) -> Result<Connection, String> {
        let lookup = |name: &str| std::env::var(name).ok();
        match &self.config.url {
            Some(url) => {
                let headers = self
                    .config
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        expand_env(value, lookup)
                            .map(|value| (name.clone(), value))
                            .map_err(|problem| format!("header {name} {problem}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let oauth = match &self.config.oauth {
                    Some(oauth) => {
                        let expand = |field: &str, value: &str| {
                            expand_env(value, lookup)
                                .map_err(|problem| format!("oauth.{field} {problem}"))
                        };
                        let credentials = OAuthCredentials {
                            client_id: expand("client_id", &oauth.client_id)?,
                            client_secret: oauth
                                .client_secret
                                .as_deref()
                                .map(|secret| expand("client_secret", secret))
                                .transpose()?,
                            scope: oauth.scope.clone(),
                            issuer: oauth.issuer.clone(),
                        };
                        Some(OAuth {
                            credentials,
                            cache: self.tokens.clone(),
                            server_url: url.clone(),
                        })
                    }
                    None => None,
                };
                let target = HttpTarget {
                    url: url.clone(),
                    headers,
                    oauth,
                };
                Ok(Connection::start_http(&self.name, target, self.offer()))
            }
            None => {
                let spawned = spawn_server(&self.config, lookup)?;
                Ok(Connection::start(&self.name, spawned, self.offer()))
            }
        }
    }

    /// Starts the server once and keeps it until it exits or we are told to stop.
    async fn run_once(&self) -> RunEnd {
        let connection = match self.connect() {
            Ok(connection) => Arc::new(connection),
            Err(error) => return RunEnd::StartFailed(error),
        };
        let started = Instant::now();
        let startup = self.settings.startup_timeout();
        let ready = tokio::select! {
            ready = tokio::time::timeout(startup, self.handshake(&connection, started + startup)) => ready,
            () = self.stop.cancelled() => {
                connection.shutdown().await;
                return RunEnd::Stopped;
            }
        };
        let (protocol_version, catalog) = match ready {
            Ok(Ok(ready)) => ready,
            Ok(Err(error)) => {
                let error = with_stderr(error, &connection);
                connection.shutdown().await;
                return RunEnd::StartFailed(error);
            }
            Err(_) => {
                let error = with_stderr(
                    format!("not ready within {}s", startup.as_secs()),
                    &connection,
                );
                connection.shutdown().await;
                return RunEnd::StartFailed(error);
            }
        };
        tracing::info!(server = %self.name, pid = ?connection.pid(), protocol = %protocol_version, tools = catalog.specs.len(), "MCP server running");
        self.update(|state| {
            state.state = ServerState::Running;
            state.protocol_version = Some(protocol_version);
            state.catalog = catalog;
            state.connection = Some(connection.clone());
        });

        let mut exited = connection.exit_watch();
        loop {
            tokio::select! {
                () = self.stop.cancelled() => {
                    self.update(|state| state.connection = None);
                    connection.shutdown().await;
                    return RunEnd::Stopped;
                }
                () = connection.list_changed() => self.relist(&connection).await,
                how = async { exited.wait_for(Option::is_some).await.ok().and_then(|how| how.clone()) } => {
                    let how = how.unwrap_or_else(|| "exited".into());
                    self.update(|state| state.connection = None);
                    return RunEnd::Exited {
                        how: with_stderr(format!("exited unexpectedly ({how})"), &connection),
                        ran: started.elapsed(),
                    };
                }
            }
        }
    }

    async fn handshake(
        &self,
        connection: &Connection,
        deadline: Instant,
    ) -> Result<(String, ServerCatalog), String> {
        let negotiated = connection.negotiate(deadline).await?;
        tracing::debug!(server = %self.name, era = ?negotiated.era, reported_name = ?negotiated.server_name, "negotiated");
        let tools = connection
            .list_tools(deadline.saturating_duration_since(Instant::now()))
            .await
            .map_err(|failure| format!("tools/list failed: {failure}"))?;
        Ok((
            negotiated.protocol_version,
            ServerCatalog::from_listing(&self.name, &tools),
        ))
    }

    async fn relist(&self, connection: &Connection) {
        let timeout = RequestLimits::fixed(self.settings.startup_timeout());
        match connection.list_tools(timeout.idle).await {
            Ok(tools) => {
                let catalog = ServerCatalog::from_listing(&self.name, &tools);
                tracing::info!(server = %self.name, tools = catalog.specs.len(), "MCP server's tools changed");
                self.update(|state| state.catalog = catalog);
            }
            Err(failure) => {
                tracing::warn!(server = %self.name, error = %failure, "re-listing tools failed; keeping the old list");
            }
        }
    }
}

/// `error`, with the server's last stderr line when it said something.
fn with_stderr(error: String, connection: &Connection) -> String {
    match connection.stderr_last_line() {
        Some(line) => format!("{error}; stderr: {line}"),
        None => error,
    }
}

/// `FIRST_BACKOFF * 2^failures`, capped, then jittered by ±20% so that servers failing together
/// do not restart in lockstep.
fn backoff_delay(failures: u32, cap: Duration) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1u32 << failures.min(16))
        .min(cap);
    base.mul_f64(0.8 + fastrand::f64() * 0.4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let cap = Duration::from_secs(30);
        for (failures, expected) in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0), (40, 30.0)] {
            let delay = backoff_delay(failures, cap).as_secs_f64();
            assert!(
                delay >= expected * 0.8 - 1e-9 && delay <= expected * 1.2 + 1e-9,
                "{failures}: {delay}"
            );
        }
    }
}
