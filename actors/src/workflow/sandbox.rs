//! The sandbox steps run in: bubblewrap (`bwrap`) with the host's `/` read-only, a private
//! writable work directory per execution (also the working directory and `HOME`), a fresh
//! `/tmp`, `/dev` and `/proc`, every namespace unshared (so no network unless the run allows
//! it), `--die-with-parent` and `--new-session`. The environment is cleared by the process
//! layer before bwrap starts (rather than with `--clearenv` and `--setenv`, which would put
//! secret values on bwrap's command line where `ps` shows them); bwrap passes what is left to
//! the step unchanged.
//!
//! Whether bwrap works is decided by a probe run with the same flags, since a container may
//! ship bwrap but forbid the namespaces it needs. The local runner probes once per run and
//! wraps every step's [`ProcessSpec`] with [`Sandbox::wrap`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::process::ProcessSpec;

/// How steps of a run are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// Steps run inside bubblewrap.
    Bubblewrap {
        program: PathBuf,
        allow_network: bool,
    },
    /// Steps run directly on the host; `reason` says why (shown to the user).
    Unsandboxed { reason: String },
}

/// How long the probe may take before bwrap counts as unusable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `program` can build the sandbox on this host: `Ok` or why not.
pub async fn probe_bubblewrap(program: &Path) -> Result<(), String> {
    let mut command = Command::new(program);
    command
        .args(namespace_args(false))
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--",
            "true",
        ])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(PROBE_TIMEOUT, command.output()).await {
        Err(_) => return Err("bubblewrap did not answer its probe in time".to_owned()),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err("bubblewrap not found".to_owned());
        }
        Ok(Err(error)) => return Err(format!("bubblewrap could not be started: {error}")),
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "bubblewrap is installed but cannot create a sandbox here ({})",
            stderr.trim()
        ))
    }
}

fn namespace_args(allow_network: bool) -> Vec<&'static str> {
    let mut args = vec!["--unshare-all"];
    if allow_network {
        args.push("--share-net");
    }
    args.extend(["--die-with-parent", "--new-session"]);
    args
}

impl Sandbox {
    /// Whether steps are isolated.
    pub fn is_sandboxed(&self) -> bool {
        matches!(self, Self::Bubblewrap { .. })
    }

    /// How steps run, for the `step_running` message.
    pub fn describe(&self) -> String {
        match self {
            Self::Bubblewrap {
                allow_network: false,
                ..
            } => "running in sandbox (no network)".to_owned(),
            Self::Bubblewrap {
                allow_network: true,
                ..
            } => "running in sandbox (network allowed)".to_owned(),
            Self::Unsandboxed { reason } => format!("running unsandboxed: {reason}"),
        }
    }

    /// `spec` as it runs in this sandbox, with `work_dir` the only writable host directory.
    pub fn wrap(&self, spec: ProcessSpec, work_dir: &Path) -> ProcessSpec {
        let Self::Bubblewrap {
            program,
            allow_network,
        } = self
        else {
            return spec;
        };
        let work = work_dir.to_string_lossy().into_owned();
        let cwd = spec.cwd.to_string_lossy().into_owned();
        let mut args: Vec<String> = [
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        // After the /tmp tmpfs, so that a work directory under /tmp stays visible.
        args.extend(["--bind".to_owned(), work.clone(), work]);
        args.extend(
            namespace_args(*allow_network)
                .into_iter()
                .map(str::to_owned),
        );
        args.extend(["--chdir".to_owned(), cwd, "--".to_owned(), spec.program]);
        args.extend(spec.args);
        ProcessSpec {
            program: program.to_string_lossy().into_owned(),
            args,
            env: spec.env,
            // bwrap itself starts in the work directory too; --chdir moves the step.
            cwd: work_dir.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_builds_the_bwrap_command_line() {
        let sandbox = Sandbox::Bubblewrap {
            program: PathBuf::from("bwrap"),
            allow_network: false,
        };
        let spec = ProcessSpec {
            program: "sh".to_owned(),
            args: vec!["-c".to_owned(), "echo hi".to_owned()],
            env: vec![("A".to_owned(), "1".to_owned())],
            cwd: PathBuf::from("/w/run/sub"),
        };
        let wrapped = sandbox.wrap(spec, Path::new("/w/run"));
        assert_eq!(wrapped.program, "bwrap");
        assert_eq!(
            wrapped.args.join(" "),
            "--ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --bind /w/run /w/run \
             --unshare-all --die-with-parent --new-session --chdir /w/run/sub -- sh -c echo hi"
        );
        assert_eq!(wrapped.env, vec![("A".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn network_can_be_shared() {
        let sandbox = Sandbox::Bubblewrap {
            program: PathBuf::from("bwrap"),
            allow_network: true,
        };
        let spec = ProcessSpec {
            program: "true".to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: PathBuf::from("/w"),
        };
        let wrapped = sandbox.wrap(spec, Path::new("/w"));
        assert!(
            wrapped
                .args
                .windows(2)
                .any(|pair| pair == ["--unshare-all", "--share-net"])
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_reported_as_not_found() {
        let error = probe_bubblewrap(Path::new("/nonexistent/bwrap"))
            .await
            .expect_err("no such program");
        assert_eq!(error, "bubblewrap not found");
    }
}
