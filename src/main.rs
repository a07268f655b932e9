//! `kubiya`: parses the command line and runs the chosen command. Configuration problems are
//! printed as one line on stderr with exit status 2, before any server starts.

use std::process::ExitCode;

use clap::Parser;
use kubiya::cli::{AgentArgs, Cli, Command, McpCommand};
use kubiya::config::Settings;
use kubiya::startup::Application;
use kubiya::workflow_cli;
use kubiya::{provider_setup, telemetry};

/// Exit status for bad usage or configuration, as clap uses for bad flags.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Mcp(McpCommand::Agent(args)) => run_agent(&args),
        Command::Workflow(command) => workflow_cli::run(command),
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
        Err(err) => {
            eprintln!("kubiya: {err}");
            return ExitCode::from(USAGE_ERROR);
        }
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
