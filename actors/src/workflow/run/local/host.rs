//! What this host can run for the local runner beyond plain commands: whether a Docker engine
//! answers and whether the run was given an HTTP client.
//! [`check_runnable_locally`](super::runnable::check_runnable_locally) reads it; the local
//! runner detects it once per run.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// The optional abilities of the local runner on this host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCapabilities {
    /// A Docker engine answers `docker version`.
    pub docker_engine: bool,
    /// The caller supplied an [`HttpStepClient`](crate::workflow::run::http::HttpStepClient).
    pub http_client: bool,
    /// A workflows directory is configured for sub-workflows.
    pub sub_workflows: bool,
    /// A provider answers `llm_completion` and `agent` steps.
    pub model_steps: bool,
}

/// How long `docker version` may take before the engine counts as unreachable.
const DOCKER_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the Docker CLI at `program` reaches a running engine.
pub async fn docker_engine_reachable(program: &Path) -> bool {
    let mut command = Command::new(program);
    command
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(DOCKER_PROBE_TIMEOUT, command.status()).await {
        Ok(Ok(status)) => status.success(),
        _ => false,
    }
}
