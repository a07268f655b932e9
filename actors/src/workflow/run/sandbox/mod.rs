//! The sandbox steps run in: bubblewrap (`bwrap`) with a minimal read-only view of the host
//! ([`FsView`]: `/usr`, the system links and `/etc` without secrets), a fresh `/dev` and
//! `/proc` (a new PID namespace, so only the step's own processes are listed), a size-capped
//! private `/tmp`, and the execution's work directory (also the working directory and
//! `HOME`) as the only writable host directory. Every namespace is unshared (no network
//! unless the run allows it); the step runs as an unprivileged user in its own user
//! namespace, where it may not create another, with every capability dropped,
//! `no_new_privs`, and the seccomp filter of [`seccomp`]; `--die-with-parent` and
//! `--new-session`. When the PID namespace's first process ends, the kernel kills whatever
//! the step left behind.
//!
//! The host ids, rlimits and the filter's descriptor go in the [`Confinement`] that the
//! process layer applies to bwrap before it starts. The environment is cleared by the process
//! layer too (rather than with `--clearenv` and `--setenv`, which would put secret values on
//! bwrap's command line where `ps` shows them).
//!
//! Whether the sandbox works is decided by a probe built exactly like a step, since a
//! container may ship bwrap but forbid the namespaces it needs. The local runner probes once
//! per run and wraps every step's [`ProcessSpec`] with [`Sandbox::wrap`].

pub mod confinement;
mod seccomp;
pub mod view;

use std::io::{Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::local::limits::StepLimits;
use super::process::{ProcessEnd, ProcessLimits, ProcessSpec, run_process};
use confinement::Confinement;
use seccomp::compiled_filter;
use view::FsView;

/// The uid and gid a step has inside its sandbox.
const INNER_ID: &str = "1000";

/// How steps of a run are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// Steps run inside bubblewrap.
    Bubblewrap(Arc<Bubblewrap>),
    /// Steps run directly on the host (only when unsandboxed runs are allowed), still as
    /// their own host user when the server is root, and with the step limits; `reason` says
    /// why (shown to the user).
    Unsandboxed { reason: String, limits: StepLimits },
}

/// How bubblewrap builds a step's sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bubblewrap {
    pub program: PathBuf,
    pub allow_network: bool,
    pub view: FsView,
    pub limits: StepLimits,
}

/// Host ids a step runs as (root servers only): its own uid, its execution's gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepIds {
    pub uid: u32,
    pub gid: u32,
}

/// How long the probe may take before bwrap counts as unusable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Bubblewrap {
    /// Whether this sandbox can be built on this host: `Ok` or why not. `ids` are the ids a
    /// step would get, `work_dir` a directory they may use.
    pub async fn probe(&self, ids: Option<StepIds>, work_dir: &Path) -> Result<(), String> {
        let spec = ProcessSpec {
            program: "true".to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: work_dir.to_path_buf(),
            confinement: None,
        };
        let spec = self.wrap(spec, work_dir, ids)?;
        let limits = ProcessLimits {
            timeout: Some(PROBE_TIMEOUT),
            output_limit: 4096,
            kill_grace: Duration::from_millis(100),
            stop_signal: libc::SIGTERM,
        };
        let report = match run_process(&spec, &limits, &CancellationToken::new()).await {
            Ok(report) => report,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err("bubblewrap not found".to_owned());
            }
            Err(error) => return Err(format!("bubblewrap could not be started: {error}")),
        };
        match report.end {
            ProcessEnd::Exited(0) => Ok(()),
            ProcessEnd::TimedOut => Err("bubblewrap did not answer its probe in time".to_owned()),
            _ => Err(format!(
                "bubblewrap is installed but cannot create a sandbox here ({})",
                report.stderr.trim()
            )),
        }
    }

    /// `spec` as it runs in this sandbox, with `work_dir` the only writable host directory.
    fn wrap(
        &self,
        spec: ProcessSpec,
        work_dir: &Path,
        ids: Option<StepIds>,
    ) -> Result<ProcessSpec, String> {
        let filter = filter_descriptor()?;
        let work = work_dir.to_string_lossy().into_owned();
        let cwd = spec.cwd.to_string_lossy().into_owned();
        let mut args = self.view.args.clone();
        let tmp_size = self.limits.tmp_bytes.to_string();
        args.extend(
            [
                "--dev", "/dev", "--proc", "/proc", "--size", &tmp_size, "--tmpfs", "/tmp",
            ]
            .map(str::to_owned),
        );
        // After the /tmp tmpfs, so that a work directory under /tmp stays visible; then the
        // sandbox's own root is made read-only too (the mounts on it keep their modes).
        args.extend(["--bind".to_owned(), work.clone(), work]);
        args.extend(["--remount-ro", "/"].map(str::to_owned));
        args.push("--unshare-all".to_owned());
        if self.allow_network {
            args.push("--share-net".to_owned());
        }
        args.extend(
            [
                "--unshare-user",
                "--disable-userns",
                "--uid",
                INNER_ID,
                "--gid",
                INNER_ID,
                "--hostname",
                "sandbox",
                "--cap-drop",
                "ALL",
                "--die-with-parent",
                "--new-session",
                "--seccomp",
            ]
            .map(str::to_owned),
        );
        args.push(filter.as_raw_fd().to_string());
        args.extend(["--chdir".to_owned(), cwd, "--".to_owned(), spec.program]);
        args.extend(spec.args);
        Ok(ProcessSpec {
            program: self.program.to_string_lossy().into_owned(),
            args,
            env: spec.env,
            // bwrap itself starts in the work directory too; --chdir moves the step.
            cwd: work_dir.to_path_buf(),
            confinement: Some(Confinement {
                ids: ids.map(|ids| (ids.uid, ids.gid)),
                limits: self.limits,
                inherited: Some(Arc::new(filter)),
            }),
        })
    }
}

/// A fresh descriptor holding the compiled filter, positioned at its start (bwrap reads it
/// to the end, so each sandbox needs its own).
fn filter_descriptor() -> Result<OwnedFd, String> {
    let bytes = compiled_filter()?;
    // SAFETY: memfd_create with a valid C string; the result is checked before use.
    let raw = unsafe { libc::memfd_create(c"kubiya-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(format!(
            "cannot hold the seccomp filter: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `raw` is a descriptor we just opened and own.
    let mut file = unsafe { std::fs::File::from_raw_fd(raw) };
    file.write_all(bytes)
        .and_then(|()| file.rewind())
        .map_err(|error| format!("cannot hold the seccomp filter: {error}"))?;
    Ok(OwnedFd::from(file))
}

impl Sandbox {
    /// Whether steps are isolated.
    pub fn is_sandboxed(&self) -> bool {
        matches!(self, Self::Bubblewrap(_))
    }

    /// How steps run, for the `step_running` message.
    pub fn describe(&self) -> String {
        match self {
            Self::Bubblewrap(bwrap) if bwrap.allow_network => {
                "running in sandbox (network allowed)".to_owned()
            }
            Self::Bubblewrap(_) => "running in sandbox (no network)".to_owned(),
            Self::Unsandboxed { reason, .. } => format!("running unsandboxed: {reason}"),
        }
    }

    /// `spec` as it runs in this sandbox.
    pub fn wrap(
        &self,
        spec: ProcessSpec,
        work_dir: &Path,
        ids: Option<StepIds>,
    ) -> Result<ProcessSpec, String> {
        match self {
            Self::Bubblewrap(bwrap) => bwrap.wrap(spec, work_dir, ids),
            Self::Unsandboxed { limits, .. } => Ok(ProcessSpec {
                confinement: Some(Confinement {
                    ids: ids.map(|ids| (ids.uid, ids.gid)),
                    limits: *limits,
                    inherited: None,
                }),
                ..spec
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bubblewrap(allow_network: bool) -> Bubblewrap {
        Bubblewrap {
            program: PathBuf::from("bwrap"),
            allow_network,
            view: FsView {
                args: vec!["--ro-bind".to_owned(), "/usr".to_owned(), "/usr".to_owned()],
            },
            limits: StepLimits::default(),
        }
    }

    fn spec() -> ProcessSpec {
        ProcessSpec {
            program: "sh".to_owned(),
            args: vec!["-c".to_owned(), "echo hi".to_owned()],
            env: vec![("A".to_owned(), "1".to_owned())],
            cwd: PathBuf::from("/w/run/sub"),
            confinement: None,
        }
    }

    #[test]
    fn wrapping_builds_the_bwrap_command_line() {
        let ids = StepIds { uid: 7, gid: 8 };
        let wrapped = bubblewrap(false)
            .wrap(spec(), Path::new("/w/run"), Some(ids))
            .expect("wraps");
        assert_eq!(wrapped.program, "bwrap");
        let confinement = wrapped.confinement.expect("confined");
        let fd = confinement.inherited.expect("a filter").as_raw_fd();
        assert_eq!(confinement.ids, Some((7, 8)));
        assert_eq!(
            wrapped.args.join(" "),
            format!(
                "--ro-bind /usr /usr --dev /dev --proc /proc --size 268435456 --tmpfs /tmp \
                 --bind /w/run /w/run --remount-ro / --unshare-all --unshare-user --disable-userns \
                 --uid 1000 --gid 1000 --hostname sandbox --cap-drop ALL --die-with-parent \
                 --new-session --seccomp {fd} --chdir /w/run/sub -- sh -c echo hi"
            )
        );
        assert_eq!(wrapped.env, vec![("A".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn network_can_be_shared() {
        let wrapped = bubblewrap(true)
            .wrap(spec(), Path::new("/w"), None)
            .expect("wraps");
        assert!(
            wrapped
                .args
                .windows(2)
                .any(|pair| pair == ["--unshare-all", "--share-net"])
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_reported_as_not_found() {
        let mut sandbox = bubblewrap(false);
        sandbox.program = PathBuf::from("/nonexistent/bwrap");
        let error = sandbox
            .probe(None, &std::env::temp_dir())
            .await
            .expect_err("no such program");
        assert_eq!(error, "bubblewrap not found");
    }
}
