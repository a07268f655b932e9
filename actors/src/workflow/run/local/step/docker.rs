//! `docker` steps: `docker run` of the step's image with the work directory mounted at
//! `/work`, no network unless the run allows it, no capabilities and the step limits. Docker
//! is the isolation here, so the CLI itself runs outside bubblewrap (it must reach the
//! engine's socket); a container whose CLI was stopped is removed explicitly.

use std::time::Duration;

use serde_json::Value;

use super::{Attempt, AttemptError, Work};
use crate::workflow::dsl::model::SCRIPT_DIR;
use crate::workflow::dsl::template::is_var_name;
use crate::workflow::run::local::shell_env;
use crate::workflow::run::process::ProcessSpec;

impl Attempt<'_, '_> {
    /// `docker run` in the work directory (mounted at `/work`); Docker is the isolation here,
    /// so the CLI itself runs outside bubblewrap (it must reach the engine's socket).
    pub(super) async fn docker_plan(&self) -> Result<Work, AttemptError> {
        let (_, config) = self.executor_config()?;
        let image = config
            .get("image")
            .and_then(Value::as_str)
            .ok_or_else(|| AttemptError::failed("the docker executor needs config.image"))?;
        check_image(image).map_err(AttemptError::failed)?;
        let container = format!("kubiya-step-{}", uuid::Uuid::new_v4().simple());
        let work = self.context.work_dir.to_string_lossy().into_owned();
        let network = if self.context.options.allow_network {
            "bridge"
        } else {
            "none"
        };
        let mut args: Vec<String> = [
            "run",
            "--rm",
            "--name",
            &container,
            "--network",
            network,
            "-v",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        args.extend([format!("{work}:/work"), "-w".to_owned(), "/work".to_owned()]);
        // The container gets the bounds a sandboxed step gets.
        let limits = &self.context.options.step_limits;
        args.extend([
            "--cap-drop=ALL".to_owned(),
            "--security-opt=no-new-privileges".to_owned(),
            format!("--pids-limit={}", limits.max_processes),
            format!("--memory={}", limits.memory_bytes),
        ]);
        let command_text = self
            .step
            .command
            .as_ref()
            .map(|command| shell_env::prepare(command, self.scope));
        let forwarded: Vec<(String, String)> = self
            .scope
            .iter()
            .filter(|(name, _)| is_var_name(name) && !matches!(*name, "PATH" | "HOME"))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .chain(
                command_text
                    .iter()
                    .flat_map(|(_, extra)| extra.iter().cloned()),
            )
            .collect();
        for (name, _) in &forwarded {
            // By name only: the value comes from the CLI's environment, not its command line.
            args.extend(["-e".to_owned(), name.clone()]);
        }
        args.push(image.to_owned());
        let content = config
            .get("content")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| self.step.script.clone());
        match (content, config.get("command")) {
            (Some(content), _) => {
                let path = self.write_script(&content).await?;
                let name = path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                args.extend(["sh".to_owned(), format!("/work/{SCRIPT_DIR}/{name}")]);
            }
            (None, Some(Value::String(command))) => {
                args.extend(["sh".to_owned(), "-c".to_owned(), command.clone()])
            }
            (None, Some(Value::Array(words))) => args.extend(words.iter().map(|word| match word {
                Value::String(word) => word.clone(),
                other => other.to_string(),
            })),
            (None, _) => {
                if let Some((command, _)) = command_text {
                    args.extend(["sh".to_owned(), "-c".to_owned(), command]);
                }
            }
        }
        let mut env = forwarded;
        env.push(("PATH".to_owned(), self.context.options.path_env.clone()));
        for name in [
            "HOME",
            "DOCKER_HOST",
            "DOCKER_CONFIG",
            "DOCKER_CONTEXT",
            "DOCKER_CERT_PATH",
            "DOCKER_TLS_VERIFY",
        ] {
            if let Ok(value) = std::env::var(name) {
                env.push((name.to_owned(), value));
            }
        }
        Ok(Work::Process {
            spec: ProcessSpec {
                program: self.context.options.docker.to_string_lossy().into_owned(),
                args,
                env,
                cwd: self.context.work_dir.clone(),
                confinement: None,
            },
            container: Some(container),
            ids: None,
        })
    }

    /// Stopping the Docker CLI does not stop its container; remove it explicitly.
    pub(super) async fn remove_container(&self, container: &str) {
        let mut command = tokio::process::Command::new(&self.context.options.docker);
        command
            .args(["rm", "-f", container])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Err(error) = tokio::time::timeout(Duration::from_secs(30), command.status()).await {
            tracing::warn!(%container, %error, "removing a stopped step's container timed out");
        }
    }
}

/// An image reference may not pass for an option of `docker run` (`-v=/:/host`, `--privileged`).
fn check_image(image: &str) -> Result<(), String> {
    let valid = !image.is_empty()
        && !image.starts_with('-')
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!("{image:?} is not an image reference"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_cannot_be_an_option() {
        assert!(check_image("python:3.11-slim").is_ok());
        assert!(check_image("ghcr.io/org/tool@sha256:abc").is_ok());
        for hostile in ["-v=/:/host", "--privileged", "alpine --privileged", ""] {
            assert!(check_image(hostile).is_err(), "{hostile} accepted");
        }
    }
}
