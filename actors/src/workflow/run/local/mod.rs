//! The local runner: the [`scheduler`] validates a workflow, prepares its work directory and
//! sandbox and starts each step when its dependencies allow; [`step`] runs one step (one file
//! per executor; with [`parallel`] fan-out, [`sub_workflow`] calls and [`secrets`]), values reach shells through `shell_env`, [`limits`] bound what a run may
//! consume, and [`host`] and [`runnable`] say what this host can run. The steps of a run share
//! a [`context`].

pub(crate) mod context;
pub mod host;
pub mod limits;
mod parallel;
pub mod runnable;
pub mod scheduler;
pub mod secrets;
mod shell_env;
mod step;
pub mod sub_workflow;

pub use step::model::StepModel;

#[cfg(test)]
mod feature_tests;
#[cfg(test)]
mod tests;
