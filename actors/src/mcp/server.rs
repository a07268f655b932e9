//! Our own MCP server, the protocol side, whatever carries it: [`McpServer::handle`] takes
//! one JSON-RPC message of a [`Connection`] and sends what it answers to the request's
//! [`Outbound`] channel. The stdio transport ([`super::stdio_server`]) keeps one connection
//! per process; the streamable HTTP transport (the agent server's `/mcp`) keeps one per
//! legacy session and makes a fresh one for each modern (stateless) request.
//!
//! Both eras: `initialize` makes a connection legacy (handshake, then plain requests);
//! `server/discover` or a request carrying `_meta` with a protocol version makes it modern
//! (per-request `_meta`, `resultType` and cache hints on results, -32022 for versions we do
//! not speak, no `ping`, `logging/setLevel` or subscriptions). What we serve comes from
//! [`ServerFeatures`]: tools, resources (with subscriptions in the legacy era), prompts and
//! completions; logging goes to the request as `notifications/message`.
//!
//! Each tool call runs in its own task, so a long workflow run never holds up other
//! requests; `notifications/cancelled` (or, over HTTP, the client leaving) stops it and
//! suppresses its reply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::features::ServerFeatures;
use super::jsonrpc::{
    self, INVALID_PARAMS, INVALID_REQUEST, Incoming, LEGACY_VERSION, LEGACY_VERSIONS,
    META_CLIENT_CAPABILITIES, META_LOG_LEVEL, META_PROTOCOL_VERSION, META_SERVER_INFO,
    METHOD_NOT_FOUND, MODERN_VERSION, RequestId, RpcError, UNSUPPORTED_PROTOCOL_VERSION,
};
use super::notify::{CallContext, LogLevel, Logger, Outbound, ProgressReporter};

/// Who we say we are.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    pub name: String,
    pub version: String,
    /// Guidance for the model, sent at negotiation.
    pub instructions: String,
}

/// The protocol era of a connection, fixed by its first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Legacy,
    Modern,
}

/// What became of one incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// A request: its response (with this id) will arrive on the outbound channel, after any
    /// notifications that belong to it.
    Request(RequestId),
    /// A notification or a response: nothing will be sent for it.
    Accepted,
}

/// One client's state: its era, log level, running calls and resource subscriptions.
pub struct Connection {
    era: Mutex<Option<Era>>,
    /// The legacy era's `logging/setLevel`; modern requests say it in their own `_meta`.
    log_level: Mutex<LogLevel>,
    in_flight: Mutex<HashMap<RequestId, CancellationToken>>,
    /// Where messages that belong to no request go (resource updates): the stdio output, or a
    /// legacy HTTP session's GET stream while one is open.
    unsolicited: Mutex<Option<Outbound>>,
    subscriptions: Mutex<HashMap<String, CancellationToken>>,
    /// Fired when the connection ends: stops its calls and subscriptions.
    closed: CancellationToken,
}

/// Subscriptions one connection may hold, so a client cannot grow them without bound.
const MAX_SUBSCRIPTIONS: usize = 256;

impl Connection {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            era: Mutex::new(None),
            log_level: Mutex::new(LogLevel::Info),
            in_flight: Mutex::new(HashMap::new()),
            unsolicited: Mutex::new(None),
            subscriptions: Mutex::new(HashMap::new()),
            closed: CancellationToken::new(),
        })
    }

    /// A connection for one modern request (stateless HTTP).
    pub fn modern() -> Arc<Self> {
        let connection = Self::new();
        connection.set_era(Era::Modern);
        connection
    }

    pub fn era(&self) -> Option<Era> {
        self.era.lock().ok().and_then(|era| *era)
    }

    fn set_era(&self, era: Era) {
        if let Ok(mut current) = self.era.lock() {
            *current = Some(era);
        }
    }

    /// Sends what belongs to no request (resource updates) to `output` from now on.
    pub fn set_unsolicited(&self, output: Option<Outbound>) {
        if let Ok(mut current) = self.unsolicited.lock() {
            *current = output;
        }
    }

    fn send_unsolicited(&self, message: Value) {
        if let Ok(current) = self.unsolicited.lock()
            && let Some(output) = current.as_ref()
        {
            output.notify(message);
        }
    }

    /// Stops the request with `id` if it is still running; it will send nothing more.
    pub fn cancel(&self, id: &RequestId) {
        if let Ok(in_flight) = self.in_flight.lock()
            && let Some(cancel) = in_flight.get(id)
        {
            tracing::debug!(?id, "MCP request cancelled");
            cancel.cancel();
        }
    }

    /// Ends the connection: every call and subscription stops.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Fires when the connection ends.
    pub fn closed_token(&self) -> CancellationToken {
        self.closed.clone()
    }

    /// Requests still running.
    pub fn running(&self) -> usize {
        self.in_flight.lock().map_or(0, |in_flight| in_flight.len())
    }
}

/// The server: who we are and what we offer.
#[derive(Clone)]
pub struct McpServer {
    identity: Arc<ServerIdentity>,
    features: Arc<dyn ServerFeatures>,
}

impl McpServer {
    pub fn new(identity: ServerIdentity, features: Arc<dyn ServerFeatures>) -> Self {
        Self {
            identity: Arc::new(identity),
            features,
        }
    }

    /// Handles one parsed message of `connection`; answers go to `out`.
    pub fn handle(&self, connection: &Arc<Connection>, message: Value, out: &Outbound) -> Handled {
        match jsonrpc::classify(message) {
            Incoming::Request { id, method, params } => {
                Dispatch {
                    server: self,
                    connection,
                    out,
                }
                .request(&id, &method, params);
                Handled::Request(id)
            }
            Incoming::Notification { method, params } => {
                if method == "notifications/cancelled"
                    && let Some(id) = params.get("requestId").and_then(RequestId::from_value)
                {
                    connection.cancel(&id);
                }
                Handled::Accepted
            }
            // We send no requests, so responses have nobody to go to.
            Incoming::Response { .. } => Handled::Accepted,
            Incoming::Invalid { id } => {
                out.respond(jsonrpc::error_response(
                    id.as_ref(),
                    &RpcError::new(INVALID_REQUEST, "not a JSON-RPC 2.0 request"),
                ));
                match id {
                    Some(id) => Handled::Request(id),
                    None => Handled::Accepted,
                }
            }
        }
    }

    fn server_info(&self) -> Value {
        json!({"name": self.identity.name, "version": self.identity.version})
    }

    fn capabilities(&self, era: Era) -> Value {
        let mut resources = json!({"listChanged": false});
        let mut capabilities = json!({
            "tools": {"listChanged": false},
            "prompts": {"listChanged": false},
            "completions": {},
        });
        if era == Era::Legacy {
            // Subscriptions and logging/setLevel are legacy-era methods.
            resources["subscribe"] = json!(true);
            capabilities["logging"] = json!({});
        }
        capabilities["resources"] = resources;
        capabilities
    }
}

/// One request being answered.
struct Dispatch<'a> {
    server: &'a McpServer,
    connection: &'a Arc<Connection>,
    out: &'a Outbound,
}

/// Methods the modern era removed.
const LEGACY_ONLY_METHODS: [&str; 5] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

impl Dispatch<'_> {
    /// Replies with what `answer` comes to, from a task of its own: what the features read
    /// from elsewhere (executions) never holds up the connection's other requests.
    fn answer_later(
        &self,
        id: &RequestId,
        answer: impl Future<Output = Result<Value, RpcError>> + Send + 'static,
    ) {
        let out = self.out.clone();
        let connection = self.connection.clone();
        let server_info = self.server.server_info();
        let id = id.clone();
        tokio::spawn(async move {
            out.respond(answer_message(&id, answer.await, &connection, server_info));
        });
    }

    fn reply(&self, id: &RequestId, mut result: Value) {
        if self.connection.era() == Some(Era::Modern) {
            decorate_modern(&mut result, self.server.server_info());
        }
        self.out.respond(jsonrpc::response(id, result));
    }

    fn fail(&self, id: &RequestId, error: &RpcError) {
        self.out.respond(jsonrpc::error_response(Some(id), error));
    }

    fn request(&self, id: &RequestId, method: &str, params: Value) {
        let requested = params
            .pointer("/_meta")
            .and_then(|meta| meta.get(META_PROTOCOL_VERSION))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let era = self.connection.era();
        if method == "initialize" && era != Some(Era::Modern) && requested.is_none() {
            return self.initialize(id, &params);
        }
        if era.is_none() && (requested.is_some() || method == "server/discover") {
            // Modern clients may skip discover: the request itself says which era it is.
            self.connection.set_era(Era::Modern);
        }
        let modern = self.connection.era() == Some(Era::Modern);
        if modern && method == "initialize" && requested.is_none() {
            // A handshake on a connection already serving the modern era, as dual-era
            // servers answer it.
            let mut error = RpcError::new(
                UNSUPPORTED_PROTOCOL_VERSION,
                format!(
                    "connection is serving the {MODERN_VERSION} protocol; initialize is not part of it"
                ),
            );
            error.data = Some(
                json!({"supported": [MODERN_VERSION], "requested": params.get("protocolVersion")}),
            );
            return self.fail(id, &error);
        }
        if modern {
            if let Err(error) = check_modern_meta(&params) {
                return self.fail(id, &error);
            }
            if LEGACY_ONLY_METHODS.contains(&method) {
                return self.fail(id, &method_not_found(method));
            }
        } else if method == "server/discover" {
            return self.fail(
                id,
                &RpcError::new(
                    METHOD_NOT_FOUND,
                    "method not found: server/discover (this connection began with initialize)",
                ),
            );
        }
        let features = &self.server.features;
        match method {
            "server/discover" => self.discover(id),
            "ping" => self.reply(id, json!({})),
            "logging/setLevel" => self.set_level(id, &params),
            "tools/list" => self.reply(id, listing("tools", features.tools(), modern)),
            "tools/call" => self.call_tool(id, &params),
            "resources/list" => {
                let resources = features.resources();
                self.answer_later(id, async move {
                    Ok(listing("resources", resources.await, modern))
                });
            }
            "resources/templates/list" => self.reply(
                id,
                listing("resourceTemplates", features.resource_templates(), modern),
            ),
            "resources/read" => self.read_resource(id, &params),
            "resources/subscribe" => self.subscribe(id, &params),
            "resources/unsubscribe" => self.unsubscribe(id, &params),
            "prompts/list" => self.reply(id, listing("prompts", features.prompts(), modern)),
            "prompts/get" => self.get_prompt(id, &params),
            "completion/complete" => self.complete(id, &params),
            _ => self.fail(id, &method_not_found(method)),
        }
    }

    fn initialize(&self, id: &RequestId, params: &Value) {
        self.connection.set_era(Era::Legacy);
        let requested = params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Echo a version we speak; otherwise offer our newest and let the client decide.
        let version = if LEGACY_VERSIONS.contains(&requested) {
            requested
        } else {
            LEGACY_VERSION
        };
        let client = params
            .pointer("/clientInfo/name")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        tracing::info!(
            protocol = version,
            client,
            "MCP client connected (legacy handshake)"
        );
        self.reply(
            id,
            json!({
                "protocolVersion": version,
                "capabilities": self.server.capabilities(Era::Legacy),
                "serverInfo": self.server.server_info(),
                "instructions": self.server.identity.instructions,
            }),
        );
    }

    fn discover(&self, id: &RequestId) {
        tracing::debug!(protocol = MODERN_VERSION, "MCP discover");
        self.reply(
            id,
            json!({
                "supportedVersions": [MODERN_VERSION],
                "capabilities": self.server.capabilities(Era::Modern),
                "instructions": self.server.identity.instructions,
                "ttlMs": 0,
                "cacheScope": "public",
            }),
        );
    }

    fn set_level(&self, id: &RequestId, params: &Value) {
        let Some(level) = params
            .get("level")
            .and_then(Value::as_str)
            .and_then(LogLevel::parse)
        else {
            return self.fail(
                id,
                &RpcError::new(
                    INVALID_PARAMS,
                    "params.level must be one of debug, info, notice, warning, error, critical, alert, emergency",
                ),
            );
        };
        if let Ok(mut current) = self.connection.log_level.lock() {
            *current = level;
        }
        self.reply(id, json!({}));
    }

    /// The level this request's log messages start at, if it gets any.
    fn log_level_for(&self, params: &Value) -> Option<LogLevel> {
        match self.connection.era() {
            // A modern request gets logs only when it asks for them.
            Some(Era::Modern) => params
                .pointer("/_meta")
                .and_then(|meta| meta.get(META_LOG_LEVEL))
                .and_then(Value::as_str)
                .and_then(LogLevel::parse),
            _ => self.connection.log_level.lock().ok().map(|level| *level),
        }
    }

    fn call_tool(&self, id: &RequestId, params: &Value) {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return self.fail(
                id,
                &RpcError::new(INVALID_PARAMS, "tools/call needs params.name"),
            );
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(arguments @ Value::Object(_)) => arguments.clone(),
            Some(_) => {
                return self.fail(
                    id,
                    &RpcError::new(INVALID_PARAMS, "params.arguments must be an object"),
                );
            }
        };
        let cancel = self.connection.closed.child_token();
        let progress = params
            .pointer("/_meta/progressToken")
            .filter(|token| token.is_string() || token.is_number())
            .map(|token| ProgressReporter::new(token.clone(), self.out.clone(), cancel.clone()));
        let log = self
            .log_level_for(params)
            .map(|level| Logger::new(level, self.out.clone(), cancel.clone()));
        if let Ok(mut in_flight) = self.connection.in_flight.lock() {
            in_flight.insert(id.clone(), cancel.clone());
        }
        let call = self.server.features.call(
            name,
            arguments,
            CallContext {
                cancel: cancel.clone(),
                progress,
                log,
            },
        );
        let out = self.out.clone();
        let connection = self.connection.clone();
        let server_info = self.server.server_info();
        let id = id.clone();
        tokio::spawn(async move {
            let outcome = call.await;
            if let Ok(mut in_flight) = connection.in_flight.lock() {
                in_flight.remove(&id);
            }
            // A cancelled request gets no reply at all.
            if cancel.is_cancelled() {
                return;
            }
            out.respond(answer_message(&id, outcome, &connection, server_info));
        });
    }

    fn read_resource(&self, id: &RequestId, params: &Value) {
        let Some(uri) = params.get("uri").and_then(Value::as_str) else {
            return self.fail(id, &RpcError::new(INVALID_PARAMS, "params.uri is required"));
        };
        let reading = self.server.features.read_resource(uri);
        let modern = self.connection.era() == Some(Era::Modern);
        self.answer_later(id, async move {
            let mut result = json!({ "contents": reading.await? });
            if modern {
                // Executions change as they run: nothing is worth caching.
                result["ttlMs"] = json!(0);
                result["cacheScope"] = json!("private");
            }
            Ok(result)
        });
    }

    fn subscribe(&self, id: &RequestId, params: &Value) {
        let Some(uri) = params.get("uri").and_then(Value::as_str) else {
            return self.fail(id, &RpcError::new(INVALID_PARAMS, "params.uri is required"));
        };
        let Ok(mut subscriptions) = self.connection.subscriptions.lock() else {
            return self.reply(id, json!({}));
        };
        if subscriptions.contains_key(uri) {
            return self.reply(id, json!({}));
        }
        if subscriptions.len() >= MAX_SUBSCRIPTIONS {
            return self.fail(
                id,
                &RpcError::new(
                    INVALID_PARAMS,
                    format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
                ),
            );
        }
        let stop = self.connection.closed.child_token();
        subscriptions.insert(uri.to_owned(), stop.clone());
        drop(subscriptions);
        // A resource that does not exist yet has nothing to report; the subscription is
        // still accepted, as the specification only asks us to track it.
        let watching = self.server.features.watch_resource(uri);
        let connection = self.connection.clone();
        let uri = uri.to_owned();
        tokio::spawn(async move {
            if let Ok(mut changes) = watching.await {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        changed = changes.changed() => {
                            if changed.is_err() {
                                break;
                            }
                            connection.send_unsolicited(jsonrpc::notification(
                                "notifications/resources/updated",
                                json!({"uri": uri}),
                            ));
                        }
                    }
                }
            }
        });
        self.reply(id, json!({}));
    }

    fn unsubscribe(&self, id: &RequestId, params: &Value) {
        if let Some(uri) = params.get("uri").and_then(Value::as_str)
            && let Ok(mut subscriptions) = self.connection.subscriptions.lock()
            && let Some(stop) = subscriptions.remove(uri)
        {
            stop.cancel();
        }
        self.reply(id, json!({}));
    }

    fn get_prompt(&self, id: &RequestId, params: &Value) {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return self.fail(
                id,
                &RpcError::new(INVALID_PARAMS, "params.name is required"),
            );
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(arguments)) => arguments.clone(),
            Some(_) => {
                return self.fail(
                    id,
                    &RpcError::new(INVALID_PARAMS, "params.arguments must be an object"),
                );
            }
        };
        let prompt = self.server.features.get_prompt(name, &arguments);
        self.answer_later(id, prompt);
    }

    fn complete(&self, id: &RequestId, params: &Value) {
        let (Some(reference), Some(argument)) = (params.get("ref"), params.get("argument")) else {
            return self.fail(
                id,
                &RpcError::new(
                    INVALID_PARAMS,
                    "params.ref and params.argument are required",
                ),
            );
        };
        let name = argument.get("name").and_then(Value::as_str).unwrap_or("");
        let prefix = argument.get("value").and_then(Value::as_str).unwrap_or("");
        let completing = self.server.features.complete(reference, name, prefix);
        self.answer_later(id, async move {
            let mut values = completing.await;
            let total = values.len();
            // The specification caps a completion at 100 values.
            values.truncate(100);
            Ok(json!({"completion": {"values": values, "total": total, "hasMore": total > 100}}))
        });
    }
}

/// The response to request `id`: its result (decorated for the modern era) or its error.
fn answer_message(
    id: &RequestId,
    outcome: Result<Value, RpcError>,
    connection: &Connection,
    server_info: Value,
) -> Value {
    match outcome {
        Ok(mut result) => {
            if connection.era() == Some(Era::Modern) {
                decorate_modern(&mut result, server_info);
            }
            jsonrpc::response(id, result)
        }
        Err(error) => jsonrpc::error_response(Some(id), &error),
    }
}

fn method_not_found(method: &str) -> RpcError {
    RpcError::new(METHOD_NOT_FOUND, format!("method not found: {method}"))
}

/// A list result; modern ones carry cache hints (ours change only with a new process).
fn listing(key: &str, items: Vec<Value>, modern: bool) -> Value {
    let mut listing = json!({ key: items });
    if modern {
        let dynamic = key == "resources";
        listing["ttlMs"] = json!(0);
        listing["cacheScope"] = json!(if dynamic { "private" } else { "public" });
    }
    listing
}

/// A modern request's `_meta` must name a version we speak and the client's capabilities.
fn check_modern_meta(params: &Value) -> Result<(), RpcError> {
    let meta = params.pointer("/_meta");
    let requested = meta
        .and_then(|meta| meta.get(META_PROTOCOL_VERSION))
        .and_then(Value::as_str);
    match requested {
        Some(MODERN_VERSION) => {}
        Some(other) => {
            let mut error = RpcError::new(
                UNSUPPORTED_PROTOCOL_VERSION,
                format!("unsupported protocol version {other}"),
            );
            error.data = Some(json!({"supported": [MODERN_VERSION], "requested": other}));
            return Err(error);
        }
        None => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                format!("params._meta[\"{META_PROTOCOL_VERSION}\"] is required"),
            ));
        }
    }
    if meta
        .and_then(|meta| meta.get(META_CLIENT_CAPABILITIES))
        .is_none_or(|capabilities| !capabilities.is_object())
    {
        return Err(RpcError::new(
            INVALID_PARAMS,
            format!("params._meta[\"{META_CLIENT_CAPABILITIES}\"] is required"),
        ));
    }
    Ok(())
}

/// `resultType` and our identity, which every modern result carries.
fn decorate_modern(result: &mut Value, server_info: Value) {
    if let Some(object) = result.as_object_mut() {
        object
            .entry("resultType")
            .or_insert_with(|| Value::from("complete"));
    }
    jsonrpc::meta_mut(result).insert(META_SERVER_INFO.into(), server_info);
}

/// An outbound channel and its receiving end.
pub fn outbound() -> (Outbound, mpsc::Receiver<Value>) {
    Outbound::channel()
}
