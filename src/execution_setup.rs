//! Turns the `[runner]` settings into what the workflow runners take: the local runner's
//! [`RunOptions`] (with the real HTTP client for `http` steps when the network is allowed)
//! and the `ExecutionWatcher`'s [`WatcherConfig`] (with the Kubiya platform when a key is
//! set, and executions shared through Redis when `[store] url` is). Start-up and the
//! `kubiya workflow run` command both use it.

use std::sync::Arc;
use std::time::Duration;

use kubiya_actors::workflow::{
    AwcStepClient, HttpStepClient, KubiyaConfig, LOCAL_RUNNER, RunOptions, SharedConfig,
    WatcherConfig,
};

use crate::config::{LocalRunnerSettings, RunnerSettings, StoreSettings};

/// The local runner's options. Starts the `http` step client's arbiter when the network is
/// allowed, so it must run inside an actix system.
pub fn local_run_options(local: &LocalRunnerSettings) -> RunOptions {
    // An http step is network access too: without `allow_network` there is no client, and
    // validation tells the user how to allow it.
    let http_client = local
        .allow_network
        .then(|| Arc::new(AwcStepClient::start(local.max_output_bytes)) as Arc<dyn HttpStepClient>);
    RunOptions {
        allow_unsandboxed: local.allow_unsandboxed,
        allow_network: local.allow_network,
        max_active_steps: local.max_active_steps.max(1),
        output_limit: local.max_output_bytes,
        http_client,
        ..RunOptions::default()
    }
}

/// The watcher's configuration. Must run inside an actix system (see [`local_run_options`]).
pub fn watcher_config(runner: &RunnerSettings) -> WatcherConfig {
    let kubiya = (!runner.kubiya.api_key.trim().is_empty()).then(|| KubiyaConfig {
        max_output_bytes: runner.local.max_output_bytes,
        ..KubiyaConfig::new(runner.kubiya.api_url.trim(), runner.kubiya.api_key.trim())
    });
    let default_runner = match runner.default.trim() {
        "" => LOCAL_RUNNER.to_owned(),
        name => name.to_owned(),
    };
    WatcherConfig {
        default_runner,
        local: local_run_options(&runner.local),
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
        url: store.url.clone(),
        key_prefix: store.key_prefix.clone(),
        heartbeat: Duration::from_millis(runner.heartbeat_ms),
        lost_after: Duration::from_millis(runner.lost_after_ms),
        timeout: Duration::from_millis(store.timeout_ms),
    })
}
