//! Tests of the local runner end to end: real processes, the real sandbox (bubblewrap must
//! work on the machine running them), real timing recorded in events.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio_util::sync::CancellationToken;

use super::limits::WorkflowLimits;
use super::scheduler::{LocalRunner, RunOptions, RunRequest};
use crate::workflow::dsl::model::Workflow;
use crate::workflow::run::event::{OutputStream, StepEvent};
use crate::workflow::run::http::PlainHttpClient;
use crate::workflow::run::outcome::RunOutcome;
use crate::workflow::run::process::group_exists;
use crate::workflow::run::status::{ExecutionStatus, StepStatus};

/// Options for tests: sandboxed when bubblewrap works, quick to retry and to kill.
pub(super) fn options() -> RunOptions {
    RunOptions {
        allow_unsandboxed: true,
        default_retry_interval: Duration::ZERO,
        kill_grace: Duration::from_millis(300),
        workflow_limits: WorkflowLimits {
            min_retry_interval: Duration::ZERO,
            ..WorkflowLimits::default()
        },
        ..RunOptions::default()
    }
}

/// Options that never use the sandbox, so that pids seen by steps are host pids.
fn unsandboxed_options() -> RunOptions {
    RunOptions {
        bubblewrap: PathBuf::from("/nonexistent/bwrap"),
        ..options()
    }
}

pub(super) struct Finished {
    pub(super) outcome: RunOutcome,
    pub(super) events: Vec<StepEvent>,
}

impl Finished {
    /// The step's lifecycle events: all but its live output.
    pub(super) fn events_of(&self, step: &str) -> Vec<&StepEvent> {
        self.events
            .iter()
            .filter(|event| event.step() == Some(step))
            .filter(|event| !matches!(event, StepEvent::StepOutput { .. }))
            .collect()
    }

    /// The step's live output chunks, with their streams.
    pub(super) fn live_output_of(&self, step: &str) -> Vec<(OutputStream, &str)> {
        self.events
            .iter()
            .filter_map(|event| match event {
                StepEvent::StepOutput {
                    step: of,
                    stream,
                    text,
                    ..
                } if of == step => Some((*stream, text.as_str())),
                _ => None,
            })
            .collect()
    }

    pub(super) fn kinds_of(&self, step: &str) -> Vec<&'static str> {
        self.events_of(step)
            .iter()
            .map(|event| event.kind())
            .collect()
    }

    pub(super) fn status_of(&self, step: &str) -> StepStatus {
        self.outcome.steps[step].status
    }

    /// Fails the test, showing every event, unless the run succeeded.
    pub(super) fn assert_succeeded(&self) {
        assert_eq!(
            self.outcome.status,
            ExecutionStatus::Success,
            "{:#?}",
            self.events
        );
    }

    pub(super) fn output_of(&self, step: &str) -> &str {
        &self.outcome.steps[step].output
    }

    /// The output of the step's last `step_complete` event (children of `parallel` steps
    /// have events but no entry of their own in the outcome).
    pub(super) fn output_of_event(&self, step: &str) -> String {
        self.events_of(step)
            .iter()
            .rev()
            .find_map(|event| match event {
                StepEvent::StepComplete { output, .. } => Some(output.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no step_complete for {step}: {:#?}", self.events))
    }

    pub(super) fn first(&self, step: &str, kind: &str) -> &StepEvent {
        self.events_of(step)
            .into_iter()
            .find(|event| event.kind() == kind)
            .unwrap_or_else(|| panic!("no {kind} for {step}: {:#?}", self.events))
    }
}

fn collect(mut receiver: UnboundedReceiver<StepEvent>) -> Vec<StepEvent> {
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, StepEvent::WorkflowComplete { .. })),
        "the run's end is its outcome, not an event: {events:#?}"
    );
    events
}

pub(super) async fn run_workflow(
    workflow: Workflow,
    options: RunOptions,
    params: Value,
) -> Finished {
    let (events, receiver) = unbounded_channel();
    let outcome = LocalRunner::new(options)
        .run(RunRequest {
            workflow,
            params: params.as_object().cloned().unwrap_or_default(),
            events,
            cancel: CancellationToken::new(),
            library: Vec::new(),
        })
        .await;
    Finished {
        outcome,
        events: collect(receiver),
    }
}

pub(super) async fn run_json(document: Value, options: RunOptions) -> Finished {
    run_workflow(
        Workflow::from_value(document).expect("parses"),
        options,
        json!({}),
    )
    .await
}

/// Fails loudly when bubblewrap cannot sandbox here: these tests exist to prove the sandbox.
pub(super) async fn require_bubblewrap() {
    if let Err(reason) = LocalRunner::new(options()).probe_sandbox().await {
        panic!(
            "this test needs a working bubblewrap ({reason}); install it with `apt-get install -y bubblewrap`"
        );
    }
}

#[tokio::test]
async fn diamond_runs_its_middle_steps_in_parallel() {
    let finished = run_json(
        json!({"name":"diamond","type":"graph","steps":[
            {"name":"a","command":"echo start"},
            {"name":"b","command":"sleep 0.5; echo b","depends":["a"]},
            {"name":"c","command":"sleep 0.5; echo c","depends":"a"},
            {"name":"d","command":"echo end","depends":["b","c"]}]}),
        options(),
    )
    .await;
    assert_eq!(
        finished.outcome.status,
        ExecutionStatus::Success,
        "{:#?}",
        finished.events
    );
    let started = |step| finished.first(step, "step_running").timestamp();
    let completed = |step| finished.first(step, "step_complete").timestamp();
    // Both middle steps started before either finished: they overlapped.
    let first_completion = completed("b").min(completed("c"));
    assert!(started("b") < first_completion && started("c") < first_completion);
    // The same holds for the order in which events were sent.
    let position = |step: &str, kind: &str| {
        finished
            .events
            .iter()
            .position(|event| event.step() == Some(step) && event.kind() == kind)
            .expect("event present")
    };
    let first_complete_position =
        position("b", "step_complete").min(position("c", "step_complete"));
    assert!(position("b", "step_running") < first_complete_position);
    assert!(position("c", "step_running") < first_complete_position);
    assert!(started("b") >= completed("a") && started("c") >= completed("a"));
    assert!(started("d") >= completed("b").max(completed("c")));
}

#[tokio::test]
async fn max_active_steps_limits_parallelism() {
    let finished = run_json(
        json!({"name":"serial","type":"graph","maxActiveSteps":1,"steps":[
            {"name":"a","command":"sleep 0.2"},{"name":"b","command":"sleep 0.2"}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Success);
    let kinds: Vec<(&str, &str)> = finished
        .events
        .iter()
        .filter_map(|event| event.step().map(|step| (step, event.kind())))
        .collect();
    assert_eq!(
        kinds,
        [
            ("a", "step_running"),
            ("a", "step_complete"),
            ("b", "step_running"),
            ("b", "step_complete")
        ]
    );
}

#[tokio::test]
async fn outputs_params_and_env_reach_later_steps() {
    let workflow = Workflow::from_value(json!({"name":"pass","steps":[
        {"name":"greet","command":"echo 'Hello ${NAME}'","output":"GREETING"},
        {"name":"shout","command":"echo \"${GREETING}, ${LEVEL}!\"; printenv GREETING","output":"SHOUT",
         "env":{"LEVEL":"${LOG_LEVEL}-loud"}},
        {"name":"json","command":"echo '{\"items\":[{\"id\":7}]}'","output":"DATA"},
        {"name":"pick","command":"echo ${DATA.items.0.id} $EXTRA"}],
        "params":{"NAME":"world","UNUSED":{"default":"x","description":"d"}},
        "env":{"LOG_LEVEL":"info"}}))
    .expect("parses");
    let finished = run_workflow(workflow, options(), json!({"EXTRA":"given"})).await;
    assert_eq!(
        finished.outcome.status,
        ExecutionStatus::Success,
        "{:#?}",
        finished.events
    );
    assert_eq!(finished.output_of("greet"), "Hello world");
    assert_eq!(
        finished.output_of("shout"),
        "Hello world, info-loud!\nHello world"
    );
    assert_eq!(finished.output_of("pick"), "7 given");
    assert_eq!(finished.outcome.outputs["GREETING"], "Hello world");
    let StepEvent::StepComplete { output, .. } = finished.first("greet", "step_complete") else {
        unreachable!()
    };
    assert_eq!(output, "Hello world");
}

#[tokio::test]
async fn run_time_params_override_defaults_and_required_ones_are_enforced() {
    let document = json!({"name":"p","steps":[{"name":"s","command":"echo ${WHO}"}],
        "params":{"WHO":{"default":"nobody"},"TOKEN":{"required":true}}});
    let workflow = Workflow::from_value(document).expect("parses");
    let finished = run_workflow(workflow.clone(), options(), json!({})).await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    assert_eq!(
        finished.outcome.error.as_deref(),
        Some("missing required param: TOKEN")
    );
    assert!(
        finished.events.is_empty(),
        "nothing ran: {:#?}",
        finished.events
    );
    let finished = run_workflow(workflow, options(), json!({"WHO":"me","TOKEN":1})).await;
    assert_eq!(finished.output_of("s"), "me");
}

#[tokio::test]
async fn secret_params_are_masked_in_events() {
    let workflow = Workflow::from_value(json!({"name":"s","steps":[
        {"name":"leak","command":"echo token=${TOKEN}; exit 1"}],
        "params":{"TOKEN":{"secret":true,"required":true}}}))
    .expect("parses");
    let finished = run_workflow(workflow, options(), json!({"TOKEN":"hunter2-secret"})).await;
    let StepEvent::StepFailed { error, .. } = finished.first("leak", "step_failed") else {
        unreachable!()
    };
    assert!(!error.contains("hunter2"), "{error}");
    assert_eq!(finished.output_of("leak"), "token=***");
}

#[tokio::test]
async fn a_failing_step_is_retried_with_backoff_until_it_succeeds() {
    let finished = run_json(
        json!({"name":"flaky","steps":[{"name":"flaky",
            "command":"n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo attempt $n; [ $n -ge 3 ]",
            "retryPolicy":{"limit":3,"intervalSec":0.2,"backoff":true}}]}),
        options(),
    )
    .await;
    assert_eq!(
        finished.outcome.status,
        ExecutionStatus::Success,
        "{:#?}",
        finished.events
    );
    assert_eq!(
        finished.kinds_of("flaky"),
        [
            "step_running",
            "step_failed",
            "step_running",
            "step_failed",
            "step_running",
            "step_complete"
        ]
    );
    let events = finished.events_of("flaky");
    let will_retry: Vec<bool> = events
        .iter()
        .filter_map(|event| match event {
            StepEvent::StepFailed { will_retry, .. } => Some(*will_retry),
            _ => None,
        })
        .collect();
    assert_eq!(will_retry, [true, true]);
    // The waits before the second and third attempts: 0.2 s, then doubled.
    assert!(events[2].timestamp() - events[1].timestamp() >= 200);
    assert!(events[4].timestamp() - events[3].timestamp() >= 400);
    assert_eq!(finished.outcome.steps["flaky"].attempts, 3);
    assert_eq!(finished.output_of("flaky"), "attempt 3");
}

#[tokio::test]
async fn retries_run_out_and_the_run_fails() {
    let finished = run_json(
        json!({"name":"broken","steps":[{"name":"broken","command":"echo oops >&2; exit 3","retries":1}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    assert_eq!(
        finished.outcome.error.as_deref(),
        Some("step 'broken' failed: exit status 3: oops")
    );
    let step = &finished.outcome.steps["broken"];
    assert_eq!((step.attempts, step.exit_code), (2, Some(3)));
    let last = finished
        .events_of("broken")
        .into_iter()
        .last()
        .expect("events");
    assert!(matches!(
        last,
        StepEvent::StepFailed {
            will_retry: false,
            ..
        }
    ));
}

#[tokio::test]
async fn failures_skip_dependents_unless_continue_on_tolerates_them() {
    let finished = run_json(
        json!({"name":"c","type":"graph","steps":[
            {"name":"bad","command":"exit 1"},
            {"name":"after-bad","command":"echo no","depends":["bad"]},
            {"name":"tolerated","command":"exit 2","continueOn":{"failure":true}},
            {"name":"after-tolerated","command":"echo yes","depends":["tolerated"]},
            {"name":"independent","command":"echo fine"}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    assert_eq!(finished.status_of("after-bad"), StepStatus::Skipped);
    let StepEvent::StepSkipped { reason, .. } = finished.first("after-bad", "step_skipped") else {
        unreachable!()
    };
    assert_eq!(reason, "dependency 'bad' failed");
    assert_eq!(finished.status_of("tolerated"), StepStatus::Failed);
    assert_eq!(finished.output_of("after-tolerated"), "yes");
    assert_eq!(finished.output_of("independent"), "fine");

    let finished = run_json(
        json!({"name":"m","steps":[
            {"name":"soft","command":"echo partial; exit 1","continueOn":{"failure":true,"markSuccess":true}},
            {"name":"next","command":"echo next"}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Success);
    assert_eq!(finished.status_of("soft"), StepStatus::Success);
    assert_eq!(finished.kinds_of("soft"), ["step_running", "step_complete"]);
    assert_eq!(finished.output_of("next"), "next");
}

#[tokio::test]
async fn unmet_preconditions_skip_the_step_and_its_dependents() {
    let finished = run_json(
        json!({"name":"pre","type":"graph","steps":[
            {"name":"probe","command":"echo no","output":"READY"},
            {"name":"gated","command":"echo ran","depends":["probe"],
             "preconditions":[{"condition":"${READY}","expected":"yes"}]},
            {"name":"after-gated","command":"echo ran","depends":["gated"]},
            {"name":"tolerant","command":"echo ran","depends":["gated-ok"]},
            {"name":"gated-ok","command":"echo ran","depends":["probe"],
             "preconditions":[{"condition":"${READY}","expected":"no"},"test -n \"${READY}\"",
                              {"condition":"`echo ${READY}`","expected":"no"}]},
            {"name":"gated-cmd","command":"echo ran","preconditions":["test -f missing-file"],
             "continueOn":{"skipped":true}},
            {"name":"after-cmd","command":"echo ran","depends":["gated-cmd"]}]}),
        options(),
    )
    .await;
    assert_eq!(
        finished.outcome.status,
        ExecutionStatus::Success,
        "{:#?}",
        finished.events
    );
    let StepEvent::StepSkipped { reason, .. } = finished.first("gated", "step_skipped") else {
        unreachable!()
    };
    assert_eq!(
        reason,
        "precondition not met: \"${READY}\" is \"no\", expected \"yes\""
    );
    assert_eq!(finished.status_of("after-gated"), StepStatus::Skipped);
    assert_eq!(finished.output_of("gated-ok"), "ran");
    assert_eq!(finished.output_of("tolerant"), "ran");
    assert_eq!(finished.status_of("gated-cmd"), StepStatus::Skipped);
    assert_eq!(finished.output_of("after-cmd"), "ran");
}

#[tokio::test]
async fn a_step_timeout_fails_the_step() {
    let finished = run_json(
        json!({"name":"slow","steps":[{"name":"slow","command":"sleep 30","timeout":1}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    let step = &finished.outcome.steps["slow"];
    assert_eq!(step.status, StepStatus::Failed);
    assert_eq!(step.error.as_deref(), Some("timed out after 1.0s"));
    assert!(step.duration < Duration::from_secs(10));
}

#[tokio::test]
async fn a_workflow_timeout_stops_everything() {
    let finished = run_json(
        json!({"name":"slow","timeout":1,"steps":[
            {"name":"long","command":"sleep 30"},{"name":"later","command":"echo never"}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    assert_eq!(
        finished.outcome.error.as_deref(),
        Some("the workflow timed out after 1.0s")
    );
    assert_eq!(finished.status_of("long"), StepStatus::Cancelled);
    assert_eq!(finished.status_of("later"), StepStatus::Skipped);
    assert_eq!(finished.kinds_of("later"), ["step_skipped"]);
    assert!(finished.outcome.duration < Duration::from_secs(10));
}

/// Waits (bounded) until `check` holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn cancellation_kills_the_whole_process_group() {
    let options = RunOptions {
        keep_work_dir: true,
        ..unsandboxed_options()
    };
    let workflow = Workflow::from_value(json!({"name":"cancel","steps":[
        {"name":"sleepy","command":"sleep 300 & echo $$ > pgid.tmp && mv pgid.tmp pgid; sleep 300"}]}))
    .expect("parses");
    let (events, mut receiver) = unbounded_channel();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            LocalRunner::new(options)
                .run(RunRequest {
                    workflow,
                    params: serde_json::Map::new(),
                    events,
                    cancel,
                    library: Vec::new(),
                })
                .await
        }
    });
    let first = receiver.recv().await.expect("an event");
    let StepEvent::StepRunning { message, .. } = &first else {
        panic!("expected step_running, got {first:?}");
    };
    assert_eq!(message, "running unsandboxed: bubblewrap not found");
    // The step records its process group in its work directory.
    let pgid_file = eventually_file(std::env::temp_dir(), "pgid").await;
    let pgid: libc::pid_t = tokio::fs::read_to_string(&pgid_file)
        .await
        .expect("pgid file")
        .trim()
        .parse()
        .expect("a pid");
    assert!(group_exists(pgid));
    cancel.cancel();
    let outcome = run.await.expect("run finished");
    assert_eq!(outcome.status, ExecutionStatus::Cancelled);
    assert_eq!(outcome.steps["sleepy"].status, StepStatus::Cancelled);
    assert!(
        !group_exists(pgid),
        "process group {pgid} survived the cancellation"
    );
    // The run's end is its outcome's, even when cancelled.
    collect(receiver);
    if let Some(work_dir) = outcome.work_dir {
        tokio::fs::remove_dir_all(work_dir).await.expect("cleanup");
    }
}

/// The `kubiya-run-*/<file>` under `root` that names a live process group.
async fn eventually_file(root: PathBuf, file: &str) -> PathBuf {
    let mut found = None;
    eventually("the step wrote its pid", async || {
        let Ok(mut entries) = tokio::fs::read_dir(&root).await else {
            return false;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let candidate = entry.path().join(file);
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("kubiya-run-")
                && tokio::fs::try_exists(&candidate).await.unwrap_or(false)
            {
                // Another test's run could match too; prefer a file whose group is alive.
                if let Ok(text) = tokio::fs::read_to_string(&candidate).await
                    && let Ok(pgid) = text.trim().parse::<libc::pid_t>()
                    && group_exists(pgid)
                {
                    found = Some(candidate);
                    return true;
                }
            }
        }
        false
    })
    .await;
    found.expect("found")
}

/// Pids of processes whose command line contains `marker`.
async fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir("/proc").await else {
        return found;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|byte| byte.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = tokio::fs::read(entry.path().join("cmdline")).await {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) && !cmdline.contains("bwrap") && !cmdline.contains("sh -c")
            {
                found.push(name);
            }
        }
    }
    found
}

#[tokio::test]
async fn cancellation_inside_the_sandbox_leaves_no_process_behind() {
    require_bubblewrap().await;
    // An unusual duration marks this test's processes in /proc.
    let marker = "sleep 3133.71";
    let workflow = Workflow::from_value(json!({"name":"cancel","steps":[
        {"name":"sleepy","command":format!("{marker} & {marker}")}]}))
    .expect("parses");
    let (events, receiver) = unbounded_channel();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            LocalRunner::new(options())
                .run(RunRequest {
                    workflow,
                    params: serde_json::Map::new(),
                    events,
                    cancel,
                    library: Vec::new(),
                })
                .await
        }
    });
    eventually("both sleeps are running", async || {
        processes_with(marker).await.len() == 2
    })
    .await;
    cancel.cancel();
    let outcome = run.await.expect("run finished");
    assert_eq!(outcome.status, ExecutionStatus::Cancelled);
    assert!(outcome.sandboxed);
    // The sandbox's pid namespace is torn down with it; give the kernel a moment to reap.
    eventually("no sleep is left", async || {
        processes_with(marker).await.is_empty()
    })
    .await;
    collect(receiver);
}

#[tokio::test]
async fn the_sandbox_denies_network_and_writes_outside_the_work_directory() {
    require_bubblewrap().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let port = listener.local_addr().expect("address").port();
    // Writable on the host and outside /tmp (which the sandbox replaces), wherever the
    // repository itself lives: only the sandbox can make this write fail.
    let outside =
        PathBuf::from("/var/tmp").join(format!("sandbox-probe-{}", uuid::Uuid::new_v4().simple()));
    let in_tmp =
        std::env::temp_dir().join(format!("sandbox-probe-{}", uuid::Uuid::new_v4().simple()));
    let system = PathBuf::from("/usr/local")
        .join(format!("sandbox-probe-{}", uuid::Uuid::new_v4().simple()));
    let connect = format!(
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')\""
    );
    let document = json!({"name":"jail","type":"graph","steps":[
        {"name":"network","command":connect},
        {"name":"outside","command":format!("touch {}", outside.display())},
        {"name":"system","command":format!("touch {}", system.display())},
        {"name":"tmp","command":format!("echo x > {} && cat {}", in_tmp.display(), in_tmp.display())},
        {"name":"inside","command":"mkdir -p sub && echo hi > sub/file && cat sub/file && pwd && echo $HOME"},
        {"name":"env","command":"env | cut -d= -f1 | sort | tr '\\n' ' '"}]});
    let finished = run_json(document.clone(), options()).await;
    assert!(finished.outcome.sandboxed);
    assert_eq!(finished.status_of("network"), StepStatus::Failed);
    let network_error = finished.outcome.steps["network"]
        .error
        .clone()
        .unwrap_or_default();
    assert!(
        network_error.contains("Connection refused") || network_error.contains("unreachable"),
        "{network_error}"
    );
    assert_eq!(finished.status_of("outside"), StepStatus::Failed);
    // /var is not in the sandbox at all; /usr is, read-only.
    assert!(
        finished.outcome.steps["outside"]
            .error
            .as_deref()
            .is_some_and(|error| error.contains("No such file or directory")),
        "{:?}",
        finished.outcome.steps["outside"]
    );
    assert!(!tokio::fs::try_exists(&outside).await.expect("stat"));
    assert!(
        finished.outcome.steps["system"]
            .error
            .as_deref()
            .is_some_and(|error| error.contains("Read-only file system")),
        "{:?}",
        finished.outcome.steps["system"]
    );
    assert!(!tokio::fs::try_exists(&system).await.expect("stat"));
    // /tmp inside is private: the write works there and never reaches the host.
    assert_eq!(finished.output_of("tmp"), "x");
    assert!(!tokio::fs::try_exists(&in_tmp).await.expect("stat"));
    let inside: Vec<&str> = finished.output_of("inside").lines().collect();
    assert_eq!(inside[0], "hi");
    assert!(
        inside[1].contains("kubiya-run-") && inside[1] == inside[2],
        "{inside:?}"
    );
    assert_eq!(finished.output_of("env"), "HOME PATH PWD");

    let allowed = RunOptions {
        allow_network: true,
        ..options()
    };
    let finished = run_json(document, allowed).await;
    assert_eq!(finished.output_of("network"), "connected");
    drop(listener);
}

#[tokio::test]
async fn an_unsandboxed_step_of_a_root_server_is_still_not_root_and_still_limited() {
    let finished = run_json(
        json!({"name":"w","steps":[{"name":"who",
            "command":"id -u; grep 'Max processes' /proc/self/limits | tr -s ' ' | cut -d' ' -f3"}]}),
        unsandboxed_options(),
    )
    .await;
    let lines: Vec<String> = finished
        .output_of("who")
        .lines()
        .map(str::to_owned)
        .collect();
    let limits = crate::workflow::StepLimits::default();
    assert_eq!(lines[1], limits.max_processes.to_string(), "{lines:?}");
    if crate::workflow::run::sandbox::confinement::running_as_root() {
        assert_ne!(lines[0], "0", "{lines:?}");
    }
}

#[tokio::test]
async fn without_bubblewrap_a_run_fails_unless_unsandboxed_runs_are_allowed() {
    let document = json!({"name":"w","steps":[{"name":"s","command":"echo hi"}]});
    let strict = RunOptions {
        allow_unsandboxed: false,
        ..unsandboxed_options()
    };
    let finished = run_json(document.clone(), strict).await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    assert!(finished.events.is_empty(), "{:#?}", finished.events);
    assert_eq!(
        finished.outcome.error.as_deref(),
        Some(
            "refusing to run without a sandbox: bubblewrap not found; install bubblewrap (bwrap) and allow user namespaces (see the README's security model), or allow unsandboxed runs"
        )
    );
    let finished = run_json(document, unsandboxed_options()).await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Success);
    assert!(!finished.outcome.sandboxed);
    let StepEvent::StepRunning { message, .. } = &finished.events[0] else {
        panic!("first event: {:?}", finished.events[0]);
    };
    assert_eq!(message, "running unsandboxed: bubblewrap not found");
}

#[tokio::test]
async fn invalid_or_unrunnable_workflows_fail_before_running() {
    let finished = run_json(
        json!({"name":"w","steps":[{"name":"a","command":"true","depends":["ghost"]},
            {"name":"ask","executor":{"type":"agent","config":{"agent_name":"x","message":"y"}}}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    assert!(finished.events.is_empty(), "{:#?}", finished.events);
    assert_eq!(finished.outcome.validation_errors.len(), 1);
    assert!(
        finished
            .outcome
            .error
            .as_deref()
            .is_some_and(|error| error.contains("unknown step 'ghost'"))
    );
    assert_eq!(finished.status_of("a"), StepStatus::Pending);

    let finished = run_json(
        json!({"name":"w","steps":[{"name":"ask","executor":{"type":"agent","config":{"agent_name":"x","message":"y"}}}]}),
        options(),
    )
    .await;
    assert_eq!(
        finished.outcome.validation_errors[0].path,
        "steps[0].executor.type"
    );
}

#[tokio::test]
async fn scripts_run_with_their_interpreter() {
    let finished = run_json(
        json!({"name":"scripts","steps":[
            {"name":"py","command":"python","script":"import os\nprint('py', os.environ['WHO'])","env":{"WHO":"me"}},
            {"name":"sh","script":"set -e\necho from script ${WHO:-nobody}"},
            {"name":"bash","shell":"bash","script":"arr=(a b); echo ${#arr[@]}"},
            {"name":"in-dir","command":"mkdir -p sub","output":"IGNORED"},
            {"name":"cwd","command":"pwd","dir":"sub"}]}),
        options(),
    )
    .await;
    assert_eq!(
        finished.outcome.status,
        ExecutionStatus::Success,
        "{:#?}",
        finished.events
    );
    assert_eq!(finished.output_of("py"), "py me");
    assert_eq!(finished.output_of("sh"), "from script nobody");
    assert_eq!(finished.output_of("bash"), "2");
    assert!(finished.output_of("cwd").ends_with("/sub"));
}

#[tokio::test]
async fn output_beyond_the_limit_is_truncated_with_a_note() {
    let capped = RunOptions {
        output_limit: 16,
        ..options()
    };
    let finished = run_json(
        json!({"name":"big","steps":[{"name":"big","command":"seq 1 1000"}]}),
        capped,
    )
    .await;
    let output = finished.output_of("big");
    assert!(output.starts_with("1\n2\n3\n"), "{output}");
    assert!(output.ends_with("more bytes not shown]"), "{output}");
}

#[tokio::test]
async fn http_steps_go_through_the_client() {
    let (base, server) = crate::workflow::run::http::tests::serve_once(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"status\":42}",
    )
    .await;
    let with_client = RunOptions {
        http_client: Some(Arc::new(PlainHttpClient {
            egress: crate::workflow::run::http::egress::EgressPolicy {
                allowed: vec!["127.0.0.1/32".parse().expect("a range")],
                own_listener: None,
            },
            ..PlainHttpClient::default()
        })),
        ..options()
    };
    let workflow = Workflow::from_value(json!({"name":"api","params":{"BASE":""},"steps":[
        {"name":"call","output":"REPLY","executor":{"type":"http","config":{
            "url":"${BASE}/status","method":"POST","body":{"ask":"${BASE}"}}}},
        {"name":"use","command":"echo ${REPLY.status}"}]}))
    .expect("parses");
    let finished = run_workflow(workflow.clone(), with_client, json!({"BASE": base})).await;
    assert_eq!(
        finished.outcome.status,
        ExecutionStatus::Success,
        "{:#?}",
        finished.events
    );
    assert_eq!(finished.output_of("use"), "42");
    let request = server.await.expect("server ran");
    assert!(request.starts_with("POST /status HTTP/1.1"), "{request}");
    assert!(
        request.contains("Content-Type: application/json"),
        "{request}"
    );

    let finished = run_workflow(workflow, options(), json!({"BASE": "http://127.0.0.1:9"})).await;
    assert_eq!(
        finished.outcome.validation_errors[0].path,
        "steps[0].executor.type"
    );
}

#[tokio::test]
async fn handlers_run_by_outcome() {
    let finished = run_json(
        json!({"name":"h","steps":[{"name":"a","command":"echo out","output":"OUT"}],
            "handlerOn":{"success":{"command":"echo ok ${OUT}"},"failure":{"command":"echo fail"},
                         "exit":{"command":"echo bye"}}}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Success);
    assert_eq!(
        finished.outcome.handlers.keys().collect::<Vec<_>>(),
        ["success", "exit"]
    );
    assert_eq!(finished.outcome.handlers["success"].output, "ok out");
    assert_eq!(
        finished.kinds_of("onSuccess"),
        ["step_running", "step_complete"]
    );

    let finished = run_json(
        json!({"name":"h","steps":[{"name":"a","command":"exit 1"}],
            "handlerOn":{"success":{"command":"echo ok"},"failure":{"command":"echo fail"}}}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    assert_eq!(finished.outcome.handlers["failure"].output, "fail");
}

#[tokio::test]
async fn yaml_workflows_run() {
    let yaml = "
name: from-yaml
type: graph
params:
  WHO: yaml
steps:
  - name: first
    command: echo hello ${WHO}
    output: FIRST
  - name: second
    depends: first
    command: echo \"${FIRST}!\"
";
    let workflow = Workflow::from_yaml_str(yaml).expect("parses");
    let finished = run_workflow(workflow, options(), json!({})).await;
    assert_eq!(
        finished.outcome.status,
        ExecutionStatus::Success,
        "{:#?}",
        finished.events
    );
    assert_eq!(finished.output_of("second"), "hello yaml!");
}

#[tokio::test]
async fn example_a_runs_locally() {
    let workflow =
        Workflow::from_value(crate::workflow::dsl::model::tests::example_a()).expect("parses");
    let finished = run_workflow(workflow, options(), json!({"NAME":"Kubiya"})).await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Success);
    assert_eq!(finished.output_of("print-hello"), "Hello Kubiya");
    assert!(finished.outcome.duration > Duration::ZERO);
}

#[tokio::test]
async fn a_run_cancelled_before_it_starts_runs_nothing() {
    let (events, receiver) = unbounded_channel();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let outcome = LocalRunner::new(options())
        .run(RunRequest {
            workflow: Workflow::from_value(
                json!({"name":"w","steps":[{"name":"s","command":"echo hi"}]}),
            )
            .expect("parses"),
            params: serde_json::Map::new(),
            events,
            cancel,
            library: Vec::new(),
        })
        .await;
    assert_eq!(outcome.status, ExecutionStatus::Cancelled);
    let kinds: Vec<&str> = collect(receiver).iter().map(StepEvent::kind).collect();
    assert_eq!(kinds, ["step_skipped"]);
}
