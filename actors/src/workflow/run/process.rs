//! Child processes for steps. Each one is spawned in its own process group with a cleared
//! environment; stdout and stderr are captured up to a size cap; a timeout or cancellation
//! stops the whole group (SIGTERM, then SIGKILL after a grace period); and when the main
//! process ends, whatever it left running in its group is killed too. Nothing outlives the
//! call, not even when the future is dropped half-way (a guard kills the group then).
//!
//! The step runner calls [`run_process`], after the sandbox has wrapped the command line and
//! added the [`Confinement`] applied here between `fork` and `exec`.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::sandbox::confinement::Confinement;

/// A command line to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub program: String,
    pub args: Vec<String>,
    /// The complete environment; nothing is inherited.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Ids, rlimits and descriptors applied before the program starts (the sandbox's).
    pub confinement: Option<Confinement>,
}

/// Bounds on one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessLimits {
    pub timeout: Option<Duration>,
    /// Bytes kept of each of stdout and stderr.
    pub output_limit: usize,
    /// How long the stop signal gets before SIGKILL.
    pub kill_grace: Duration,
    /// What a stopped process gets first (`SIGTERM`, or a step's `signalOnStop`).
    pub stop_signal: i32,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessEnd {
    Exited(i32),
    Signalled(i32),
    TimedOut,
    Cancelled,
}

/// A finished process and what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessReport {
    pub end: ProcessEnd,
    pub stdout: String,
    pub stderr: String,
}

/// Where a process's output goes as it is written, besides the capped buffers (the step
/// runner's live output, see `live_output`).
pub(crate) trait OutputSink: Send {
    /// Bytes just read from the pipe.
    fn write(&mut self, bytes: &[u8]);
    /// When [`tick`](OutputSink::tick) should be called next, if something waits.
    fn due(&self) -> Option<Instant>;
    fn tick(&mut self);
    /// The pipe is done: nothing more will be written.
    fn end(&mut self);
}

/// The sinks of a process's stdout and stderr.
pub(crate) struct OutputSinks<'a> {
    pub(crate) stdout: &'a mut dyn OutputSink,
    pub(crate) stderr: &'a mut dyn OutputSink,
}

/// How long pipes may stay open after the group is gone (a process that escaped the group,
/// e.g. through `setsid`, can hold them); after that we stop reading.
const PIPE_GRACE: Duration = Duration::from_millis(500);
/// How long to wait for a killed group's members to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(3);

/// Runs a process to its end, or until `limits.timeout` or `cancel` stops it.
pub async fn run_process(
    spec: &ProcessSpec,
    limits: &ProcessLimits,
    cancel: &CancellationToken,
) -> io::Result<ProcessReport> {
    run_process_live(spec, limits, cancel, None).await
}

/// [`run_process`], also handing the output to `sinks` as it is written.
pub(crate) async fn run_process_live(
    spec: &ProcessSpec,
    limits: &ProcessLimits,
    cancel: &CancellationToken,
    sinks: Option<OutputSinks<'_>>,
) -> io::Result<ProcessReport> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that a timeout or cancellation reaches its children too.
        .process_group(0)
        .kill_on_drop(false);
    if let Some(confinement) = spec.confinement.clone() {
        // SAFETY: `apply_in_child` makes only async-signal-safe system calls.
        unsafe {
            command.pre_exec(move || confinement.apply_in_child());
        }
    }
    let mut child = command.spawn()?;
    let pgid = child
        .id()
        .and_then(|pid| libc::pid_t::try_from(pid).ok())
        .ok_or_else(|| io::Error::other("spawned process has no pid"))?;
    let mut guard = GroupGuard { pgid, armed: true };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let ended = CancellationToken::new();
    let mut stdout_buffer = CappedBuffer::new(limits.output_limit);
    let mut stderr_buffer = CappedBuffer::new(limits.output_limit);
    let (stdout_sink, stderr_sink) = match sinks {
        Some(OutputSinks { stdout, stderr }) => (Some(stdout), Some(stderr)),
        None => (None, None),
    };
    let (end, (), ()) = tokio::join!(
        ProcessGroup {
            child: &mut child,
            pgid
        }
        .wait_and_stop(limits, cancel, &ended),
        drain(stdout, &mut stdout_buffer, stdout_sink, &ended),
        drain(stderr, &mut stderr_buffer, stderr_sink, &ended),
    );
    // On an error the guard stays armed and kills the group as it drops.
    let end = end?;
    guard.armed = false;
    Ok(ProcessReport {
        end,
        stdout: stdout_buffer.into_text(),
        stderr: stderr_buffer.into_text(),
    })
}

/// A spawned process leading its own group.
struct ProcessGroup<'a> {
    child: &'a mut Child,
    pgid: libc::pid_t,
}

impl ProcessGroup<'_> {
    /// Waits for the leader to exit, or stops the group on timeout or cancellation; then
    /// kills what is left of the group, reaps it, and tells the pipe readers via `ended`.
    async fn wait_and_stop(
        self,
        limits: &ProcessLimits,
        cancel: &CancellationToken,
        ended: &CancellationToken,
    ) -> io::Result<ProcessEnd> {
        let result = self.wait_and_kill(limits, cancel).await;
        // Also on an error, so that the pipe readers never wait forever.
        ended.cancel();
        result
    }

    async fn wait_and_kill(
        self,
        limits: &ProcessLimits,
        cancel: &CancellationToken,
    ) -> io::Result<ProcessEnd> {
        let Self { child, pgid } = self;
        let deadline = limits.timeout.map(|limit| Instant::now() + limit);
        let end = tokio::select! {
            status = child.wait() => Ok(exit_end(status?)),
            () = sleep_until_some(deadline) => Err(ProcessEnd::TimedOut),
            () = cancel.cancelled() => Err(ProcessEnd::Cancelled),
        };
        let end = match end {
            Ok(end) => end,
            Err(stopped) => {
                stop(pgid, limits.stop_signal).await;
                if timeout(limits.kill_grace, child.wait()).await.is_err() {
                    tracing::debug!(
                        pgid,
                        signal = limits.stop_signal,
                        "process group ignored the stop signal; sending SIGKILL"
                    );
                }
                stopped
            }
        };
        // Whatever the step left running in its group goes with it.
        signal_group(pgid, libc::SIGKILL);
        child.wait().await?;
        wait_group_gone(pgid).await;
        Ok(end)
    }
}

fn exit_end(status: ExitStatus) -> ProcessEnd {
    match (status.code(), status.signal()) {
        (Some(code), _) => ProcessEnd::Exited(code),
        (None, Some(signal)) => ProcessEnd::Signalled(signal),
        (None, None) => ProcessEnd::Exited(-1),
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Sends `signal` to every process in the group; a group already gone is fine.
/// Sends the stop signal where it can be handled: to the step's own processes. A sandboxed
/// step runs in a session of its own under bubblewrap, which would die of the signal and take
/// the step with it by SIGKILL; so the processes below the group leader that are not
/// bubblewrap get it, and the group only when there are none (an unsandboxed step).
async fn stop(pgid: libc::pid_t, signal: libc::c_int) {
    let targets = tokio::task::spawn_blocking(move || step_processes(pgid))
        .await
        .unwrap_or_default();
    if targets.is_empty() {
        signal_group(pgid, signal);
        return;
    }
    for pid in targets {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The descendants of `root` that are not bubblewrap, from `/proc`.
fn step_processes(root: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut parents: Vec<(libc::pid_t, libc::pid_t, bool)> = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses, so split at the last `)`.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let is_bwrap = head.ends_with("(bwrap");
        let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|ppid| ppid.parse().ok())
        else {
            continue;
        };
        parents.push((pid, ppid, is_bwrap));
    }
    let mut tree = vec![root];
    let mut targets = Vec::new();
    let mut index = 0;
    while let Some(&parent) = tree.get(index) {
        index += 1;
        for &(pid, ppid, is_bwrap) in &parents {
            if ppid == parent && !tree.contains(&pid) {
                tree.push(pid);
                if !is_bwrap {
                    targets.push(pid);
                }
            }
        }
    }
    targets
}

pub(crate) fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names a group.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether any process of the group still exists (zombies included).
pub(crate) fn group_exists(pgid: libc::pid_t) -> bool {
    // SAFETY: as above; signal 0 only checks for existence.
    let result = unsafe { libc::kill(-pgid, 0) };
    result == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Waits until the killed group's members have been reaped (orphans are reaped by init).
async fn wait_group_gone(pgid: libc::pid_t) {
    let give_up = Instant::now() + REAP_WAIT;
    while group_exists(pgid) {
        if Instant::now() >= give_up {
            tracing::warn!(pgid, "process group still present after SIGKILL");
            return;
        }
        sleep(Duration::from_millis(10)).await;
    }
}

/// Reads a pipe into `buffer` (and `sink`) until EOF, or until shortly after the process
/// ended.
async fn drain<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    buffer: &mut CappedBuffer,
    mut sink: Option<&mut dyn OutputSink>,
    ended: &CancellationToken,
) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let grace = async {
        ended.cancelled().await;
        sleep(PIPE_GRACE).await;
    };
    tokio::pin!(grace);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let due = sink.as_ref().and_then(|sink| sink.due());
        tokio::select! {
            read = pipe.read(&mut chunk) => match read {
                Ok(0) | Err(_) => break,
                Ok(count) => {
                    buffer.push(&chunk[..count]);
                    if let Some(sink) = sink.as_mut() {
                        sink.write(&chunk[..count]);
                    }
                }
            },
            () = sleep_until_some(due) => {
                if let Some(sink) = sink.as_mut() {
                    sink.tick();
                }
            }
            () = &mut grace => break,
        }
    }
    if let Some(sink) = sink {
        sink.end();
    }
}

/// Kills the group if the future running it is dropped before the process was dealt with.
struct GroupGuard {
    pgid: libc::pid_t,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, libc::SIGKILL);
        }
    }
}

/// Keeps the first `limit` bytes and counts the rest.
#[derive(Debug)]
pub(crate) struct CappedBuffer {
    limit: usize,
    kept: Vec<u8>,
    omitted: usize,
}

impl CappedBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            kept: Vec::new(),
            omitted: 0,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let room = self.limit.saturating_sub(self.kept.len());
        let taken = room.min(bytes.len());
        self.kept.extend_from_slice(&bytes[..taken]);
        self.omitted += bytes.len() - taken;
    }

    /// The text, with a note saying how much was cut.
    pub(crate) fn into_text(self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.omitted > 0 {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "[output truncated: {} more bytes not shown]",
                self.omitted
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "sh".to_owned(),
            args: vec!["-c".to_owned(), script.to_owned()],
            env: vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())],
            cwd: std::env::temp_dir(),
            confinement: None,
        }
    }

    fn limits() -> ProcessLimits {
        ProcessLimits {
            timeout: None,
            output_limit: 1024,
            kill_grace: Duration::from_millis(200),
            stop_signal: libc::SIGTERM,
        }
    }

    #[tokio::test]
    async fn captures_output_and_exit_code() {
        let report = run_process(
            &shell("echo out; echo err >&2; exit 3"),
            &limits(),
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
        assert_eq!(report.end, ProcessEnd::Exited(3));
        assert_eq!(report.stdout, "out\n");
        assert_eq!(report.stderr, "err\n");
    }

    #[tokio::test]
    async fn environment_is_only_what_was_given() {
        let mut spec = shell("env");
        spec.env.push(("ONLY".to_owned(), "this".to_owned()));
        let report = run_process(&spec, &limits(), &CancellationToken::new())
            .await
            .expect("runs");
        let names: Vec<&str> = report
            .stdout
            .lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .filter(|name| !["PWD", "SHLVL", "_"].contains(name))
            .collect();
        assert_eq!(names, ["PATH", "ONLY"]);
    }

    #[tokio::test]
    async fn output_beyond_the_cap_is_cut_with_a_note() {
        let mut limits = limits();
        limits.output_limit = 10;
        let report = run_process(
            &shell("printf '0123456789abcdef'"),
            &limits,
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
        assert_eq!(
            report.stdout,
            "0123456789\n[output truncated: 6 more bytes not shown]"
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let mut limits = limits();
        limits.timeout = Some(Duration::from_millis(300));
        let report = run_process(
            &shell("sleep 300 & echo $$; sleep 300"),
            &limits,
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
        assert_eq!(report.end, ProcessEnd::TimedOut);
        let pgid: libc::pid_t = report
            .stdout
            .trim()
            .parse()
            .expect("the shell printed its pid");
        assert!(!group_exists(pgid), "process group {pgid} survived");
    }

    #[tokio::test]
    async fn leftovers_of_a_finished_process_are_killed() {
        // The background sleep holds stdout open; the run must still end promptly.
        let report = run_process(
            &shell("sleep 300 & echo $$"),
            &limits(),
            &CancellationToken::new(),
        )
        .await
        .expect("runs");
        assert_eq!(report.end, ProcessEnd::Exited(0));
        let pgid: libc::pid_t = report
            .stdout
            .trim()
            .parse()
            .expect("the shell printed its pid");
        assert!(!group_exists(pgid), "process group {pgid} survived");
    }
}
