//! Settings and how they are layered: built-in defaults < `config/default.toml` (compiled in)
//! < the `--config` file < environment variables < command-line flags.
//!
//! [`Settings::load`] merges the layers with `figment` and turns any bad value into a
//! [`ConfigError`] that names the setting, the value, where it came from and what is allowed;
//! `main` prints it as one line and exits with status 2.
//!
//! MCP servers come from `[mcp_servers.NAME]` tables, and from a desktop host's
//! `{"mcpServers": {...}}` JSON file given with `--mcp-config`, whose servers are layered last.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use kubiya_actors::mcp::{DesktopHostConfig, McpServerConfig, McpSettings, check_servers};
use serde::{Deserialize, Serialize};

mod flag;
mod tenancy;
pub use tenancy::{ApiKeySettings, AuthSettings, StoreSettings, redact_url};

/// The documented defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub provider: ProviderSettings,
    pub agent: AgentSettings,
    pub sessions: SessionSettings,
    pub compose: ComposeSettings,
    pub runner: RunnerSettings,
    /// Timeouts and limits shared by every MCP server.
    pub mcp: McpSettings,
    /// The stdio MCP servers to supervise, by name (their tools are namespaced `NAME__tool`).
    pub mcp_servers: BTreeMap<String, McpServerConfig>,
    pub auth: AuthSettings,
    pub store: StoreSettings,
}

/// The Compose API's refinement loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComposeSettings {
    pub max_loop_iterations: u32,
    pub timeout_secs: u64,
    pub generation_model: String,
}

impl Default for ComposeSettings {
    fn default() -> Self {
        Self {
            max_loop_iterations: 3,
            timeout_secs: 300,
            generation_model: String::new(),
        }
    }
}

/// The agent loop of one chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    pub max_iterations: u32,
    pub heartbeat_secs: u64,
    /// A streaming client that takes nothing for this long while events wait is cut off.
    pub stalled_reader_secs: u64,
    /// Every turn waits for the user's approval before running a workflow, unless the
    /// request says otherwise (`require_approval`).
    pub require_approval: bool,
}

/// The in-memory session store's bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    pub ttl_secs: u64,
    pub max_sessions: usize,
    /// The bytes all in-memory sessions may hold together; least recently used go first.
    pub max_bytes: usize,
    /// The bytes one session's transcript may hold; a request that would pass it gets 413.
    pub max_transcript_bytes: usize,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            max_iterations: 10,
            heartbeat_secs: 15,
            stalled_reader_secs: 30,
            require_approval: false,
        }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            ttl_secs: 86_400,
            max_sessions: 100_000,
            max_bytes: 32 * 1024 * 1024,
            max_transcript_bytes: 2 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Empty: 127.0.0.1 while auth is off, 0.0.0.0 with API keys (see [`crate::boundary::exposure`]).
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub max_body_bytes: usize,
    /// A request body must arrive whole within this long (408 otherwise).
    pub body_timeout_secs: u64,
    /// Request headers above this many bytes together get 431.
    pub max_header_bytes: usize,
    /// A WebSocket that sends no request within this long is closed (1008).
    pub ws_request_timeout_secs: u64,
    pub shutdown_timeout_secs: u64,
    pub drain_delay_secs: u64,
    pub cors: CorsSettings,
}

/// Web pages of other origins allowed to call the API from a browser.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Origins such as `https://app.example.com`; `*` allows any. Empty: none but our own.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub level: LogLevel,
    pub format: LogFormat,
    #[serde(deserialize_with = "flag::deserialize")]
    pub mcp_debug: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Which vendor to use and how; empty strings mean "the vendor's own default".
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderSettings {
    pub name: ProviderChoice,
    pub model: String,
    pub api_key: String,
    pub base_url: String,
    pub protocol: ProtocolChoice,
    pub connect_timeout_ms: u64,
    pub first_byte_timeout_ms: u64,
    pub chunk_timeout_ms: u64,
    pub total_timeout_ms: u64,
    pub max_retries: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub max_connections: usize,
    pub actors: usize,
    pub fallbacks: Vec<FallbackSettings>,
}

/// A vendor tried, in order, when the primary fails before any output reached the client.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackSettings {
    pub name: ProviderChoice,
    pub model: String,
    pub api_key: String,
    pub base_url: String,
}

/// The wire protocol: the vendor's own (`auto`) or a forced one, e.g. `ollama` for Ollama's
/// native `/api/chat` instead of its OpenAI-compatible `/v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolChoice {
    Auto,
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Ollama,
}

/// Where workflows run and how long finished executions are remembered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerSettings {
    /// `local`, or a Kubiya runner name; used when neither request nor workflow names one.
    pub default: String,
    pub finished_ttl_secs: u64,
    pub max_finished: usize,
    /// Bytes of step output and events one execution keeps; past it outputs are cut with a note.
    pub max_log_bytes: usize,
    /// Bytes all finished executions keep together; the oldest are forgotten first.
    pub max_finished_bytes: usize,
    /// How often this replica renews the heartbeat of each execution it runs (shared store).
    pub heartbeat_ms: u64,
    /// A running execution whose heartbeat is older than this is `lost` (shared store).
    pub lost_after_ms: u64,
    /// Executions of one tenant running at once (across replicas), unless its API key says.
    pub max_concurrent_executions: u32,
    pub local: LocalRunnerSettings,
    pub kubiya: KubiyaRunnerSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalRunnerSettings {
    #[serde(deserialize_with = "flag::deserialize")]
    pub allow_unsandboxed: bool,
    #[serde(deserialize_with = "flag::deserialize")]
    pub allow_network: bool,
    pub max_active_steps: usize,
    pub max_output_bytes: usize,
    /// Internal address ranges (CIDR) `http` steps may reach anyway.
    pub http_allow: Vec<String>,
    /// Per step: address space of each process, processes at once, CPU seconds, largest
    /// file, open files, size of the private /tmp, wall time without a `timeout`.
    pub step_memory_bytes: u64,
    pub step_max_processes: u64,
    pub step_cpu_secs: u64,
    pub step_file_size_bytes: u64,
    pub step_open_files: u64,
    pub step_tmp_bytes: u64,
    pub step_timeout_secs: u64,
    /// Per workflow: wall time without a `timeout`, steps, highest `maxActiveSteps`, highest
    /// retry limit, shortest retry interval.
    pub workflow_timeout_secs: u64,
    pub max_steps: usize,
    pub max_active_steps_limit: u32,
    pub max_retries: u32,
    pub min_retry_interval_secs: u64,
    /// Most runs of a repeating step, items of a `parallel` step, bytes of `files`.
    pub max_repeats: u32,
    pub max_parallel_items: usize,
    pub max_files_bytes: usize,
    /// Host ids for sandboxed steps when the server runs as root.
    pub sandbox_id_first: u32,
    pub sandbox_id_count: u32,
    /// Where secrets come from: `NAME` is the variable `{secrets_env_prefix}NAME`, else an
    /// entry of `secrets_file`; both empty means workflows cannot use secrets.
    pub secrets_env_prefix: String,
    pub secrets_file: String,
    /// Where `run` steps find sub-workflows the session does not have; empty means nowhere.
    pub workflows_dir: String,
    /// Most tokens an `llm_completion` or `agent` step's answer may have; 0 refuses such steps.
    pub model_max_tokens: u32,
}

/// The Kubiya platform; an empty key means "not configured".
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubiyaRunnerSettings {
    pub api_url: String,
    pub api_key: String,
    /// A run whose platform stream reports no step or workflow event for this long fails;
    /// heartbeats do not count.
    pub idle_timeout_secs: u64,
}

/// `auto` or a named vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderChoice {
    Auto,
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Together,
    Groq,
    Ollama,
    Offline,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 8000,
            workers: 0,
            max_body_bytes: 1024 * 1024,
            body_timeout_secs: 30,
            max_header_bytes: 32 * 1024,
            ws_request_timeout_secs: 10,
            shutdown_timeout_secs: 30,
            drain_delay_secs: 0,
            cors: CorsSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
            format: LogFormat::Pretty,
            mcp_debug: false,
        }
    }
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            name: ProviderChoice::Auto,
            model: String::new(),
            api_key: String::new(),
            base_url: String::new(),
            protocol: ProtocolChoice::Auto,
            connect_timeout_ms: 10_000,
            first_byte_timeout_ms: 60_000,
            chunk_timeout_ms: 60_000,
            total_timeout_ms: 600_000,
            max_retries: 2,
            retry_base_ms: 500,
            retry_max_ms: 8_000,
            max_connections: 10_000,
            actors: 0,
            fallbacks: Vec::new(),
        }
    }
}

impl Default for FallbackSettings {
    fn default() -> Self {
        Self {
            name: ProviderChoice::Offline,
            model: String::new(),
            api_key: String::new(),
            base_url: String::new(),
        }
    }
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            default: "local".into(),
            finished_ttl_secs: 3600,
            max_finished: 1000,
            max_log_bytes: 4 * 1024 * 1024,
            max_finished_bytes: 64 * 1024 * 1024,
            heartbeat_ms: 1000,
            lost_after_ms: 5000,
            max_concurrent_executions: 10,
            local: LocalRunnerSettings::default(),
            kubiya: KubiyaRunnerSettings::default(),
        }
    }
}

impl fmt::Debug for FallbackSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackSettings")
            .field("name", &self.name)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Default for LocalRunnerSettings {
    fn default() -> Self {
        let step = kubiya_actors::workflow::StepLimits::default();
        let workflow = kubiya_actors::workflow::WorkflowLimits::default();
        Self {
            allow_unsandboxed: false,
            allow_network: false,
            max_active_steps: 4,
            max_output_bytes: 1024 * 1024,
            http_allow: Vec::new(),
            step_memory_bytes: step.memory_bytes,
            step_max_processes: step.max_processes,
            step_cpu_secs: step.cpu_secs,
            step_file_size_bytes: step.file_size_bytes,
            step_open_files: step.open_files,
            step_tmp_bytes: step.tmp_bytes,
            step_timeout_secs: step.default_timeout.as_secs(),
            workflow_timeout_secs: workflow.default_timeout.as_secs(),
            max_steps: workflow.max_steps,
            max_active_steps_limit: workflow.max_active_steps,
            max_retries: workflow.max_retries,
            min_retry_interval_secs: workflow.min_retry_interval.as_secs(),
            max_repeats: workflow.max_repeats,
            max_parallel_items: workflow.max_parallel_items,
            max_files_bytes: workflow.max_files_bytes,
            sandbox_id_first: kubiya_actors::workflow::run::local::scheduler::DEFAULT_HOST_ID_FIRST,
            sandbox_id_count: kubiya_actors::workflow::run::local::scheduler::DEFAULT_HOST_ID_COUNT,
            secrets_env_prefix: String::new(),
            secrets_file: String::new(),
            workflows_dir: String::new(),
            model_max_tokens: 4096,
        }
    }
}

impl Default for KubiyaRunnerSettings {
    fn default() -> Self {
        Self {
            api_url: "https://api.kubiya.ai".into(),
            api_key: String::new(),
            idle_timeout_secs: 300,
        }
    }
}

impl fmt::Debug for KubiyaRunnerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubiyaRunnerSettings")
            .field("api_url", &self.api_url)
            .field("api_key", &redacted(&self.api_key))
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .finish()
    }
}

/// Keys are secrets: they never reach a log line, not even through `{:?}`.
fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("name", &self.name)
            .field("model", &self.model)
            .field("api_key", &redacted(&self.api_key))
            .field("base_url", &self.base_url)
            .field("protocol", &self.protocol)
            .field("fallbacks", &self.fallbacks)
            .finish_non_exhaustive()
    }
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// The command-line flags that override settings; `None` means "not given".
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    pub config_file: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub provider: Option<ProviderChoice>,
    pub model: Option<String>,
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    /// A desktop host's `{"mcpServers": {...}}` file (`--mcp-config`).
    pub mcp_config: Option<PathBuf>,
    pub store_url: Option<String>,
}

/// A setting that could not be accepted, ready to print as one line.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Environment variables with names of their own, and the setting each one sets.
const NAMED_ENV: [(&str, &str); 6] = [
    ("LOG_LEVEL", "log.level"),
    ("LOG_FORMAT", "log.format"),
    ("MCP_DEBUG", "log.mcp_debug"),
    ("KUBIYA_API_URL", "runner.kubiya.api_url"),
    ("KUBIYA_API_KEY", "runner.kubiya.api_key"),
    ("REDIS_URL", "store.url"),
];

impl Settings {
    /// Merges every layer; the environment is read from the process.
    pub fn load(flags: &FlagOverrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(DEFAULT_TOML));
        if let Some(path) = &flags.config_file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "invalid setting --config: `{}` is not a readable file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let named = Env::raw().only(&NAMED_ENV.map(|(var, _)| var)).map(|var| {
            NAMED_ENV
                .iter()
                .find(|(name, _)| var.as_str().eq_ignore_ascii_case(name))
                .map_or(var.as_str(), |(_, key)| key)
                .into()
        });
        // Only `KUBIYA_SECTION__KEY` names: `KUBIYA_API_KEY` and friends mean other things.
        let prefixed = Env::prefixed("KUBIYA_")
            .filter(|key| key.as_str().contains("__"))
            .split("__");
        figment = figment
            .merge(named)
            .merge(prefixed)
            .merge(Serialized::defaults(flags.as_layer()));
        if let Some(path) = &flags.mcp_config {
            let servers = read_mcp_config(path)?;
            figment = figment.merge(Serialized::defaults(
                serde_json::json!({ "mcp_servers": servers }),
            ));
        }
        let mut settings: Settings = figment.extract().map_err(describe)?;
        check_servers(&settings.mcp_servers)
            .map_err(|error| ConfigError(format!("invalid setting {error}")))?;
        settings
            .auth
            .resolve_keys(|name| std::env::var(name).ok())?;
        settings.store.check()?;
        settings.check_execution_heartbeats()?;
        settings.check_runner_limits()?;
        Ok(settings)
    }
}

impl Settings {
    /// An execution must not be declared lost between two heartbeats of a live replica.
    fn check_execution_heartbeats(&self) -> Result<(), ConfigError> {
        let runner = &self.runner;
        if runner.heartbeat_ms == 0 || runner.lost_after_ms <= runner.heartbeat_ms {
            return Err(ConfigError(format!(
                "invalid setting runner.lost_after_ms: found {} with runner.heartbeat_ms {}, expected a heartbeat above 0 and lost_after_ms above it (a few heartbeats)",
                runner.lost_after_ms, runner.heartbeat_ms
            )));
        }
        Ok(())
    }

    /// Every address range of `runner.local.http_allow` parses, and no limit is zero.
    fn check_runner_limits(&self) -> Result<(), ConfigError> {
        let local = &self.runner.local;
        for (index, range) in local.http_allow.iter().enumerate() {
            if range.parse::<ipnet::IpNet>().is_err() {
                return Err(ConfigError(format!(
                    "invalid setting runner.local.http_allow[{index}]: `{range}` is not an address range; expected CIDR like 10.0.0.0/8 or 127.0.0.1/32"
                )));
            }
        }
        let zero = [
            ("step_memory_bytes", local.step_memory_bytes == 0),
            ("step_max_processes", local.step_max_processes == 0),
            ("step_cpu_secs", local.step_cpu_secs == 0),
            ("step_file_size_bytes", local.step_file_size_bytes == 0),
            ("step_open_files", local.step_open_files == 0),
            ("step_tmp_bytes", local.step_tmp_bytes == 0),
            ("step_timeout_secs", local.step_timeout_secs == 0),
            ("workflow_timeout_secs", local.workflow_timeout_secs == 0),
            ("max_steps", local.max_steps == 0),
            ("max_active_steps_limit", local.max_active_steps_limit == 0),
            ("sandbox_id_count", local.sandbox_id_count == 0),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Err(ConfigError(format!(
                "invalid setting runner.local.{name}: found 0, expected at least 1"
            )));
        }
        if local.sandbox_id_first < 1000 {
            return Err(ConfigError(format!(
                "invalid setting runner.local.sandbox_id_first: found {}, expected ids no system account uses (at least 1000; the default is far above ordinary ids)",
                local.sandbox_id_first
            )));
        }
        Ok(())
    }
}

/// The servers of a desktop host's `mcpServers` file.
fn read_mcp_config(path: &Path) -> Result<BTreeMap<String, McpServerConfig>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigError(format!(
            "invalid setting --mcp-config: cannot read `{}`: {error}",
            path.display()
        ))
    })?;
    DesktopHostConfig::from_json(&text)
        .map(|document| document.mcp_servers)
        .map_err(|error| {
            ConfigError(format!(
                "invalid setting --mcp-config: `{}` is not an {{\"mcpServers\": {{...}}}} document: {error}",
                path.display()
            ))
        })
}

impl FlagOverrides {
    /// The flags as a partial settings tree holding only what was given.
    fn as_layer(&self) -> serde_json::Value {
        let mut server = serde_json::Map::new();
        if let Some(host) = &self.host {
            server.insert("host".into(), host.clone().into());
        }
        if let Some(port) = self.port {
            server.insert("port".into(), port.into());
        }
        let mut provider = serde_json::Map::new();
        if let Some(name) = self.provider {
            provider.insert(
                "name".into(),
                serde_json::to_value(name).unwrap_or_default(),
            );
        }
        if let Some(model) = &self.model {
            provider.insert("model".into(), model.clone().into());
        }
        if let Some(key) = &self.api_key {
            provider.insert("api_key".into(), key.clone().into());
        }
        if let Some(url) = &self.base_url {
            provider.insert("base_url".into(), url.clone().into());
        }
        let mut store = serde_json::Map::new();
        if let Some(url) = &self.store_url {
            store.insert("url".into(), url.clone().into());
        }
        serde_json::json!({ "server": server, "provider": provider, "store": store })
    }
}

/// Turns figment's error into one line: setting, value, source and what is allowed.
fn describe(error: figment::Error) -> ConfigError {
    let error = error
        .into_iter()
        .next()
        .expect("figment errors are never empty");
    let key = error.path.join(".");
    let source = error
        .metadata
        .as_ref()
        .map(|meta| match &meta.source {
            Some(figment::Source::File(path)) => format!(" in {}", path.display()),
            _ if meta.name.contains("environment") => env_name_for(&key)
                .map(|var| format!(" from environment variable {var}"))
                .unwrap_or_else(|| " from the environment".to_owned()),
            _ if meta.name.contains("Serialized") => " from the command line".to_owned(),
            _ => format!(" from {}", meta.name),
        })
        .unwrap_or_default();
    let setting = if key.is_empty() {
        "configuration".to_owned()
    } else {
        format!("setting {key}")
    };
    ConfigError(format!(
        "invalid {setting}{source}: {}",
        explain(&error.kind)
    ))
}

fn explain(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::UnknownVariant(found, allowed) => {
            format!(
                "`{found}` is not allowed; expected one of {}",
                allowed.join(", ")
            )
        }
        Kind::InvalidType(found, expected) | Kind::InvalidValue(found, expected) => {
            format!("found {found}, expected {expected}")
        }
        other => other.to_string(),
    }
}

fn env_name_for(key: &str) -> Option<String> {
    let named = NAMED_ENV
        .iter()
        .find(|(_, setting)| *setting == key)
        .map(|(var, _)| (*var).to_owned());
    named.or_else(|| {
        (!key.is_empty()).then(|| format!("KUBIYA_{}", key.replace('.', "__").to_uppercase()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_file_matches_the_built_in_defaults() {
        let from_file: Settings = Figment::new()
            .merge(Toml::string(DEFAULT_TOML))
            .extract()
            .unwrap();
        assert_eq!(from_file, Settings::default());
    }

    #[test]
    fn a_bad_level_names_the_setting_value_and_choices() {
        let err = describe(
            Figment::from(Serialized::defaults(Settings::default()))
                .merge(Toml::string("[log]\nlevel = \"loud\""))
                .extract::<Settings>()
                .unwrap_err(),
        );
        let text = err.to_string();
        assert!(text.starts_with("invalid setting log.level"), "{text}");
        assert!(text.contains("loud") && text.contains("trace"), "{text}");
    }

    #[test]
    fn mcp_servers_come_from_toml_tables() {
        let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string(
                "[mcp]\ncall_timeout_secs = 5\n[mcp_servers.fs]\ncommand = \"node\"\nargs = [\"server.js\", \"/tmp\"]\nenv = { TOKEN = \"${FS_TOKEN}\" }\n",
            ))
            .extract()
            .unwrap();
        assert_eq!(settings.mcp.call_timeout_secs, 5);
        assert_eq!(settings.mcp.max_result_bytes, 65536);
        let fs = &settings.mcp_servers["fs"];
        assert_eq!((fs.command.as_str(), fs.args.len()), ("node", 2));
        assert_eq!(fs.env["TOKEN"], "${FS_TOKEN}");
    }

    #[test]
    fn a_desktop_mcp_config_file_adds_servers_and_bad_names_are_refused() {
        let dir = std::env::temp_dir().join(format!("kubiya-mcp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        std::fs::write(
            &good,
            r#"{"mcpServers":{"everything":{"command":"node","args":["index.js","stdio"]}}}"#,
        )
        .unwrap();
        let flags = FlagOverrides {
            mcp_config: Some(good),
            ..FlagOverrides::default()
        };
        let settings = Settings::load(&flags).unwrap();
        assert_eq!(
            settings.mcp_servers["everything"].args,
            ["index.js", "stdio"]
        );

        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"mcpServers":{"a__b":{"command":"node"}}}"#).unwrap();
        let flags = FlagOverrides {
            mcp_config: Some(bad),
            ..FlagOverrides::default()
        };
        let error = Settings::load(&flags).unwrap_err().to_string();
        assert!(error.contains("mcp_servers.a__b"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn api_keys_never_show_in_debug_output() {
        let settings = ProviderSettings {
            api_key: "sk-secret".into(),
            ..Default::default()
        };
        assert!(!format!("{settings:?}").contains("sk-secret"));
        let kubiya = KubiyaRunnerSettings {
            api_key: "uk-secret".into(),
            ..Default::default()
        };
        assert!(!format!("{kubiya:?}").contains("uk-secret"));
    }

    #[test]
    fn runner_limits_are_checked() {
        let mut settings = Settings::default();
        assert!(settings.check_runner_limits().is_ok());
        settings.runner.local.http_allow = vec!["10.0.0.0/8".into(), "localhost".into()];
        let error = settings.check_runner_limits().unwrap_err().to_string();
        assert!(error.contains("runner.local.http_allow[1]"), "{error}");
        settings.runner.local.http_allow.clear();
        settings.runner.local.step_max_processes = 0;
        let error = settings.check_runner_limits().unwrap_err().to_string();
        assert!(error.contains("runner.local.step_max_processes"), "{error}");
    }

    #[test]
    fn an_execution_cannot_be_lost_between_two_heartbeats() {
        let mut settings = Settings::default();
        assert!(settings.check_execution_heartbeats().is_ok());
        settings.runner.lost_after_ms = settings.runner.heartbeat_ms;
        let error = settings
            .check_execution_heartbeats()
            .unwrap_err()
            .to_string();
        assert!(error.contains("runner.lost_after_ms"), "{error}");
        settings.runner.heartbeat_ms = 0;
        assert!(settings.check_execution_heartbeats().is_err());
    }
}
