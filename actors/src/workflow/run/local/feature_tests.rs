//! The DSL features beyond plain steps, run end to end on the local runner inside the
//! sandbox: `repeatPolicy` in each of its forms, `files`, `signalOnStop`, `parallel`
//! fan-out, and secrets. Each test also proves the limits hold.

use serde_json::json;

use super::tests::{options, require_bubblewrap, run_json};
use crate::workflow::run::event::{OutputStream, StepEvent};
use crate::workflow::run::status::{ExecutionStatus, StepStatus};

/// Runs `workflow`, which must fail with an error containing `expected`; the error.
async fn fails_with(
    workflow: serde_json::Value,
    options: &super::scheduler::RunOptions,
    expected: &str,
) -> String {
    let finished = run_json(workflow, options.clone()).await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    let error = finished.outcome.error.clone().unwrap_or_default();
    assert!(error.contains(expected), "{error}");
    error
}

fn runs_of(finished: &super::tests::Finished, step: &str) -> usize {
    finished
        .kinds_of(step)
        .iter()
        .filter(|kind| **kind == "step_complete")
        .count()
}

#[tokio::test]
async fn repeat_policy_with_a_limit_runs_the_step_that_many_times() {
    require_bubblewrap().await;
    let finished = run_json(
        json!({"name": "poll", "files": {"count": ""}, "steps": [
            {"name": "tick", "command": "echo x >> count; wc -l < count",
             "repeatPolicy": {"intervalSec": 0, "limit": 3}},
            {"name": "after", "command": "wc -l < count"}]}),
        options(),
    )
    .await;
    finished.assert_succeeded();
    assert_eq!(runs_of(&finished, "tick"), 3);
    assert_eq!(finished.output_of("tick"), "3");
    assert_eq!(finished.output_of("after"), "3");
    let StepEvent::StepRunning { message, .. } = &finished.events_of("tick")[2] else {
        panic!("{:#?}", finished.events);
    };
    assert!(
        message.starts_with("repeating (run 2 of at most 3)"),
        "{message}"
    );
}

#[tokio::test]
async fn repeat_policy_until_a_condition_is_expected_and_while_an_exit_code() {
    require_bubblewrap().await;
    let finished = run_json(
        json!({"name": "wait", "type": "graph", "steps": [
            {"name": "until-ready", "command": "echo x >> n; wc -l < n",
             "repeatPolicy": {"condition": "`wc -l < n`", "expected": "4", "intervalSec": 0, "limit": 5}},
            {"name": "while-busy", "command": "echo x >> m; test $(wc -l < m) -ge 2 || exit 3",
             "repeatPolicy": {"exitCode": [3], "intervalSec": 0, "limit": 5}},
            {"name": "forever", "command": "echo again",
             "repeatPolicy": {"repeat": true, "intervalSec": 0}}]}),
        super::scheduler::RunOptions {
            workflow_limits: super::limits::WorkflowLimits {
                max_repeats: 5,
                ..options().workflow_limits
            },
            ..options()
        },
    )
    .await;
    finished.assert_succeeded();
    assert_eq!(runs_of(&finished, "until-ready"), 4);
    assert_eq!(finished.output_of("until-ready"), "4");
    // The first run failed with exit code 3 and was repeated; the second succeeded.
    assert_eq!(finished.status_of("while-busy"), StepStatus::Success);
    assert_eq!(finished.outcome.steps["while-busy"].attempts, 2);
    // `repeat: true` without a limit stops at the configured most.
    assert_eq!(runs_of(&finished, "forever"), 5);
}

#[tokio::test]
async fn repeat_limits_are_validation_errors() {
    let finished = run_json(
        json!({"name": "greedy", "steps": [
            {"name": "spin", "command": "true", "repeatPolicy": {"limit": 100000, "intervalSec": 1}}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    assert_eq!(
        finished.outcome.validation_errors[0].path,
        "steps[0].repeatPolicy.limit"
    );
}

#[tokio::test]
async fn files_are_written_into_the_work_directory_and_cannot_escape_it() {
    require_bubblewrap().await;
    let finished = run_json(
        json!({"name": "with-files", "files": {
                "config.json": "{\"k\": 1}",
                "scripts/run.sh": "echo from-script"},
            "steps": [
                {"name": "read", "command": "cat config.json"},
                {"name": "script", "command": "sh scripts/run.sh"},
                {"name": "change", "command": "echo more >> config.json && wc -l < config.json"}]}),
        options(),
    )
    .await;
    finished.assert_succeeded();
    assert_eq!(finished.output_of("read"), "{\"k\": 1}");
    assert_eq!(finished.output_of("script"), "from-script");
    assert_eq!(finished.output_of("change"), "1");

    for name in [
        "/etc/cron.d/evil",
        "../escape",
        "a/../../escape",
        ".kubiya/step-0.script",
        "",
    ] {
        let finished = run_json(
            json!({"name": "escape", "files": {name: "x"},
                   "steps": [{"name": "s", "command": "true"}]}),
            options(),
        )
        .await;
        assert_eq!(finished.outcome.status, ExecutionStatus::Failed, "{name}");
        assert_eq!(
            finished.outcome.validation_errors[0].path,
            format!("files.{name}")
        );
    }
    assert!(!std::path::Path::new("/etc/cron.d/evil").exists());

    let finished = run_json(
        json!({"name": "huge", "files": {"big": "x".repeat(2 * 1024 * 1024)},
               "steps": [{"name": "s", "command": "true"}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.validation_errors[0].path, "files");
}

#[tokio::test]
async fn parallel_fans_out_over_items_with_events_per_child_and_a_concurrency_cap() {
    require_bubblewrap().await;
    let started = std::time::Instant::now();
    let finished = run_json(
        json!({"name": "fan", "type": "graph", "params": {"REGIONS": "[\"eu\", \"us\"]"}, "steps": [
            {"name": "deploy", "command": "sleep 0.4; echo \"deployed ${ITEM}\"", "output": "DEPLOYED",
             "parallel": {"items": ["a", "b", "c", "d"], "maxConcurrent": 2}},
            {"name": "report", "command": "echo \"$DEPLOYED\"", "depends": ["deploy"]},
            {"name": "regions", "command": "echo \"region ${ITEM}\"", "parallel": "${REGIONS}"}]}),
        options(),
    )
    .await;
    finished.assert_succeeded();
    // Two at a time, 0.4 s each: two rounds, not one and not four.
    let elapsed = started.elapsed().as_secs_f64();
    assert!((0.8..3.0).contains(&elapsed), "{elapsed}");
    assert_eq!(
        finished.kinds_of("deploy"),
        ["step_running", "step_complete"]
    );
    for (index, item) in ["a", "b", "c", "d"].iter().enumerate() {
        let child = format!("deploy[{index}]");
        assert_eq!(finished.kinds_of(&child), ["step_running", "step_complete"]);
        assert_eq!(finished.output_of_event(&child), format!("deployed {item}"));
    }
    assert_eq!(
        finished.output_of("deploy"),
        r#"["deployed a","deployed b","deployed c","deployed d"]"#
    );
    assert_eq!(
        finished.output_of("report"),
        r#"["deployed a","deployed b","deployed c","deployed d"]"#
    );
    assert_eq!(
        finished.output_of("regions"),
        r#"["region eu","region us"]"#
    );
}

#[tokio::test]
async fn a_failing_item_fails_the_parallel_step_and_limits_hold() {
    require_bubblewrap().await;
    let finished = run_json(
        json!({"name": "fan", "steps": [
            {"name": "check", "command": "test \"${ITEM}\" != bad", "parallel": ["ok", "bad", "ok"]},
            {"name": "after", "command": "echo never"}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    assert_eq!(finished.status_of("check"), StepStatus::Failed);
    assert_eq!(finished.status_of("after"), StepStatus::Skipped);
    let error = finished.outcome.steps["check"].error.clone().unwrap();
    assert!(
        error.starts_with("1 of 3 item(s) failed; check[1]:"),
        "{error}"
    );

    let too_many: Vec<u32> = (0..101).collect();
    for (parallel, path) in [
        (json!({"items": too_many}), "steps[0].parallel.items"),
        (
            json!({"items": [1], "maxConcurrent": 1000}),
            "steps[0].parallel.maxConcurrent",
        ),
        (json!(42), "steps[0].parallel"),
    ] {
        let finished = run_json(
            json!({"name": "greedy", "steps": [{"name": "s", "command": "true", "parallel": parallel}]}),
            options(),
        )
        .await;
        assert_eq!(finished.outcome.validation_errors[0].path, path);
    }
    // A variable's items are counted when the run reads them.
    let finished = run_json(
        json!({"name": "greedy", "params": {"MANY": (0..101).map(|n| n.to_string()).collect::<Vec<_>>().join(" ")},
               "steps": [{"name": "s", "command": "true", "parallel": "${MANY}"}]}),
        options(),
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    assert!(
        finished.outcome.steps["s"]
            .error
            .as_deref()
            .unwrap()
            .contains("at most 100"),
        "{:#?}",
        finished.outcome
    );
}

#[tokio::test]
async fn signal_on_stop_reaches_the_step_inside_the_sandbox() {
    require_bubblewrap().await;
    // The step traps SIGINT only: stopped with SIGINT (its timeout) it says so and exits.
    let trap = "trap 'echo stopped-by-INT; exit 0' INT; echo started; sleep 30 & wait";
    let finished = run_json(
        json!({"name": "graceful", "type": "graph", "steps": [
            {"name": "interrupted", "command": trap, "timeout": 1, "signalOnStop": "SIGINT"},
            {"name": "terminated", "command": trap, "timeout": 1}]}),
        super::scheduler::RunOptions {
            kill_grace: std::time::Duration::from_secs(2),
            ..options()
        },
    )
    .await;
    let interrupted = &finished.outcome.steps["interrupted"];
    assert!(
        interrupted.output.contains("stopped-by-INT"),
        "{interrupted:#?}"
    );
    let terminated = &finished.outcome.steps["terminated"];
    assert!(
        !terminated.output.contains("stopped-by-INT"),
        "{terminated:#?}"
    );
    assert_eq!(terminated.status, StepStatus::Failed);

    let finished = run_json(
        json!({"name": "bad", "steps": [
            {"name": "s", "command": "true", "signalOnStop": "SIGSTOP"}]}),
        options(),
    )
    .await;
    assert_eq!(
        finished.outcome.validation_errors[0].path,
        "steps[0].signalOnStop"
    );
}

/// Options whose secret source is a file holding `values` (JSON), kept alive by the guard.
fn with_secret_file(
    values: serde_json::Value,
) -> (super::scheduler::RunOptions, tempfile_guard::Guard) {
    let guard = tempfile_guard::Guard::new(&values.to_string());
    let options = super::scheduler::RunOptions {
        secrets: super::secrets::SecretSource {
            env_prefix: None,
            file: Some(guard.path.clone()),
        },
        ..options()
    };
    (options, guard)
}

mod tempfile_guard {
    /// A file removed when dropped.
    pub struct Guard {
        pub path: std::path::PathBuf,
    }

    impl Guard {
        pub fn new(content: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "kubiya-secrets-{}.json",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&path, content).expect("writes");
            Self { path }
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[tokio::test]
async fn secrets_reach_steps_through_env_and_get_secret_and_are_masked_everywhere() {
    require_bubblewrap().await;
    let (options, _guard) =
        with_secret_file(json!({"GH_TOKEN": "ghp-very-secret-1", "DB_PASS": "hunter22"}));
    let finished = run_json(
        json!({"name": "deploy", "env": {"DB_PASSWORD": "{{secret:DB_PASS}}"}, "steps": [
            {"name": "fetch-token", "type": "get_secret", "secret_name": "GH_TOKEN", "output": "TOKEN"},
            {"name": "use", "command": "test \"$TOKEN\" = ghp-very-secret-1 && echo \"token $TOKEN pass $DB_PASSWORD\""},
            {"name": "leak", "command": "echo \"$DB_PASSWORD\" >&2; exit 1"}]}),
        options,
    )
    .await;
    assert_eq!(
        finished.status_of("fetch-token"),
        StepStatus::Success,
        "{:#?}",
        finished.events
    );
    assert_eq!(
        finished.status_of("use"),
        StepStatus::Success,
        "{:#?}",
        finished.events
    );
    assert_eq!(finished.output_of("use"), "token *** pass ***");
    assert_eq!(finished.output_of("fetch-token"), "***");
    let everything = format!("{:?} {:?}", finished.events, finished.outcome);
    assert!(!everything.contains("ghp-very-secret-1"), "{everything}");
    assert!(!everything.contains("hunter22"), "{everything}");
}

#[tokio::test]
async fn output_streams_live_and_a_secret_split_over_two_writes_stays_masked() {
    require_bubblewrap().await;
    let (options, _guard) = with_secret_file(json!({"DB_PASS": "hunter22"}));
    // The secret is written in two parts, 300 ms apart: "hu", then "nter22".
    let finished = run_json(
        json!({"name": "live", "env": {"DB_PASSWORD": "{{secret:DB_PASS}}"}, "steps": [
            {"name": "talk", "command": "printf 'line one\\npass=%s' \"${DB_PASSWORD%??????}\"; sleep 0.3; printf '%s ok\\n' \"${DB_PASSWORD#??}\"; echo oops >&2"}]}),
        options,
    )
    .await;
    finished.assert_succeeded();
    let chunks = finished.live_output_of("talk");
    let stdout: Vec<&str> = chunks
        .iter()
        .filter(|(stream, _)| *stream == OutputStream::Stdout)
        .map(|(_, text)| *text)
        .collect();
    // The first line went out on its own, before the rest was written.
    assert_eq!(stdout, ["line one\n", "pass=*** ok\n"], "{chunks:?}");
    assert!(
        chunks.contains(&(OutputStream::Stderr, "oops\n")),
        "{chunks:?}"
    );
    assert_eq!(finished.kinds_of("talk"), ["step_running", "step_complete"]);
    // Live output comes between the step's start and its end.
    let kinds: Vec<&str> = finished.events.iter().map(StepEvent::kind).collect();
    assert_eq!(kinds[0], "step_running");
    assert_eq!(kinds.last(), Some(&"step_complete"));
    let everything = format!("{:?}", finished.events);
    assert!(
        !everything.contains("hunter22") && !everything.contains("nter22"),
        "{everything}"
    );
    assert_eq!(finished.output_of("talk"), "line one\npass=*** ok");
}

#[tokio::test]
async fn missing_secrets_and_secrets_pasted_into_commands_are_refused() {
    let (options, _guard) = with_secret_file(json!({"ONE": "value-one"}));
    for (workflow, expected) in [
        (
            json!({"name": "w", "steps": [{"name": "s", "type": "get_secret", "secret_name": "TWO"}]}),
            "secret(s) not found in the secret source: TWO",
        ),
        (
            json!({"name": "w", "steps": [{"name": "s", "command": "echo {{secret:ONE}}"}]}),
            "may only appear in env values",
        ),
    ] {
        let error = fails_with(workflow, &options, expected).await;
        assert!(!error.contains("value-one"), "{error}");
    }
    // No source configured: a clear refusal.
    let finished = run_json(
        json!({"name": "w", "steps": [{"name": "s", "type": "get_secret", "secret_name": "ONE"}]}),
        super::tests::options(),
    )
    .await;
    assert!(finished.outcome.error.unwrap().contains("no secret source"));
}

#[tokio::test]
async fn sub_workflows_run_by_name_with_params_and_nested_events() {
    require_bubblewrap().await;
    let dir = std::env::temp_dir().join(format!(
        "kubiya-workflows-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("greet.yaml"),
        "name: greet\nparams:\n  WHO: nobody\nsteps:\n  - name: hello\n    command: echo \"hello $WHO\"\n    output: GREETING\n",
    )
    .unwrap();
    // A workflow that runs itself: the depth cap stops it.
    std::fs::write(
        dir.join("forever.json"),
        r#"{"name": "forever", "steps": [{"name": "again", "run": "forever"}]}"#,
    )
    .unwrap();
    let options = super::scheduler::RunOptions {
        workflows_dir: Some(dir.clone()),
        ..options()
    };
    let finished = run_json(
        json!({"name": "parent", "params": {"TEAM": "platform"}, "steps": [
            {"name": "child", "run": "greet", "params": "WHO=${TEAM}", "output": "CHILD"},
            {"name": "after", "command": "echo \"$CHILD\""}]}),
        options.clone(),
    )
    .await;
    finished.assert_succeeded();
    assert_eq!(
        finished.kinds_of("child/hello"),
        ["step_running", "step_complete"]
    );
    assert_eq!(finished.output_of_event("child/hello"), "hello platform");
    assert_eq!(
        finished.output_of("after"),
        r#"{"GREETING":"hello platform"}"#
    );

    for (workflow, expected) in [
        (
            json!({"name": "p", "steps": [{"name": "c", "run": "forever"}]}),
            "at most 3 levels",
        ),
        (
            json!({"name": "p", "steps": [{"name": "c", "run": "../etc/passwd"}]}),
            "not a workflow name",
        ),
        (
            json!({"name": "p", "steps": [{"name": "c", "run": "missing"}]}),
            "no workflow named",
        ),
    ] {
        fails_with(workflow, &options, expected).await;
    }
    // Without a directory the step is refused before anything runs.
    let finished = run_json(
        json!({"name": "p", "steps": [{"name": "c", "run": "greet"}]}),
        super::tests::options(),
    )
    .await;
    assert_eq!(finished.outcome.validation_errors[0].path, "steps[0].run");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn docker_steps_are_refused_with_a_clear_message_when_no_engine_answers() {
    let finished = run_json(
        json!({"name": "boxed", "steps": [
            {"name": "build", "executor": {"type": "docker",
             "config": {"image": "python:3.11-slim", "content": "echo hi"}}}]}),
        super::scheduler::RunOptions {
            docker: std::path::PathBuf::from("/nonexistent/docker"),
            ..options()
        },
    )
    .await;
    assert_eq!(finished.outcome.status, ExecutionStatus::Failed);
    let problem = &finished.outcome.validation_errors[0];
    assert_eq!(problem.path, "steps[0].executor.type");
    assert!(
        problem
            .message
            .contains("docker steps need a Docker engine"),
        "{problem:?}"
    );
    assert!(
        finished.events.is_empty(),
        "nothing ran: {:#?}",
        finished.events
    );
}

/// A `docker` program for the runner: podman with the repository's container settings (runc,
/// explicit ulimits), which test machines without cgroup v2 need.
fn podman_as_docker(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let conf =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/deploy/containers.conf");
    let program = dir.join("docker");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\nCONTAINERS_CONF='{}' exec podman \"$@\"\n",
            conf.display()
        ),
    )
    .expect("writes");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    program
}

#[tokio::test]
async fn docker_steps_run_in_a_container_through_podman() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The base image the deployment tests use, made once without a registry.
    let made = tokio::process::Command::new("bash")
        .arg(root.join("tests/deploy/base-image.sh"))
        .status()
        .await
        .expect("bash runs");
    assert!(
        made.success(),
        "no base image: this test needs podman and debootstrap (`make deploy-deps`)"
    );
    let dir = std::env::temp_dir().join(format!("kubiya-podman-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let finished = run_json(
        json!({"name": "boxed", "params": {"WHO": "podman"}, "files": {"note.txt": "from the work directory\n"}, "steps": [
            {"name": "build", "output": "BUILT", "executor": {"type": "docker", "config": {
                "image": "localhost/debian:bookworm",
                "content": "echo \"hello from $WHO\"; cat note.txt; id -u; cat /proc/self/status | grep CapEff"}}},
            {"name": "after", "command": "echo \"$BUILT\" | head -n 1"}]}),
        super::scheduler::RunOptions {
            docker: podman_as_docker(&dir),
            ..options()
        },
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    finished.assert_succeeded();
    let output = finished.output_of("build");
    assert!(
        output.starts_with("hello from podman\nfrom the work directory\n"),
        "{output}"
    );
    // Every capability dropped, even for the container's root.
    assert!(output.ends_with("CapEff:\t0000000000000000"), "{output}");
    assert_eq!(finished.output_of("after"), "hello from podman");
}
