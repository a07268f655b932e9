//! `kubiya mcp client`: the agent's own MCP client from a terminal, to try a server before
//! adding it to `mcpServers`. It supervises the one server given (a `URL` over streamable HTTP,
//! or a command after `--` over stdio) exactly as the agent would, prints its state and tools
//! as JSON, and with `--call` calls one tool and prints the result. Exit status: 0 done, 1 the
//! server never ran or the call failed, 2 bad arguments.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a terminal command: what it prints is its answer"
)]

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use actix::Actor;
use kubiya_actors::mcp::{
    CallTool, ElicitationPolicy, ListTools, McpAccess, McpOAuthConfig, McpServerConfig,
    McpSettings, McpSupervisor, ServerState, ServerStatuses, Shutdown,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cli::ClientArgs;

const FAILED: u8 = 1;
const USAGE_ERROR: u8 = 2;
/// The name the server's tools are namespaced under.
const SERVER: &str = "server";

pub fn run(args: &ClientArgs) -> ExitCode {
    let config = match server_config(args) {
        Ok(config) => config,
        Err(problem) => {
            eprintln!("kubiya: {problem}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let arguments = match args.arguments.as_deref().map(serde_json::from_str::<Value>) {
        None => json!({}),
        Some(Ok(arguments @ Value::Object(_))) => arguments,
        Some(_) => {
            eprintln!("kubiya: --arguments must be a JSON object");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let settings = McpSettings {
        startup_timeout_secs: args.timeout_secs,
        call_timeout_secs: args.timeout_secs,
        ..McpSettings::default()
    };
    actix_web::rt::System::new().block_on(async move {
        let servers = BTreeMap::from([(SERVER.to_owned(), config)]);
        let supervisor = McpSupervisor::new(servers, settings).start();
        let outcome = session(&supervisor, args, arguments).await;
        let _ = supervisor.send(Shutdown).await;
        match outcome {
            Ok(report) => {
                println!("{report:#}");
                ExitCode::SUCCESS
            }
            Err(report) => {
                println!("{report:#}");
                ExitCode::from(FAILED)
            }
        }
    })
}

fn server_config(args: &ClientArgs) -> Result<McpServerConfig, String> {
    let mut config = match (&args.url, args.command.split_first()) {
        (Some(url), None) => McpServerConfig::remote(url.clone()),
        (None, Some((program, rest))) => McpServerConfig::new(program.clone(), rest.to_vec()),
        _ => return Err("give a server URL, or a command after `--` (not both)".to_owned()),
    };
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("--header `{header}` is not NAME: VALUE"))?;
        config
            .headers
            .insert(name.trim().to_owned(), value.trim().to_owned());
    }
    if args.accept_elicitation_defaults {
        config.elicitation = ElicitationPolicy::AcceptDefaults;
    }
    config.oauth = args
        .oauth_client_id
        .as_ref()
        .map(|client_id| McpOAuthConfig {
            client_id: client_id.clone(),
            client_secret: args.oauth_client_secret.clone(),
            scope: args.oauth_scope.clone(),
            issuer: args.oauth_issuer.clone(),
        });
    let servers = BTreeMap::from([(SERVER.to_owned(), config.clone())]);
    kubiya_actors::mcp::check_servers(&servers).map_err(|error| error.to_string())?;
    Ok(config)
}

async fn session(
    supervisor: &actix::Addr<McpSupervisor>,
    args: &ClientArgs,
    arguments: Value,
) -> Result<Value, Value> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs.max(1));
    let status = loop {
        let statuses = supervisor.send(ServerStatuses).await.unwrap_or_default();
        let status = statuses.into_iter().next();
        match status {
            Some(status) if status.state == ServerState::Running => break status,
            Some(status) if status.state == ServerState::Failed || Instant::now() >= deadline => {
                return Err(json!({"state": status.state.as_str(), "error": status.last_error}));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let tools = supervisor
        .send(ListTools::default())
        .await
        .unwrap_or_default();
    let mut report = json!({
        "state": status.state.as_str(),
        "protocol_version": status.protocol_version,
        "tools": tools.iter().map(|tool| tool.name.trim_start_matches("server__")).collect::<Vec<_>>(),
    });
    let Some(tool) = &args.call else {
        return Ok(report);
    };
    let call = CallTool {
        tool: format!("{SERVER}__{tool}"),
        arguments,
        cancel: CancellationToken::new(),
        access: McpAccess::All,
    };
    match supervisor.send(call).await {
        Ok(Ok(output)) => {
            report["result"] = json!({"is_error": output.is_error, "content": output.content});
            if output.is_error {
                Err(report)
            } else {
                Ok(report)
            }
        }
        Ok(Err(error)) => {
            report["error"] = json!(error.to_string());
            Err(report)
        }
        Err(error) => {
            report["error"] = json!(format!("the supervisor stopped: {error}"));
            Err(report)
        }
    }
}
