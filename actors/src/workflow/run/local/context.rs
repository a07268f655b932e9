//! What the steps of one local run share: the [`RunContext`] (options, workflow, work
//! directory, sandbox, host group, secrets, sub-workflow library) and the [`Emitter`] that
//! sends their events with secret values masked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::scheduler::RunOptions;
use crate::workflow::dsl::model::Workflow;
use crate::workflow::run::event::{
    OutputStream, StepEvent, duration_millis, format_duration, now_millis,
};
use crate::workflow::run::sandbox::confinement::IdLease;
use crate::workflow::run::sandbox::{Sandbox, StepIds};

/// Sends events, masking secret values first.
#[derive(Debug, Clone)]
pub(crate) struct Emitter {
    events: UnboundedSender<StepEvent>,
    secrets: Arc<Vec<String>>,
}

impl Emitter {
    /// Sends to `events`, masking each of `secrets` wherever it appears.
    pub(crate) fn new(events: UnboundedSender<StepEvent>, secrets: Vec<String>) -> Self {
        Self {
            events,
            secrets: Arc::new(secrets),
        }
    }

    /// The values masked in everything sent.
    pub(crate) fn secrets(&self) -> &[String] {
        &self.secrets
    }

    pub(crate) fn mask(&self, text: &str) -> String {
        let mut masked = text.to_owned();
        for secret in self.secrets.iter() {
            masked = masked.replace(secret.as_str(), "***");
        }
        masked
    }

    pub(crate) fn running(&self, step: &str, message: String) {
        self.send(StepEvent::StepRunning {
            step: step.to_owned(),
            message: self.mask(&message),
            timestamp: now_millis(),
        });
    }

    /// Text a running step wrote; the caller never splits a secret between two calls.
    pub(crate) fn output(&self, step: &str, stream: OutputStream, text: &str) {
        self.send(StepEvent::StepOutput {
            step: step.to_owned(),
            stream,
            text: self.mask(text),
            timestamp: now_millis(),
        });
    }

    pub(crate) fn complete(&self, step: &str, output: &str, duration: Duration) {
        self.send(StepEvent::StepComplete {
            step: step.to_owned(),
            output: self.mask(output),
            duration: format_duration(duration),
            duration_ms: duration_millis(duration),
            timestamp: now_millis(),
        });
    }

    pub(crate) fn failed(&self, step: &str, error: &str, will_retry: bool) {
        self.send(StepEvent::StepFailed {
            step: step.to_owned(),
            error: self.mask(error),
            will_retry,
            timestamp: now_millis(),
        });
    }

    pub(crate) fn skipped(&self, step: &str, reason: &str) {
        self.send(StepEvent::StepSkipped {
            step: step.to_owned(),
            reason: self.mask(reason),
            timestamp: now_millis(),
        });
    }

    pub(super) fn send(&self, event: StepEvent) {
        // A receiver that went away only means nobody is listening any more.
        let _ = self.events.send(event);
    }
}

/// What every step of a run shares.
pub(crate) struct RunContext<'a> {
    pub(crate) options: &'a RunOptions,
    pub(crate) workflow: &'a Workflow,
    pub(crate) work_dir: PathBuf,
    pub(crate) sandbox: Sandbox,
    pub(crate) emitter: Emitter,
    /// The host group of the execution, when steps get host ids of their own.
    pub(crate) group: Option<u32>,
    /// The secrets the run asked for, by name (for `get_secret` steps).
    pub(crate) secrets: &'a HashMap<String, String>,
    /// Workflows `run` steps may call by name (see [`RunRequest::library`](super::RunRequest::library)).
    pub(crate) library: &'a [Workflow],
}

impl RunContext<'_> {
    /// Host ids for one sandboxed process of a step, held until the lease drops; `None` when
    /// steps keep the server's ids.
    pub(crate) fn step_ids(&self) -> Result<Option<(IdLease, StepIds)>, String> {
        let Some(gid) = self.group else {
            return Ok(None);
        };
        let lease = self.options.host_ids.lease().ok_or(
            "every sandbox user id is in use; wait for other steps to finish or raise runner.local.sandbox_id_count",
        )?;
        let ids = StepIds {
            uid: lease.id(),
            gid,
        };
        Ok(Some((lease, ids)))
    }
}
