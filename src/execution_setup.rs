//! Turns the `[runner]` settings into what the workflow runners take: the local runner's
//! [`RunOptions`] (with the real HTTP client for `http` steps when the network is allowed)
//! and the `ExecutionWatcher`'s [`WatcherConfig`] (with the Kubiya platform when a key is
//! set, and executions shared through Redis when `[store] url` is). Start-up and the
//! `kubiya workflow run` command both use it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kubiya_actors::provider::ProviderPool;
use kubiya_actors::workflow::run::local::StepModel;
use kubiya_actors::workflow::{
    AwcStepClient, EgressPolicy, HostIds, HttpStepClient, KubiyaConfig, LOCAL_RUNNER, RunOptions,
    SharedConfig, StepLimits, WatcherConfig, WorkflowLimits, run::local::secrets::SecretSource,
};

use crate::config::{LocalRunnerSettings, RunnerSettings, StoreSettings};

/// The local runner's options. Starts the `http` step client's arbiter when the network is
/// allowed, so it must run inside an actix system. `own_listener` is the server's address,
/// which `http` steps may never call.
pub fn local_run_options(
    local: &LocalRunnerSettings,
    own_listener: Option<SocketAddr>,
) -> RunOptions {
    // An http step is network access too: without `allow_network` there is no client, and
    // validation tells the user how to allow it.
    let http_client = local.allow_network.then(|| {
        Arc::new(AwcStepClient::start(
            local.max_output_bytes,
            egress_policy(local, own_listener),
        )) as Arc<dyn HttpStepClient>
    });
    RunOptions {
        http_client,
        ..sandboxed_run_options(local)
    }
}

/// The local runner's options without an `http` step client.
pub fn sandboxed_run_options(local: &LocalRunnerSettings) -> RunOptions {
    RunOptions {
        allow_unsandboxed: local.allow_unsandboxed,
        allow_network: local.allow_network,
        max_active_steps: local.max_active_steps.max(1),
        output_limit: local.max_output_bytes,
        step_limits: StepLimits {
            memory_bytes: local.step_memory_bytes,
            max_processes: local.step_max_processes,
            cpu_secs: local.step_cpu_secs,
            file_size_bytes: local.step_file_size_bytes,
            open_files: local.step_open_files,
            tmp_bytes: local.step_tmp_bytes,
            default_timeout: Duration::from_secs(local.step_timeout_secs),
        },
        workflow_limits: WorkflowLimits {
            default_timeout: Duration::from_secs(local.workflow_timeout_secs),
            max_steps: local.max_steps,
            max_active_steps: local.max_active_steps_limit,
            max_retries: local.max_retries,
            min_retry_interval: Duration::from_secs(local.min_retry_interval_secs),
            max_repeats: local.max_repeats,
            max_parallel_items: local.max_parallel_items,
            max_files_bytes: local.max_files_bytes,
        },
        host_ids: HostIds::new(local.sandbox_id_first, local.sandbox_id_count),
        secrets: SecretSource {
            env_prefix: Some(local.secrets_env_prefix.clone()).filter(|prefix| !prefix.is_empty()),
            file: Some(local.secrets_file.trim())
                .filter(|file| !file.is_empty())
                .map(PathBuf::from),
        },
        workflows_dir: Some(local.workflows_dir.trim())
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from),
        ..RunOptions::default()
    }
}

/// The provider `llm_completion` and `agent` steps call: the server's own pool.
pub fn step_model(local: &LocalRunnerSettings, providers: &ProviderPool) -> Option<StepModel> {
    (local.model_max_tokens > 0).then(|| StepModel {
        pool: providers.clone(),
        model: providers.model.clone(),
        max_tokens: local.model_max_tokens,
    })
}

/// Where `http` steps may connect (the ranges were checked when the settings loaded).
pub fn egress_policy(
    local: &LocalRunnerSettings,
    own_listener: Option<SocketAddr>,
) -> EgressPolicy {
    EgressPolicy {
        allowed: local
            .http_allow
            .iter()
            .filter_map(|range| range.parse().ok())
            .collect(),
        own_listener,
    }
}

/// The watcher's configuration. Must run inside an actix system (see [`local_run_options`]).
pub fn watcher_config(runner: &RunnerSettings, own_listener: Option<SocketAddr>) -> WatcherConfig {
    let kubiya = (!runner.kubiya.api_key.trim().is_empty()).then(|| KubiyaConfig {
        max_output_bytes: runner.local.max_output_bytes,
        idle_timeout: Duration::from_secs(runner.kubiya.idle_timeout_secs.max(1)),
        ..KubiyaConfig::new(runner.kubiya.api_url.trim(), runner.kubiya.api_key.trim())
    });
    let default_runner = match runner.default.trim() {
        "" => LOCAL_RUNNER.to_owned(),
        name => name.to_owned(),
    };
    WatcherConfig {
        default_runner,
        local: local_run_options(&runner.local, own_listener),
        kubiya,
        finished_ttl: Duration::from_secs(runner.finished_ttl_secs),
        max_finished: runner.max_finished,
        max_log_bytes: runner.max_log_bytes,
        max_finished_bytes: runner.max_finished_bytes,
        shared: None,
    }
}

/// Where executions are shared with other replicas: `None` without a store URL.
pub fn shared_executions(store: &StoreSettings, runner: &RunnerSettings) -> Option<SharedConfig> {
    (!store.url.is_empty()).then(|| SharedConfig {
        endpoint: store.endpoint(),
        key_prefix: store.key_prefix.clone(),
        heartbeat: Duration::from_millis(runner.heartbeat_ms),
        lost_after: Duration::from_millis(runner.lost_after_ms),
        timeout: Duration::from_millis(store.timeout_ms),
    })
}
