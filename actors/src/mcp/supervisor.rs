//! The `McpSupervisor` actor: the one shared owner of every configured stdio MCP server. It
//! starts a [`ServerChild`] per server, answers [`ListTools`] (the namespaced catalog of the
//! servers that are running) and [`ServerStatuses`] from their state, routes [`CallTool`] to
//! the right server, and stops them all on [`Shutdown`] or when it stops.
//!
//! Calls never occupy the mailbox: the handler looks the tool up, then returns a future that
//! actix runs on its own, so a slow tool holds up nobody else. Sessions, the composer and the
//! HTTP layer talk to it; it talks only to its children.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Message, MessageResult, ResponseFuture, Supervised};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::access::McpAccess;
use super::catalog::{CatalogChanges, ToolOutput, render_result, server_of};
use super::child::{McpServerStatus, ServerChild, ServerState};
use super::config::{McpServerConfig, McpSettings};
use super::connection::{RequestFailure, RequestLimits};
use super::error::McpError;
use super::sampling::Sampler;
use crate::provider::ToolSpec;

/// How long [`Shutdown`] waits for all servers together before giving up on stragglers.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(15);

/// The tools of every running server that `access` allows, namespaced `server__tool`.
#[derive(Debug, Clone, Default, Message)]
#[rtype(result = "Vec<ToolSpec>")]
pub struct ListTools {
    pub access: McpAccess,
}

/// Calls one tool. `cancel` is the caller's: cancelling it (the client went away) cancels the
/// call on the server too.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ToolOutput, McpError>")]
pub struct CallTool {
    /// The namespaced name, as in [`ListTools`].
    pub tool: String,
    /// The arguments object.
    pub arguments: Value,
    pub cancel: CancellationToken,
    /// What the caller may call; any other tool is unknown to it.
    pub access: McpAccess,
}

/// Every configured server's state, in name order.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "Vec<McpServerStatus>")]
pub struct ServerStatuses;

/// Stops every server (stdin closed, then SIGTERM and SIGKILL to each process group) and
/// resolves when they are all gone.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

pub struct McpSupervisor {
    servers: BTreeMap<String, McpServerConfig>,
    settings: Arc<McpSettings>,
    sampler: Option<Sampler>,
    children: BTreeMap<String, ServerChild>,
    /// After [`Shutdown`], a restart by the actix supervisor must not start servers again.
    shut_down: bool,
    changes: CatalogChanges,
}

impl McpSupervisor {
    pub fn new(servers: BTreeMap<String, McpServerConfig>, settings: McpSettings) -> Self {
        Self {
            servers,
            settings: Arc::new(settings),
            sampler: None,
            children: BTreeMap::new(),
            shut_down: false,
            changes: CatalogChanges::default(),
        }
    }

    /// Servers' sampling requests are answered by `sampler` (the agent's model).
    #[must_use]
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// Moves whenever what [`ListTools`] would answer may have changed.
    pub fn catalog_changes(&self) -> CatalogChanges {
        self.changes.clone()
    }

    /// Starts the supervisor under actix's supervision on the current arbiter.
    pub fn start_supervised(self) -> Addr<Self> {
        actix::Supervisor::start(move |_| self)
    }

    fn stop_children(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        self.children
            .values_mut()
            .filter_map(ServerChild::stop)
            .collect()
    }

    fn limits_for(&self, server: &ServerChild) -> RequestLimits {
        let idle = Duration::from_secs(
            server
                .config
                .timeout_secs
                .unwrap_or(self.settings.call_timeout_secs)
                .max(1),
        );
        RequestLimits {
            idle,
            hard: Duration::from_secs(self.settings.max_call_timeout_secs).max(idle),
        }
    }
}

impl Actor for McpSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        if self.shut_down {
            return;
        }
        for (name, config) in &self.servers {
            let child = ServerChild::start(
                name.clone(),
                config.clone(),
                self.settings.clone(),
                self.sampler.clone(),
                self.changes.clone(),
            );
            self.children.insert(name.clone(), child);
        }
        self.changes.bump();
        tracing::info!(servers = self.children.len(), "MCP supervisor started");
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> actix::Running {
        // The tasks finish stopping their servers on their own.
        self.stop_children();
        actix::Running::Stop
    }
}

impl Supervised for McpSupervisor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.stop_children();
        self.children.clear();
        self.changes.bump();
    }
}

impl Handler<ListTools> for McpSupervisor {
    type Result = MessageResult<ListTools>;

    fn handle(&mut self, msg: ListTools, _ctx: &mut Self::Context) -> Self::Result {
        let mut tools = Vec::new();
        for child in self.children.values() {
            let state = child
                .state
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if state.state == ServerState::Running {
                tools.extend(
                    state
                        .catalog
                        .specs
                        .iter()
                        .filter(|spec| msg.access.allows(&spec.name))
                        .cloned(),
                );
            } else if state.state != ServerState::Stopped || child.config.is_enabled() {
                tracing::info!(server = %child.name, state = state.state.as_str(), "MCP server left out of the tool catalog: not running");
            }
        }
        MessageResult(tools)
    }
}

impl Handler<CallTool> for McpSupervisor {
    type Result = ResponseFuture<Result<ToolOutput, McpError>>;

    fn handle(&mut self, msg: CallTool, _ctx: &mut Self::Context) -> Self::Result {
        let CallTool {
            tool,
            arguments,
            cancel,
            access,
        } = msg;
        if !access.allows(&tool) {
            tracing::info!(tool = %tool, "MCP tool refused: not allowed for this caller");
            return Box::pin(async move { Err(McpError::UnknownTool(tool)) });
        }
        let Some(child) = server_of(&tool).and_then(|server| self.children.get(server)) else {
            return Box::pin(async move { Err(McpError::UnknownTool(tool)) });
        };
        let limits = self.limits_for(child);
        let max_bytes = self.settings.max_result_bytes;
        let server = child.name.clone();
        let target = {
            let state = child
                .state
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            match (&state.connection, state.catalog.names.get(&tool)) {
                (Some(connection), Some(original)) if state.state == ServerState::Running => {
                    Ok((connection.clone(), original.clone()))
                }
                (Some(_), None) if state.state == ServerState::Running => {
                    Err(McpError::UnknownTool(tool.clone()))
                }
                _ => Err(McpError::ServerUnavailable {
                    server: server.clone(),
                    state: state.state.as_str().to_owned(),
                }),
            }
        };
        Box::pin(async move {
            let (connection, original) = target?;
            let arguments = if arguments.is_null() {
                Value::Object(serde_json::Map::new())
            } else {
                arguments
            };
            let result = connection
                .call_tool(&original, arguments, limits, &cancel)
                .await
                .map_err(|failure| match failure {
                    RequestFailure::Rpc(error) => McpError::rpc(&server, error),
                    RequestFailure::Timeout(after) => McpError::Timeout {
                        tool: tool.clone(),
                        after,
                    },
                    RequestFailure::Cancelled => McpError::Cancelled(tool.clone()),
                    RequestFailure::Exited(how) => McpError::ServerExited {
                        server: server.clone(),
                        detail: how,
                    },
                })?;
            if result.get("resultType").and_then(Value::as_str) == Some("input_required") {
                return Err(McpError::Protocol {
                    server,
                    detail: "the tool asked for more input (input_required), which the agent cannot give".into(),
                });
            }
            if !result.is_object() {
                return Err(McpError::Protocol {
                    server,
                    detail: "the result is not an object".into(),
                });
            }
            Ok(render_result(&result, max_bytes))
        })
    }
}

impl Handler<ServerStatuses> for McpSupervisor {
    type Result = MessageResult<ServerStatuses>;

    fn handle(&mut self, _msg: ServerStatuses, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.children.values().map(ServerChild::status).collect())
    }
}

impl Handler<Shutdown> for McpSupervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        self.shut_down = true;
        let stopping = self.stop_children();
        if !stopping.is_empty() {
            tracing::info!(servers = stopping.len(), "stopping MCP servers");
        }
        Box::pin(async move {
            let all = futures_util::future::join_all(stopping);
            if tokio::time::timeout(SHUTDOWN_BOUND, all).await.is_err() {
                tracing::warn!(
                    "MCP servers still stopping after {}s",
                    SHUTDOWN_BOUND.as_secs()
                );
            }
        })
    }
}
