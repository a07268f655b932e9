//! Our MCP server over streamable HTTP: what `/mcp` needs besides the protocol itself
//! ([`kubiya_actors::mcp::McpServer`]). [`McpEndpoint`] holds the server each tenant talks to
//! (workflow tools that see only the tenant's executions), the legacy era's
//! sessions (`Mcp-Session-Id`, issued at `initialize`, bound to the tenant that opened them,
//! ended by `DELETE` or after an hour unused), and the checks against DNS rebinding: a page
//! of another origin is refused, and a server listening on loopback only answers requests
//! addressed to a loopback name. The handlers in `routes::mcp_endpoint` use it; the agent
//! server mounts it behind its auth, `kubiya mcp server --transport http` on its own.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::{App, HttpServer, web};
use dashmap::DashMap;
use kubiya_actors::limits::RateLimiter;
use kubiya_actors::mcp::{
    Connection, McpServer, ServerFeatures, ServerIdentity, WorkflowTools, WorkflowToolsParts,
};
use kubiya_actors::store::TenantId;
use kubiya_actors::workflow::{ExecutionWatcher, LocalRunner};

use crate::boundary::origin::OriginPolicy;
use crate::tenant::Tenant;

/// Legacy sessions kept at once; a new one past this evicts the least recently used.
const MAX_SESSIONS: usize = 1024;
/// A session unused this long is forgotten.
const SESSION_IDLE: Duration = Duration::from_secs(3600);

/// Makes the features one tenant is served.
pub type FeaturesFactory = Box<dyn Fn(&Tenant) -> Arc<dyn ServerFeatures> + Send + Sync>;

pub struct McpEndpoint {
    identity: ServerIdentity,
    make_features: FeaturesFactory,
    servers: DashMap<TenantId, McpServer>,
    sessions: DashMap<String, Arc<HttpSession>>,
    /// Listening on loopback only: requests must be addressed to a loopback name.
    loopback_only: bool,
    /// Which web pages may call (the API's own origin rules).
    origins: OriginPolicy,
    /// Largest request body.
    pub max_body_bytes: usize,
}

/// One legacy-era session.
pub struct HttpSession {
    pub tenant: TenantId,
    pub connection: Arc<Connection>,
    last_used: Mutex<Instant>,
}

impl HttpSession {
    fn touch(&self) {
        if let Ok(mut last_used) = self.last_used.lock() {
            *last_used = Instant::now();
        }
    }

    fn idle(&self) -> Duration {
        self.last_used
            .lock()
            .map_or(Duration::MAX, |last_used| last_used.elapsed())
    }
}

/// Who our MCP server says it is, on `/mcp` and on stdio alike.
pub fn workflow_server_identity() -> ServerIdentity {
    ServerIdentity {
        name: "kubiya".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        instructions: "Kubiya workflow tools: write a workflow (a DAG of steps), check it with \
                       validate_workflow, run it with execute_workflow, and follow a run with \
                       get_execution (or read it as the resource kubiya://executions/{id}). \
                       list_runners says where workflows can run; the create_workflow prompt \
                       starts a workflow from a plain-language task."
            .to_owned(),
    }
}

/// What every tenant's workflow tools share.
pub struct WorkflowToolsSetup {
    /// Checks workflows against this host; runs go to `executions`.
    pub runner: LocalRunner,
    /// The server's one execution registry.
    pub executions: Addr<ExecutionWatcher>,
    /// Counts each tenant's running executions.
    pub limiter: Arc<RateLimiter>,
    /// Executions at once for a tenant without a limit of its own (0: no limit).
    pub default_max_running: u32,
}

/// Workflow tools for each tenant: its executions among the watcher's, at most its concurrent
/// executions running at once (else `default_max_running`).
pub fn workflow_features(setup: WorkflowToolsSetup) -> FeaturesFactory {
    Box::new(move |tenant| {
        let mut limits = tenant.limits;
        limits.max_concurrent_executions = limits
            .max_concurrent_executions
            .or((setup.default_max_running > 0).then_some(setup.default_max_running));
        Arc::new(WorkflowTools::new(WorkflowToolsParts {
            runner: setup.runner.clone(),
            executions: setup.executions.clone(),
            tenant: tenant.id.clone(),
            limiter: setup.limiter.clone(),
            limits,
        }))
    })
}

/// `kubiya mcp server --transport http`: `/mcp` alone on `host:port`, until a signal. No
/// origins are configured: only the server's own pages may call from a browser.
pub async fn serve_standalone(endpoint: McpEndpoint, host: &str, port: u16) -> std::io::Result<()> {
    let endpoint = web::Data::new(endpoint);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(endpoint.clone())
            .service(crate::routes::mcp_route())
            .default_service(web::to(crate::routes::not_found))
    })
    .workers(1)
    .shutdown_timeout(5)
    .bind((host, port))?;
    let port = server
        .addrs()
        .first()
        .map_or(port, std::net::SocketAddr::port);
    tracing::info!(host, port, "serving MCP over streamable HTTP at /mcp");
    server.run().await
}

impl McpEndpoint {
    pub fn new(
        identity: ServerIdentity,
        make_features: FeaturesFactory,
        listen_host: &str,
        origins: OriginPolicy,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            identity,
            make_features,
            servers: DashMap::new(),
            sessions: DashMap::new(),
            loopback_only: is_loopback_name(listen_host),
            origins,
            max_body_bytes,
        }
    }

    /// The server `tenant` talks to, made on first use.
    pub fn server_for(&self, tenant: &Tenant) -> McpServer {
        self.servers
            .entry(tenant.id.clone())
            .or_insert_with(|| McpServer::new(self.identity.clone(), (self.make_features)(tenant)))
            .clone()
    }

    /// Opens a legacy session for `tenant`; returns its id.
    pub fn open_session(&self, tenant: TenantId, connection: Arc<Connection>) -> String {
        self.sessions
            .retain(|_, session| session.idle() < SESSION_IDLE || session.connection.running() > 0);
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .sessions
                .iter()
                .max_by_key(|session| session.idle())
                .map(|session| session.key().clone())
            && let Some((_, session)) = self.sessions.remove(&oldest)
        {
            session.connection.close();
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.sessions.insert(
            id.clone(),
            Arc::new(HttpSession {
                tenant,
                connection,
                last_used: Mutex::new(Instant::now()),
            }),
        );
        id
    }

    /// The session with `id`, if `tenant` opened it.
    pub fn session(&self, id: &str, tenant: &str) -> Option<Arc<HttpSession>> {
        let session = self.sessions.get(id)?.clone();
        if &*session.tenant != tenant {
            return None;
        }
        session.touch();
        Some(session)
    }

    /// Ends the session with `id` if `tenant` opened it; false when there is none.
    pub fn close_session(&self, id: &str, tenant: &str) -> bool {
        match self
            .sessions
            .remove_if(id, |_, session| &*session.tenant == tenant)
        {
            Some((_, session)) => {
                session.connection.close();
                true
            }
            None => false,
        }
    }

    /// Why a request must be refused as a possible DNS-rebinding or cross-site request.
    pub fn rebinding_refusal(&self, host: Option<&str>, origin: Option<&str>) -> Option<String> {
        let host = host.unwrap_or("").trim().to_ascii_lowercase();
        if self.loopback_only && !is_loopback_name(host_name(&host)) {
            return Some(format!(
                "this server listens on loopback only and does not answer requests for host `{host}`"
            ));
        }
        // A page of our own address (an IP or localhost: a domain name could be a rebinding
        // page) or a configured origin may call; no other page.
        let verdict = self.origins.judge(origin, Some(&host));
        (!verdict.is_allowed()).then(|| {
            format!(
                "requests from pages of origin `{}` are not accepted",
                origin.unwrap_or_default()
            )
        })
    }
}

/// The name part of a `Host` value (`[::1]:8000` → `::1`).
fn host_name(host: &str) -> &str {
    match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    }
}

fn is_loopback_name(name: &str) -> bool {
    let name = name.trim().trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoTools;

    impl ServerFeatures for NoTools {
        fn tools(&self) -> Vec<serde_json::Value> {
            Vec::new()
        }

        fn call(
            &self,
            _: &str,
            _: serde_json::Value,
            _: kubiya_actors::mcp::notify::CallContext,
        ) -> futures_util::future::BoxFuture<
            'static,
            Result<serde_json::Value, kubiya_actors::mcp::jsonrpc::RpcError>,
        > {
            Box::pin(async { Ok(serde_json::Value::Null) })
        }
    }

    fn endpoint(host: &str) -> McpEndpoint {
        let identity = ServerIdentity {
            name: "t".into(),
            version: "1".into(),
            instructions: String::new(),
        };
        McpEndpoint::new(
            identity,
            Box::new(|_| Arc::new(NoTools)),
            host,
            OriginPolicy::default(),
            1024,
        )
    }

    #[test]
    fn a_loopback_server_answers_loopback_names_and_its_own_pages_only() {
        let local = endpoint("127.0.0.1");
        assert!(
            local
                .rebinding_refusal(Some("127.0.0.1:8000"), None)
                .is_none()
        );
        assert!(
            local
                .rebinding_refusal(Some("localhost:8000"), None)
                .is_none()
        );
        assert!(local.rebinding_refusal(Some("[::1]:8000"), None).is_none());
        assert!(
            local
                .rebinding_refusal(Some("localhost:8000"), Some("http://localhost:8000"))
                .is_none()
        );
        assert!(
            local
                .rebinding_refusal(Some("evil.example.com"), Some("http://evil.example.com"))
                .is_some()
        );
        assert!(
            local
                .rebinding_refusal(Some("evil.example.com"), None)
                .is_some()
        );
        assert!(
            local
                .rebinding_refusal(Some("127.0.0.1:8000"), Some("http://evil.example.com"))
                .is_some()
        );

        let open = endpoint("0.0.0.0");
        assert!(
            open.rebinding_refusal(Some("mcp.example.com"), None)
                .is_none()
        );
        assert!(
            open.rebinding_refusal(Some("mcp.example.com"), Some("http://mcp.example.com"))
                .is_some()
        );
    }

    #[test]
    fn a_session_belongs_to_the_tenant_that_opened_it() {
        let endpoint = endpoint("127.0.0.1");
        let id = endpoint.open_session(TenantId::parse("a").unwrap(), Connection::new());
        assert!(endpoint.session(&id, "a").is_some());
        assert!(endpoint.session(&id, "b").is_none());
        assert!(!endpoint.close_session(&id, "b"));
        assert!(endpoint.close_session(&id, "a"));
        assert!(endpoint.session(&id, "a").is_none());
    }
}
