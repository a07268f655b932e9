//! `command` steps (and steps with no executor): a command line run by the step's shell, a
//! script run by the step's shell, or a script handed to another interpreter named by
//! `command` (`python`). Values reach shell text as environment variables (see
//! `shell_env`); a non-shell interpreter gets them pasted, and in its environment too. The
//! process runs inside the sandbox.

use super::{Attempt, AttemptError, Work};
use crate::workflow::run::local::shell_env;
use crate::workflow::run::process::ProcessSpec;

/// Interpreters that read shell text, into which values go as environment variables.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"];

impl Attempt<'_, '_> {
    /// The sandboxed process that runs the step's `command` and `script`.
    pub(super) async fn command_plan(&self) -> Result<Work, AttemptError> {
        let step = self.step;
        let mut extra = Vec::new();
        let mut words: Vec<String> = match (&step.command, &step.script) {
            (Some(command), Some(script)) => {
                // `command` names the interpreter for the script, e.g. `python`.
                let mut words: Vec<String> = self
                    .scope
                    .substitute(command)
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                if words.first().is_some_and(|first| first == "python") {
                    words[0] = "python3".to_owned();
                }
                let body = if words.first().is_some_and(|first| is_shell(first)) {
                    let (body, more) = shell_env::prepare(script, self.scope);
                    extra = more;
                    body
                } else {
                    // Another language: values are pasted, and also in its environment.
                    self.scope.substitute(script)
                };
                let path = self.write_script(&body).await?;
                words.push(path.to_string_lossy().into_owned());
                words
            }
            (Some(command), None) => {
                let mut words = self.shell_words();
                let (command, more) = shell_env::prepare(command, self.scope);
                extra = more;
                words.extend(["-c".to_owned(), command]);
                words
            }
            (None, Some(script)) => {
                let (body, more) = shell_env::prepare(script, self.scope);
                extra = more;
                let path = self.write_script(&body).await?;
                let mut words = self.shell_words();
                words.push(path.to_string_lossy().into_owned());
                words
            }
            (None, None) => return Err(AttemptError::failed("the step has no command or script")),
        };
        if words.is_empty() {
            return Err(AttemptError::failed("the step's command is empty"));
        }
        let program = words.remove(0);
        let spec = ProcessSpec {
            program,
            args: words,
            env: self.process_env(extra),
            cwd: self.cwd(),
            confinement: None,
        };
        let (spec, ids) = self.sandboxed(spec)?;
        Ok(Work::Process {
            spec,
            container: None,
            ids,
        })
    }
}

/// Whether `program` (a path or a name) is a shell.
fn is_shell(program: &str) -> bool {
    let name = program.rsplit('/').next().unwrap_or(program);
    SHELLS.contains(&name)
}
