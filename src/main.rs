//! `kubiya`: parses the command line and runs the chosen command. Configuration problems are
//! printed as one line on stderr with exit status 2, before any server starts.
//! `kubiya mcp server` keeps stdout for the MCP protocol alone (on stdio, its default
//! transport); everything else goes to stderr.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kubiya::boundary::origin::OriginPolicy;
use kubiya::cli::{AgentArgs, Cli, Command, McpCommand, McpTransport, ServerArgs};
use kubiya::config::{FlagOverrides, Settings};
use kubiya::mcp_http::{
    McpEndpoint, WorkflowToolsSetup, serve_standalone, workflow_features, workflow_server_identity,
};
use kubiya::startup::Application;
use kubiya::tenant::Tenant;
use kubiya::{execution_setup, provider_setup, telemetry};
use kubiya::{mcp_client_cli, workflow_cli};
use kubiya_actors::limits::RateLimiter;
use kubiya_actors::limits::local::LocalLimiter;
use kubiya_actors::mcp::{McpServer, serve};
use kubiya_actors::workflow::{
    DrainExecutions, ExecutionWatcher, LocalRunner, PlainHttpClient, RunOptions,
};

/// Exit status for bad usage or configuration, as clap uses for bad flags.
const USAGE_ERROR: u8 = 2;

/// How long `kubiya mcp server` gives the runs still going to stop when it ends.
const MCP_SERVER_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// A configuration problem, said in one line on stderr before logging is set up.
#[expect(
    clippy::print_stderr,
    reason = "nothing is logging yet: stderr is where the line goes"
)]
fn usage_error(problem: impl std::fmt::Display) -> ExitCode {
    eprintln!("kubiya: {problem}");
    ExitCode::from(USAGE_ERROR)
}

fn main() -> ExitCode {
    kubiya::memory::return_large_blocks_to_the_os();
    // ring is the one crypto provider we build; clients that take the process's default (the
    // OTLP exporter's) need it installed. Only fails if one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Mcp(McpCommand::Agent(args)) => run_agent(&args),
        Command::Workflow(command) => workflow_cli::run(command),
        Command::Mcp(McpCommand::Server(args)) => run_mcp_server(&args),
        Command::Mcp(McpCommand::Client(args)) => {
            let _log_guard = telemetry::init(&kubiya::config::LogSettings {
                level: kubiya::config::LogLevel::Warn,
                ..kubiya::config::LogSettings::default()
            });
            mcp_client_cli::run(&args)
        }
    }
}

fn run_mcp_server(args: &ServerArgs) -> ExitCode {
    let flags = FlagOverrides {
        config_file: args.config.clone(),
        ..FlagOverrides::default()
    };
    let settings = match Settings::load(&flags) {
        Ok(settings) => settings,
        Err(err) => return usage_error(err),
    };
    let _log_guard = telemetry::init(&settings.log);
    let local = &settings.runner.local;
    let mut watcher_config = execution_setup::watcher_config(&settings.runner, None);
    watcher_config.local = RunOptions {
        allow_network: args.allow_network || local.allow_network,
        allow_unsandboxed: args.allow_unsandboxed || local.allow_unsandboxed,
        http_client: Some(Arc::new(PlainHttpClient {
            egress: execution_setup::egress_policy(local, None),
            ..PlainHttpClient::default()
        })),
        ..execution_setup::sandboxed_run_options(local)
    };
    watcher_config.shared = execution_setup::shared_executions(&settings.store, &settings.runner);
    let runner = LocalRunner::new(watcher_config.local.clone());
    let served = actix_web::rt::System::new().block_on(async move {
        // Runs go through the one execution registry, as in the agent server.
        let executions = ExecutionWatcher::start_on_own_arbiter(watcher_config);
        let features = workflow_features(WorkflowToolsSetup {
            runner,
            executions: executions.clone(),
            // One process: its executions are counted here.
            limiter: Arc::new(RateLimiter::Local(LocalLimiter::default())),
            default_max_running: settings.runner.max_concurrent_executions,
        });
        let served = if args.transport == McpTransport::Http {
            let endpoint = McpEndpoint::new(
                workflow_server_identity(),
                features,
                &args.host,
                OriginPolicy::default(),
                settings.server.max_body_bytes,
            );
            serve_standalone(endpoint, &args.host, args.port).await
        } else {
            tracing::info!("serving MCP on stdio");
            let server = McpServer::new(
                workflow_server_identity(),
                features(&Tenant::default_tenant()),
            );
            serve(tokio::io::stdin(), tokio::io::stdout(), server).await
        };
        // Runs still going (started with wait: false) end with the server: cancelled, and
        // their processes stopped.
        let _ = executions
            .send(DrainExecutions {
                within: MCP_SERVER_DRAIN,
            })
            .await;
        served
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "MCP server failed");
            ExitCode::FAILURE
        }
    }
}

fn run_agent(args: &AgentArgs) -> ExitCode {
    let flags = args.overrides();
    let setup = Settings::load(&flags).and_then(|settings| {
        let provider =
            provider_setup::resolve(&settings.provider, &flags, |name| std::env::var(name).ok())?;
        Ok((settings, provider))
    });
    let (settings, provider) = match setup {
        Ok(setup) => setup,
        Err(err) => return usage_error(err),
    };
    let _log_guard = telemetry::init(&settings.log);
    tracing::info!(
        provider = %provider.kind(),
        model = provider.model(),
        base_url = %provider.upstreams[0].base_url,
        fallbacks = provider.upstreams.len() - 1,
        reason = %provider.reason,
        "provider chosen"
    );

    let served = actix_web::rt::System::new().block_on(async {
        Application::build(&settings, &provider)?
            .run_until_stopped()
            .await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}
