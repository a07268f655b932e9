//! Running a workflow: the [`runner`] seam the executions use to pick a runner, check a
//! workflow against it and start a run; the [`event`]s every runner emits, the [`outcome`] a
//! run ends with and the one [`status`] vocabulary; the [`local`] runner, a tokio DAG
//! scheduler that runs each step as a [`process`] inside the [`sandbox`] (or as an [`http`]
//! request), what a process writes streamed as [`live_output`]; and the [`kubiya`] runner,
//! which sends the workflow to the Kubiya platform and follows its event stream
//! ([`kubiya_stream`]). The `ExecutionWatcher` ([`crate::workflow::execution`]) drives them.

pub mod event;
pub mod http;
pub mod kubiya;
pub mod kubiya_stream;
pub mod live_output;
pub mod local;
pub mod outcome;
pub mod process;
pub mod runner;
pub mod sandbox;
pub mod status;
