//! The command line, with clap: `kubiya mcp agent` starts the server with the options the
//! original's documents show (`--provider`, `--model`, `--port`, `--host`, `--api-key`) plus
//! `--config`. A value clap cannot parse stops start-up with exit status 2.

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
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Start the OpenAI-compatible agent server (model `kubiya-workflow-agent`)
    Agent(AgentArgs),
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

    /// Address to listen on [default: 0.0.0.0]
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
            store_url: self.store.clone(),
        }
    }
}
