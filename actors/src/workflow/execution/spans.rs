//! The trace spans of one workflow execution: the execution (`workflow {name}`), open for the
//! whole run, and a child per step, open from its `step_running` event to the event that ends
//! it (a retried step gets a span per attempt). They follow the run's own events and its
//! outcome, so every runner gets them. The execution's parent is the span it was started under: the tool call
//! of a turn, or the HTTP request of `POST /v1/executions`.

use std::collections::HashMap;

use tracing::Span;
use tracing::field::Empty;

use crate::workflow::run::event::StepEvent;
use crate::workflow::run::outcome::RunOutcome;

pub struct ExecutionSpans {
    execution: Span,
    steps: HashMap<String, Span>,
}

impl ExecutionSpans {
    pub fn new(parent: &Span, execution_id: &str, workflow: &str, runner: &str) -> Self {
        let execution = tracing::info_span!(
            target: crate::TRACE,
            parent: parent,
            "workflow execution",
            otel.name = %format_args!("workflow {workflow}"),
            otel.status_code = Empty,
            kubiya.execution.id = execution_id,
            kubiya.workflow.name = workflow,
            kubiya.runner = runner,
            kubiya.workflow.status = Empty,
            error.type = Empty,
        );
        Self {
            execution,
            steps: HashMap::new(),
        }
    }

    pub fn observe(&mut self, event: &StepEvent) {
        match event {
            StepEvent::StepRunning { step, .. } => {
                let span = self.step_span(step);
                self.steps.insert(step.clone(), span);
            }
            StepEvent::StepOutput { .. } => {}
            StepEvent::StepComplete { step, .. } => self.step_ended(step, "success", None),
            StepEvent::StepFailed { step, error, .. } => {
                self.step_ended(step, "failed", Some(error));
            }
            StepEvent::StepSkipped { step, .. } => self.step_ended(step, "skipped", None),
            // The run's end comes as its outcome (`ended`).
            StepEvent::WorkflowComplete { .. } => {}
        }
    }

    /// The run ended with `outcome`: the execution's span says how.
    pub fn ended(&mut self, outcome: &RunOutcome) {
        self.execution
            .record("kubiya.workflow.status", outcome.status.as_str());
        if let Some(error) = &outcome.error {
            self.execution.record("otel.status_code", "ERROR");
            self.execution.record("error.type", error.as_str());
        }
        // Steps still open when the run ended end with it.
        self.steps.clear();
    }

    fn step_span(&self, step: &str) -> Span {
        tracing::info_span!(
            target: crate::TRACE,
            parent: &self.execution,
            "workflow step",
            otel.name = %format_args!("step {step}"),
            otel.status_code = Empty,
            kubiya.step.name = step,
            kubiya.step.status = Empty,
            error.type = Empty,
        )
    }

    fn step_ended(&mut self, step: &str, status: &str, error: Option<&str>) {
        // A step skipped without starting still shows in the trace.
        let span = self
            .steps
            .remove(step)
            .unwrap_or_else(|| self.step_span(step));
        span.record("kubiya.step.status", status);
        if let Some(error) = error {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", error);
        }
    }
}
