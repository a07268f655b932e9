//! Escape attempts against the sandbox: the real `kubiya mcp agent` binary, started by each
//! test as the user the tests run as (root in CI) and, for a subset, as an unprivileged user
//! (`setpriv` to `nobody`), runs hostile workflows through `POST /v1/executions`. Every test
//! is one attempt and asserts that the attacker fails.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::helpers::{
    ServerProcess, blocking_get, blocking_post_json as post, eventually_blocking,
};

/// Small limits, so that bombs stop quickly.
const LIMITS: &[(&str, &str)] = &[
    ("KUBIYA_RUNNER__LOCAL__STEP_MAX_PROCESSES", "32"),
    ("KUBIYA_RUNNER__LOCAL__STEP_MEMORY_BYTES", "536870912"),
    ("KUBIYA_RUNNER__LOCAL__STEP_TMP_BYTES", "16777216"),
];

fn server(extra: &[(&str, &str)]) -> ServerProcess {
    let env: Vec<(&str, &str)> = LIMITS.iter().chain(extra).copied().collect();
    ServerProcess::start(&[], &env, None)
}

/// The server as the unprivileged `nobody`, where user namespaces allow it.
fn unprivileged_server() -> ServerProcess {
    let mut command = Command::new("setpriv");
    command
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            env!("CARGO_BIN_EXE_kubiya"),
        ])
        .env_clear();
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    ServerProcess::start_command(command, &[], LIMITS, Some(Path::new("/")))
}

fn delete(url: &str) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let _ = awc::Client::new().delete(&url).send().await;
        });
    })
    .join()
    .expect("the request thread");
}

/// Starts an execution of `steps` (run side by side) with `params`, each declared as a param
/// of the workflow; returns its id.
fn start(server: &ServerProcess, steps: Value, params: Value) -> String {
    let declared: serde_json::Map<String, Value> = params
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| (name.clone(), json!("")))
        .collect();
    let (status, _, body) = post(
        &server.url("/v1/executions"),
        &json!({
            "workflow": {"name": "attempt", "type": "graph", "params": declared, "steps": steps},
            "params": params
        }),
    );
    assert_eq!(status, 202, "{body}");
    body["execution_id"].as_str().expect("an id").to_owned()
}

/// Polls the execution until it has finished.
fn finished(server: &ServerProcess, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = blocking_get(&server.url(&format!("/v1/executions/{id}")));
        assert_eq!(status, 200, "{body}");
        if !matches!(body["status"].as_str(), Some("queued" | "running")) {
            return body;
        }
        assert!(Instant::now() < deadline, "never finished: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs one step and returns its final snapshot.
fn run_step(server: &ServerProcess, command: &str) -> Value {
    run_step_with(
        server,
        json!({"name": "attempt", "command": command}),
        json!({}),
    )
}

fn run_step_with(server: &ServerProcess, step: Value, params: Value) -> Value {
    let id = start(server, json!([step]), params);
    finished(server, &id)["steps"][0].clone()
}

fn output(step: &Value) -> &str {
    step["output"].as_str().unwrap_or_default()
}

fn error(step: &Value) -> &str {
    step["error"].as_str().unwrap_or_default()
}

/// Host processes whose command line is `words`, joined by NULs.
fn host_processes(words: &[&str]) -> Vec<u32> {
    let wanted = words.join("\0");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                String::from_utf8_lossy(&cmdline).trim_end_matches('\0') == wanted
            })
        })
        .collect()
}

/// A `sleep` argument no other process on this machine has: tests of other checkouts may run
/// the same attempts at the same time.
fn unique_sleep() -> String {
    format!("7.{}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000)
}

fn wait_for_host_process(words: &[&str]) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = host_processes(words).first() {
            return *pid;
        }
        assert!(Instant::now() < deadline, "{words:?} never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const CAPABILITIES: &str = "grep -E '^Cap(Eff|Prm|Amb)' /proc/self/status | tr -s '\\t' ' '";
const ZERO_CAPABILITIES: &str =
    "CapPrm: 0000000000000000\nCapEff: 0000000000000000\nCapAmb: 0000000000000000";

#[test]
fn a_step_has_no_capabilities() {
    let server = server(&[]);
    let step = run_step(&server, CAPABILITIES);
    assert_eq!(output(&step), ZERO_CAPABILITIES, "{step}");
}

#[test]
fn a_step_is_not_root_on_the_host() {
    let server = server(&[]);
    let marker = unique_sleep();
    let id = start(
        &server,
        json!([{"name": "sleeper", "command": format!("exec sleep {marker}")}]),
        json!({}),
    );
    let pid = wait_for_host_process(&["sleep", &marker]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uids = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .expect("a Uid line");
    let host_uids: Vec<&str> = uids.split_whitespace().collect();
    assert!(
        host_uids.iter().all(|uid| *uid != "0"),
        "the step runs as host uid {uids}"
    );
    delete(&server.url(&format!("/v1/executions/{id}")));
}

#[test]
fn remounting_the_root_read_write_fails() {
    let server = server(&[]);
    let probe = format!("escape-probe-{}", uuid::Uuid::new_v4().simple());
    let step = run_step(
        &server,
        &format!(
            "python3 -c 'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); \
             print(libc.mount(b\"/\", b\"/\", None, 32 | 4096, None), os.strerror(ctypes.get_errno()))'; \
             mount -o remount,rw,bind / 2>/dev/null; touch /{probe}"
        ),
    );
    assert_eq!(step["status"], "failed", "{step}");
    assert_eq!(output(&step), "-1 Operation not permitted", "{step}");
    assert!(!Path::new("/").join(&probe).exists());
}

#[test]
fn unmounting_tmp_or_proc_fails() {
    let server = server(&[]);
    let step = run_step(
        &server,
        "python3 -c 'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True)\n\
         for path in (b\"/tmp\", b\"/proc\"):\n    \
         print(libc.umount2(path, 2), os.strerror(ctypes.get_errno()))'",
    );
    assert_eq!(
        output(&step),
        "-1 Operation not permitted\n-1 Operation not permitted",
        "{step}"
    );
}

#[test]
fn secrets_home_directories_and_the_checkout_are_invisible() {
    let server = server(&[]);
    let checkout = env!("CARGO_MANIFEST_DIR");
    let step = run_step(
        &server,
        &format!(
            "for path in /etc/shadow /etc/gshadow /etc/sudoers /root /home /var /srv /opt /run {checkout} {checkout}/Cargo.toml; do \
             [ -e \"$path\" ] && echo \"visible: $path\"; done; echo checked"
        ),
    );
    assert_eq!(output(&step), "checked", "{step}");
}

#[test]
fn the_host_tmp_is_invisible() {
    let server = server(&[]);
    let marker =
        std::env::temp_dir().join(format!("escape-marker-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&marker, "host secret").expect("writes");
    let step = run_step(
        &server,
        &format!("cat {} 2>&1; ls -A /tmp", marker.display()),
    );
    std::fs::remove_file(&marker).expect("removes");
    let lines: Vec<&str> = output(&step).lines().collect();
    assert!(lines[0].contains("No such file or directory"), "{step}");
    assert_eq!(lines.len(), 2, "only the step's own work directory: {step}");
    assert!(lines[1].starts_with("kubiya-run-"), "{step}");
}

#[test]
fn another_executions_work_directory_is_invisible() {
    let server = server(&[]);
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let marker = unique_sleep();
    let victim = start(
        &server,
        json!([{"name": "victim", "command": format!("echo {secret} > secret; exec sleep {marker}")}]),
        json!({}),
    );
    wait_for_host_process(&["sleep", &marker]);
    let victim_dir = std::fs::read_dir(std::env::temp_dir())
        .expect("tmp")
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            std::fs::read_to_string(path.join("secret")).is_ok_and(|text| text.trim() == secret)
        })
        .expect("the victim's work directory on the host");
    let step = run_step(
        &server,
        &format!(
            "cat {}/secret 2>&1; cat /tmp/kubiya-run-*/secret 2>&1; ls -A /tmp | wc -l",
            victim_dir.display()
        ),
    );
    assert!(!output(&step).contains(&secret), "{step}");
    assert!(output(&step).ends_with("\n1"), "{step}");
    delete(&server.url(&format!("/v1/executions/{victim}")));
}

#[test]
fn proc_lists_only_the_steps_own_processes() {
    let server = server(&[]);
    let step = run_step(
        &server,
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done",
    );
    let processes: Vec<&str> = output(&step).lines().collect();
    assert!(processes.len() <= 4, "{processes:?}");
    assert!(
        processes
            .iter()
            .all(|cmdline| !cmdline.contains("mcp agent")),
        "the server is not visible: {processes:?}"
    );
}

#[test]
fn a_process_bomb_stops_at_the_process_limit() {
    let server = server(&[]);
    let marker = unique_sleep();
    let step = run_step(
        &server,
        &format!("for i in $(seq 200); do sleep {marker} & done; wait"),
    );
    assert_eq!(step["status"], "failed", "{step}");
    assert!(error(&step).contains("Cannot fork"), "{step}");
    no_processes_left(&marker);
}

#[test]
fn a_memory_bomb_stops_at_the_memory_limit() {
    let server = server(&[]);
    let step = run_step(&server, "python3 -c 'block = bytearray(1024 ** 3)'");
    assert_eq!(step["status"], "failed", "{step}");
    assert!(error(&step).contains("MemoryError"), "{step}");
}

#[test]
fn a_disk_filler_stops_at_the_tmp_size() {
    let server = server(&[]);
    let step = run_step(&server, "dd if=/dev/zero of=/tmp/fill bs=1M count=64");
    assert_eq!(step["status"], "failed", "{step}");
    assert!(error(&step).contains("No space left on device"), "{step}");
}

#[test]
fn processes_a_step_leaves_behind_are_gone_when_it_ends() {
    let server = server(&[]);
    let marker = unique_sleep();
    let step = run_step(
        &server,
        &format!("setsid sleep {marker} >/dev/null 2>&1 < /dev/null & echo left"),
    );
    assert_eq!(output(&step), "left", "{step}");
    no_processes_left(&marker);
}

/// No `sleep {marker}` process is left on the host once the sandbox has been torn down
/// (which finishes just after the step's result is reported).
fn no_processes_left(marker: &str) {
    eventually_blocking(
        "every process of the step is gone",
        Duration::from_secs(3),
        || host_processes(&["sleep", marker]).is_empty().then_some(()),
    );
}

#[test]
fn a_param_value_is_printed_literally_not_run() {
    let server = server(&[]);
    let value = "x; cat /etc/hostname; echo $(id -u)";
    let step = run_step_with(
        &server,
        json!({
            "name": "echo",
            "command": "echo ${VALUE}; echo \"${VALUE}\"; echo '${VALUE}'",
            // Met only when the check's command prints the value as it is.
            "preconditions": [{"condition": "`echo ${VALUE}`", "expected": value}]
        }),
        json!({"VALUE": value}),
    );
    assert_eq!(step["status"], "success", "{step}");
    assert_eq!(output(&step), [value; 3].join("\n"), "{step}");
}

#[test]
fn a_step_without_a_timeout_stops_at_the_default_one() {
    let server = server(&[("KUBIYA_RUNNER__LOCAL__STEP_TIMEOUT_SECS", "1")]);
    let step = run_step(&server, "sleep 30");
    assert_eq!(step["status"], "failed", "{step}");
    assert!(error(&step).contains("timed out after 1"), "{step}");
}

#[test]
fn http_steps_to_loopback_and_to_the_server_itself_are_refused() {
    let server = server(&[("KUBIYA_RUNNER__LOCAL__ALLOW_NETWORK", "true")]);
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let other_url = format!("http://{}/", other.local_addr().expect("address"));
    let own_url = server.url("/v1/executions");
    let id = start(
        &server,
        json!([
            {"name": "loopback", "executor": {"type": "http", "config": {"url": other_url}}},
            {"name": "itself", "executor": {"type": "http", "config": {
                "url": own_url, "method": "POST",
                "body": {"workflow": {"name": "nested", "steps": [{"name": "n", "command": "true"}]}}}}},
            {"name": "metadata", "executor": {"type": "http", "config": {
                "url": "http://169.254.169.254/latest/meta-data/", "timeout": 5}}}
        ]),
        json!({}),
    );
    let execution = finished(&server, &id);
    let steps = execution["steps"].as_array().expect("steps");
    assert!(
        error(&steps[0]).contains("is a loopback address"),
        "{execution}"
    );
    assert!(error(&steps[1]).contains("own listener"), "{execution}");
    assert_eq!(steps[2]["status"], "failed", "{execution}");
    assert!(!error(&steps[2]).is_empty(), "{execution}");
}

#[test]
fn retry_and_parallelism_caps_are_validation_errors() {
    let server = server(&[]);
    let (status, _, body) = post(
        &server.url("/v1/executions"),
        &json!({"workflow": {"name": "storm", "maxActiveSteps": 100000, "steps": [
            {"name": "a", "command": "false",
             "retryPolicy": {"limit": 1000000000, "intervalSec": 0}}]}}),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    for path in [
        "maxActiveSteps",
        "steps[0].retryPolicy.limit",
        "steps[0].retryPolicy.intervalSec",
    ] {
        assert!(message.contains(path), "{path} missing: {message}");
    }
}

#[test]
fn executions_beyond_the_tenants_limit_are_429_with_retry_after() {
    let server = server(&[("KUBIYA_RUNNER__MAX_CONCURRENT_EXECUTIONS", "1")]);
    let first = start(
        &server,
        json!([{"name": "long", "command": "sleep 30"}]),
        json!({}),
    );
    let (status, retry_after, body) = post(
        &server.url("/v1/executions"),
        &json!({"workflow": {"name": "second", "steps": [{"name": "s", "command": "true"}]}}),
    );
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert!(retry_after.is_some(), "no Retry-After");
    delete(&server.url(&format!("/v1/executions/{first}")));
    finished(&server, &first);
    let (status, _, body) = post(
        &server.url("/v1/executions"),
        &json!({"workflow": {"name": "third", "steps": [{"name": "s", "command": "true"}]}}),
    );
    assert_eq!(status, 202, "a finished execution frees its slot: {body}");
}

/// A chat turn cannot go around the tenant's execution limit: the run it asks for is
/// refused while the limit is taken, and the model is told why.
#[test]
fn a_chat_turn_cannot_run_past_the_tenants_execution_limit() {
    let server = server(&[("KUBIYA_RUNNER__MAX_CONCURRENT_EXECUTIONS", "1")]);
    let first = start(
        &server,
        json!([{"name": "long", "command": "sleep 30"}]),
        json!({}),
    );
    let chat = json!({"model": "kubiya-workflow-agent",
        "messages": [{"role": "user", "content": "Create and run a health check"}]});
    let (status, _, body) = post(&server.url("/v1/chat/completions"), &chat);
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"].to_string();
    assert!(
        content.contains("Too many workflow executions running"),
        "the run was not refused: {content}"
    );
    delete(&server.url(&format!("/v1/executions/{first}")));
    finished(&server, &first);
    let (status, _, body) = post(&server.url("/v1/chat/completions"), &chat);
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"].to_string();
    assert!(
        !content.contains("Too many workflow executions running"),
        "a finished execution frees its slot for a chat turn too: {content}"
    );
}

#[test]
fn as_an_unprivileged_user_a_step_is_as_confined() {
    let server = unprivileged_server();
    let step = run_step(&server, CAPABILITIES);
    assert_eq!(output(&step), ZERO_CAPABILITIES, "{step}");
    let step = run_step(
        &server,
        "for path in /etc/shadow /root /home /var; do [ -e \"$path\" ] && echo \"visible: $path\"; done; \
         python3 -c 'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); \
         print(libc.umount2(b\"/proc\", 2), os.strerror(ctypes.get_errno()))'",
    );
    assert_eq!(output(&step), "-1 Operation not permitted", "{step}");
    let value = "x; cat /etc/hostname; echo $(id -u)";
    let step = run_step_with(
        &server,
        json!({"name": "echo", "command": "echo ${VALUE}"}),
        json!({"VALUE": value}),
    );
    assert_eq!(output(&step), value, "{step}");
    let step = run_step(&server, "dd if=/dev/zero of=/tmp/fill bs=1M count=64");
    assert!(error(&step).contains("No space left on device"), "{step}");
}
