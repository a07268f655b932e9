//! One MCP server's operating-system process: spawning it as the leader of its own process
//! group with an explicit environment and piped stdio, draining its stderr, signalling the
//! whole group, and reading size-capped lines. [`super::connection`] owns the process this
//! module starts; nothing here speaks the protocol.
//!
//! The group matters because servers are often launched through `npx` or `sh -c`: the real
//! server is a grandchild that a signal to our direct child would not reach.

use std::collections::VecDeque;
use std::io;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use super::config::{McpServerConfig, expand_env};

/// Inherited from our environment (as the reference SDKs do); everything else the server gets
/// is what its configuration sets.
const INHERITED_ENV: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ",
];

/// Bytes of stderr kept for status pages and crash reports.
const STDERR_TAIL_BYTES: usize = 8 * 1024;
/// Longest stderr line forwarded to the log; the rest is cut.
const STDERR_LINE_BYTES: usize = 2 * 1024;
/// stderr lines per second forwarded to the log after a burst; the rest are counted only.
const STDERR_LINES_PER_SEC: f64 = 20.0;
const STDERR_BURST: f64 = 100.0;

/// A freshly spawned server with its pipes.
pub(crate) struct SpawnedServer {
    pub child: Child,
    pub pid: u32,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Spawns `config` as a process-group leader. `lookup` reads our environment (a parameter so
/// tests can give their own).
pub(crate) fn spawn_server(
    config: &McpServerConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<SpawnedServer, String> {
    let mut command = Command::new(&config.command);
    command.args(&config.args).env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = lookup(name) {
            command.env(name, value);
        }
    }
    for (name, value) in &config.env {
        let value =
            expand_env(value, &lookup).map_err(|problem| format!("env {name} {problem}"))?;
        command.env(name, value);
    }
    if let Some(cwd) = &config.cwd {
        command.current_dir(cwd);
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A backstop for the leader if everything else fails; the group is signalled explicitly.
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start `{}`: {error}", config.command))?;
    let pid = child.id().ok_or("the server exited as it started")?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("the server's pipes were not set up".to_owned());
    };
    Ok(SpawnedServer {
        child,
        pid,
        stdin,
        stdout,
        stderr,
    })
}

/// Sends `signal` to every process in the group led by `pgid`. A group that is already gone
/// is not an error.
pub(crate) fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg only sends a signal; the group is one we created for this server.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// How a line read ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineRead {
    /// A whole line is in the buffer (terminator removed).
    Line,
    /// The line was longer than the cap: it was skipped up to its end and the buffer is empty.
    TooLong(usize),
    Eof,
}

/// Reads one `\n`-terminated line into `buf`, never holding more than `max` bytes of it. An
/// unterminated tail at EOF counts as a line.
pub(crate) async fn read_capped_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    buf.clear();
    let mut skipped = 0usize;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if skipped > 0 {
                LineRead::TooLong(skipped)
            } else if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (chunk, found_end) = match available.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&available[..end], Some(end + 1)),
            None => (available, None),
        };
        if skipped == 0 && buf.len() + chunk.len() <= max {
            buf.extend_from_slice(chunk);
        } else {
            skipped += buf.len() + chunk.len();
            buf.clear();
        }
        let consumed = found_end.unwrap_or(available.len());
        reader.consume(consumed);
        if found_end.is_some() {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(if skipped > 0 {
                LineRead::TooLong(skipped)
            } else {
                LineRead::Line
            });
        }
    }
}

/// The last few KB a server wrote to stderr, for status and crash reports.
#[derive(Debug, Default)]
pub(crate) struct StderrTail {
    bytes: VecDeque<u8>,
}

impl StderrTail {
    fn push_line(&mut self, line: &[u8]) {
        self.bytes.extend(line);
        self.bytes.push_back(b'\n');
        let excess = self.bytes.len().saturating_sub(STDERR_TAIL_BYTES);
        self.bytes.drain(..excess);
    }

    /// The last non-empty line, for a one-line error.
    pub(crate) fn last_line(&self) -> Option<String> {
        let text: Vec<u8> = self.bytes.iter().copied().collect();
        String::from_utf8_lossy(&text)
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .map(|line| line.trim().chars().take(300).collect())
    }
}

/// Reads stderr until it closes, never stopping: a full pipe would block the server in
/// `write(2)` and stall its stdout. Lines go to the log at debug, rate-limited, and into
/// `tail`.
pub(crate) async fn drain_stderr(
    server: String,
    stderr: ChildStderr,
    tail: Arc<Mutex<StderrTail>>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, stderr);
    let mut line = Vec::new();
    let mut tokens = STDERR_BURST;
    let mut refilled = Instant::now();
    let mut suppressed = 0u64;
    loop {
        let read = match read_capped_line(&mut reader, &mut line, STDERR_LINE_BYTES).await {
            Ok(LineRead::Eof) | Err(_) => break,
            Ok(read) => read,
        };
        if read != LineRead::Line {
            line.extend_from_slice(b"[long line cut]");
        }
        if let Ok(mut tail) = tail.lock() {
            tail.push_line(&line);
        }
        let now = Instant::now();
        tokens = (tokens + now.duration_since(refilled).as_secs_f64() * STDERR_LINES_PER_SEC)
            .min(STDERR_BURST);
        refilled = now;
        if tokens < 1.0 {
            suppressed += 1;
            continue;
        }
        tokens -= 1.0;
        if suppressed > 0 {
            tracing::debug!(server = %server, suppressed, "stderr lines not logged (rate limit)");
            suppressed = 0;
        }
        tracing::debug!(server = %server, line = %String::from_utf8_lossy(&line), "stderr");
    }
    if suppressed > 0 {
        tracing::debug!(server = %server, suppressed, "stderr lines not logged (rate limit)");
    }
}

/// Waits up to `within` for `exited` to report an exit; true when it did.
pub(crate) async fn wait_exited(
    exited: &mut tokio::sync::watch::Receiver<Option<String>>,
    within: Duration,
) -> bool {
    tokio::time::timeout(within, exited.wait_for(Option::is_some))
        .await
        .is_ok_and(|seen| seen.is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_skipped_whole_and_reading_goes_on() {
        let input: &[u8] = b"short\r\nxxxxxxxxxxxxxxxxxxxx\nafter\ntail";
        let mut reader = BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 8).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"short");
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 8).await.unwrap(),
            LineRead::TooLong(20)
        );
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 8).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"after");
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 8).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"tail");
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 8).await.unwrap(),
            LineRead::Eof
        );
    }

    #[test]
    fn the_stderr_tail_keeps_the_end() {
        let mut tail = StderrTail::default();
        for index in 0..2000 {
            tail.push_line(format!("line {index}").as_bytes());
        }
        assert!(tail.bytes.len() <= STDERR_TAIL_BYTES);
        assert_eq!(tail.last_line().as_deref(), Some("line 1999"));
    }
}
