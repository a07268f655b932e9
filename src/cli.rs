//! The command line, with clap: `kubiya mcp agent` starts the server with the options the
//! original's documents show (`--provider`, `--model`, `--port`, `--host`, `--api-key`) plus
//! `--config` and `--mcp-config`; `kubiya mcp server` serves the workflow tools to an MCP host
//! over stdio; `kubiya workflow validate|run` check and run workflow files on this host. A
//! value clap cannot parse stops start-up with exit status 2.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};

use crate::config::{FlagOverrides, ProviderChoice};

#[derive(Debug, Parser)]
#[command(
    name = "kubiya",
    version,
    about = "Kubiya workflow agent: an OpenAI-compatible server that turns plain-language \
             requests into validated workflows and runs them",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Model Context Protocol tools: the agent server
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Workflow files: validate them, run them on this host
    #[command(subcommand)]
    Workflow(WorkflowCommand),
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Check a workflow file (JSON or YAML); prints every problem with its path, exits 1 if any
    Validate(ValidateArgs),
    /// Run a workflow file with the local runner, showing each step as it goes; exits 1 on failure
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The workflow file
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file
    pub file: PathBuf,

    /// A run-time param, overriding the workflow's default; repeat for more
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// Run steps without a sandbox when bubblewrap is unavailable
    #[arg(long)]
    pub allow_unsandboxed: bool,

    /// Let steps use the network (sandboxed commands and http steps)
    #[arg(long)]
    pub allow_network: bool,

    /// Configuration file (TOML) layered over the built-in defaults ([runner.local] applies)
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn parse_param(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err("expected NAME=VALUE".to_owned()),
    }
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Start the OpenAI-compatible agent server (model `kubiya-workflow-agent`)
    Agent(AgentArgs),
    /// Serve the workflow tools to an MCP host, over stdio (stdout carries only the protocol)
    /// or streamable HTTP at /mcp
    Server(ServerArgs),
    /// Connect to one MCP server as the agent would (a URL, or a command after `--`), print
    /// its tools as JSON, and optionally call one
    Client(ClientArgs),
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's streamable HTTP endpoint, e.g. https://example.com/mcp
    pub url: Option<String>,

    /// A header for a remote server, as `NAME: VALUE` (e.g. `Authorization: Bearer ${TOKEN}`);
    /// repeat for more
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// OAuth client id for a remote server that asks for authorization (client credentials
    /// grant); may be `${VAR}`
    #[arg(long, value_name = "ID")]
    pub oauth_client_id: Option<String>,

    /// The OAuth client's secret; pass it as `${VAR}` to keep it off the command line
    #[arg(long, value_name = "SECRET", requires = "oauth_client_id")]
    pub oauth_client_secret: Option<String>,

    /// Scopes to ask for (space-separated); by default those the server names
    #[arg(long, value_name = "SCOPES", requires = "oauth_client_id")]
    pub oauth_scope: Option<String>,

    /// The only authorization server the credentials may be sent to
    #[arg(long, value_name = "URL", requires = "oauth_client_id")]
    pub oauth_issuer: Option<String>,

    /// Answer the server's questions (elicitation) with the form's defaults instead of
    /// declining them
    #[arg(long)]
    pub accept_elicitation_defaults: bool,

    /// A tool to call once the server runs
    #[arg(long, value_name = "TOOL")]
    pub call: Option<String>,

    /// The tool's arguments, a JSON object
    #[arg(long, value_name = "JSON")]
    pub arguments: Option<String>,

    /// How long the start and the call may take, in seconds
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,

    /// A local server's command and arguments (stdio), after `--`
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Configuration file (TOML) layered over the built-in defaults (for logging)
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Let workflow steps use the network (they run without it by default)
    #[arg(long)]
    pub allow_network: bool,

    /// Run workflows without the bubblewrap sandbox when it is unavailable
    #[arg(long)]
    pub allow_unsandboxed: bool,

    /// How clients reach the server: stdio (a host starts it) or http (streamable HTTP at /mcp)
    #[arg(long, value_enum, default_value_t = McpTransport::Stdio)]
    pub transport: McpTransport,

    /// Port for --transport http (0 picks a free one, logged at start)
    #[arg(short = 'P', long, default_value_t = 8080, value_parser = parse_port)]
    pub port: u16,

    /// Address for --transport http; on loopback, requests must be addressed to a loopback
    /// name (DNS-rebinding protection)
    #[arg(short = 'H', long, default_value = "127.0.0.1")]
    pub host: String,
}

/// How `kubiya mcp server` is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum McpTransport {
    Stdio,
    Http,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// LLM provider; when absent, the first whose key variable is set, else `offline`
    #[arg(short = 'p', long, value_parser = PossibleValuesParser::new(
        ["openai", "anthropic", "together", "groq", "ollama", "offline"]
    ))]
    pub provider: Option<String>,

    /// Model to use; the provider's default when absent
    #[arg(short = 'm', long)]
    pub model: Option<String>,

    /// Port to listen on [default: 8000]
    #[arg(short = 'P', long, value_parser = parse_port)]
    pub port: Option<u16>,

    /// Address to listen on [default: 127.0.0.1 while auth is off, 0.0.0.0 with API keys]
    #[arg(short = 'H', long)]
    pub host: Option<String>,

    /// Provider API key; overrides the provider's key variable (e.g. OPENAI_API_KEY)
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,

    /// Provider base URL, in the vendor SDK's convention (OpenAI-style ones end in /v1)
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Shared store for replicas (sessions, turn leases, rate limits), e.g.
    /// redis://127.0.0.1:6379/0; in memory when absent (also REDIS_URL)
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// Configuration file (TOML) layered over the built-in defaults
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// MCP servers to supervise, as a desktop host's {"mcpServers": {...}} JSON file
    #[arg(long, value_name = "FILE")]
    pub mcp_config: Option<PathBuf>,
}

fn parse_port(value: &str) -> Result<u16, String> {
    value
        .parse()
        .map_err(|_| "expected a TCP port number from 0 to 65535".to_owned())
}

impl AgentArgs {
    pub fn overrides(&self) -> FlagOverrides {
        FlagOverrides {
            config_file: self.config.clone(),
            host: self.host.clone(),
            port: self.port,
            provider: self.provider.as_deref().map(|name| {
                serde_json::from_value::<ProviderChoice>(name.into())
                    .expect("clap only lets listed providers through")
            }),
            model: self.model.clone(),
            api_key: self.api_key.clone(),
            base_url: self.base_url.clone(),
            mcp_config: self.mcp_config.clone(),
            store_url: self.store.clone(),
        }
    }
}
