//! What the local runner can run on this host: [`check_runnable_locally`] lists each step
//! that needs something this host lacks (a Docker engine, network access, a model for
//! `llm_completion` steps, a workflows directory for sub-workflows, the Kubiya platform for
//! other executors) with a message saying what to do instead. The local runner refuses such
//! a workflow before anything runs; the HTTP layer and the model see the same messages.

use serde_json::Value;

use super::host::HostCapabilities;
use crate::workflow::dsl::error::ValidationError;
use crate::workflow::dsl::model::{ExecutorKind, GET_SECRET, Step, Workflow};
use crate::workflow::dsl::validate::{handler_steps, step_label};

/// Steps the local runner cannot run on this host, each with a message saying what to do.
pub fn check_runnable_locally(
    workflow: &Workflow,
    host: &HostCapabilities,
) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let steps = workflow
        .steps
        .iter()
        .enumerate()
        .map(|(index, step)| (format!("steps[{index}]"), step));
    let handlers = workflow
        .handler_on
        .iter()
        .flat_map(handler_steps)
        .map(|(event, step)| (format!("handlerOn.{event}"), step));
    for (path, step) in steps.chain(handlers) {
        check_step_runnable_locally(step, &path, host, &mut errors);
    }
    errors
}

fn check_step_runnable_locally(
    step: &Step,
    path: &str,
    host: &HostCapabilities,
    errors: &mut Vec<ValidationError>,
) {
    let label = step_label(step);
    if let Some(kind) = step.executor_kind() {
        let problem = match kind {
            ExecutorKind::Command => None,
            ExecutorKind::Http if !host.http_client => {
                Some("http steps need network access, which the local runner was not given; allow it (setting runner.local.allow_network, or --allow-network) or run on a Kubiya runner".to_owned())
            }
            ExecutorKind::Http => None,
            ExecutorKind::Docker if !host.docker_engine => Some(
                "docker steps need a Docker engine, and none is reachable on this host; run the workflow on a Kubiya runner or use a command step".to_owned(),
            ),
            ExecutorKind::Docker => None,
            ExecutorKind::LlmCompletion | ExecutorKind::Agent if host.model_steps => None,
            ExecutorKind::LlmCompletion | ExecutorKind::Agent => Some(
                "this server has no model for workflow steps; run the workflow on a Kubiya runner".to_owned(),
            ),
            other => Some(format!(
                "the local runner cannot run {other} steps (they need the Kubiya platform); run the workflow on a Kubiya runner, or replace the step with a command"
            )),
        };
        if let Some(problem) = problem {
            errors.push(ValidationError::new(
                format!("{path}.executor.type"),
                format!("{label}: {problem}"),
            ));
        }
    }
    if step.run.is_some() && !host.sub_workflows {
        errors.push(ValidationError::new(
            format!("{path}.run"),
            format!("{label}: sub-workflows need a workflows directory on this server (runner.local.workflows_dir); run the workflow on a Kubiya runner"),
        ));
    }
    match step.kind.as_deref() {
        None => {}
        Some(GET_SECRET)
            if step.extra.get("secret_name").and_then(Value::as_str).is_none() =>
        {
            errors.push(ValidationError::new(
                format!("{path}.secret_name"),
                format!("{label}: a get_secret step needs \"secret_name\""),
            ));
        }
        Some(GET_SECRET) => {}
        Some(kind) => errors.push(ValidationError::new(
            format!("{path}.type"),
            format!("{label}: the local runner cannot run {kind:?} steps; run the workflow on a Kubiya runner"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(errors: &[ValidationError]) -> Vec<&str> {
        errors.iter().map(|error| error.path.as_str()).collect()
    }

    #[test]
    fn platform_only_steps_cannot_run_locally() {
        let workflow = Workflow::from_value(json!({"name":"w","type":"graph","steps":[
            {"name":"cmd","command":"true"},
            {"name":"ask","executor":{"type":"agent","config":{"agent_name":"x","message":"y"}}},
            {"name":"box","executor":{"type":"docker","config":{"image":"alpine"}}},
            {"name":"get","executor":{"type":"http","config":{"url":"http://x"}}},
            {"name":"child","run":"other"},
            {"name":"fan","command":"true","parallel":{"items":[1,2]}}]}))
        .expect("parses");
        let errors = check_runnable_locally(&workflow, &HostCapabilities::default());
        assert_eq!(
            paths(&errors),
            [
                "steps[1].executor.type",
                "steps[2].executor.type",
                "steps[3].executor.type",
                "steps[4].run",
            ]
        );
        assert!(errors[0].message.contains("no model for workflow steps"));
        assert!(errors[1].message.contains("Docker engine"));
        let capable = HostCapabilities {
            docker_engine: true,
            http_client: true,
            sub_workflows: false,
            model_steps: true,
        };
        assert_eq!(
            paths(&check_runnable_locally(&workflow, &capable)),
            ["steps[4].run"]
        );
        let with_tool = Workflow::from_value(json!({"name":"w","steps":[
            {"name":"t","executor":{"type":"tool","config":{"name":"slack"}}}]}))
        .expect("parses");
        let errors = check_runnable_locally(&with_tool, &capable);
        assert!(
            errors[0].message.contains("cannot run tool steps"),
            "{errors:?}"
        );
    }
}
