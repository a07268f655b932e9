//! [`ValidationReport`]: what validating a workflow says, in one shape for the model's
//! `validate_workflow` tool, our MCP server's and `POST /v1/workflows/validate`.

use serde::Serialize;
use serde_json::Value;

use super::argument::workflow_document;
use crate::workflow::{Validated, ValidationError, Workflow, normalised, validate_document};

/// The verdict on a workflow, every problem with its JSON path, and the workflow normalised
/// (chain dependencies made explicit) whenever its values have the model's types.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ValidationReport {
    pub valid: bool,
    /// Every problem, with its JSON path.
    pub errors: Vec<ValidationError>,
    /// The normalised workflow, whenever every value in the document has the type this schema
    /// gives it (even if the workflow means something wrong).
    pub workflow: Option<Workflow>,
    /// Whether the local runner can run it on this host, when that was checked (our MCP
    /// server checks it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runnable_locally: Option<bool>,
    /// What the local runner cannot run on this host, when that was checked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub local_runner_problems: Vec<ValidationError>,
}

impl ValidationReport {
    /// Validates the workflow in a `workflow` field (an object, or JSON or YAML text).
    pub fn of_field(field: &Value) -> Self {
        let (errors, workflow) = match workflow_document(field) {
            Err(errors) => (errors, None),
            Ok(document) => {
                let Validated { workflow, errors } = validate_document(&document);
                (errors, workflow.as_ref().map(normalised))
            }
        };
        Self {
            valid: errors.is_empty(),
            errors,
            workflow,
            runnable_locally: None,
            local_runner_problems: Vec::new(),
        }
    }

    /// Validates the workflow in a tool call's arguments (see
    /// [`workflow_from_argument`](super::workflow_from_argument)).
    pub fn of_arguments(arguments: &Value) -> Self {
        Self::of_field(arguments.get("workflow").unwrap_or(arguments))
    }

    /// No workflow to validate, for `reason`.
    pub fn refused(reason: ValidationError) -> Self {
        Self {
            valid: false,
            errors: vec![reason],
            workflow: None,
            runnable_locally: None,
            local_runner_problems: Vec::new(),
        }
    }

    /// The valid workflow, normalised.
    pub fn valid_workflow(&self) -> Option<&Workflow> {
        self.workflow.as_ref().filter(|_| self.valid)
    }

    /// The report as a tool's JSON result.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_valid_workflow_is_reported_normalised_and_an_invalid_one_with_its_problems() {
        let report = ValidationReport::of_arguments(&json!({"workflow": {"name": "w", "steps": [
            {"name": "a", "command": "true"}, {"name": "b", "command": "true"}]}}));
        assert!(report.valid);
        let workflow = report.valid_workflow().expect("valid");
        assert_eq!(workflow.to_value()["steps"][1]["depends"], json!(["a"]));

        let report = ValidationReport::of_field(&json!({"name": "w", "steps": [
            {"name": "a", "command": "true", "depends": ["nope"]}]}));
        assert!(!report.valid);
        assert!(report.valid_workflow().is_none());
        assert_eq!(report.errors[0].path, "steps[0].depends[0]");
        assert!(
            report.workflow.is_some(),
            "a readable workflow is still shown"
        );
        let value = report.to_value();
        assert!(value.get("runnable_locally").is_none(), "{value}");
    }

    #[test]
    fn a_workflow_with_a_value_of_the_wrong_type_is_not_shown() {
        // The model could read a negative timeout, but it is not what the schema says a
        // workflow is, so the answer does not show it as one.
        let report = ValidationReport::of_field(&json!({"name": "w", "timeout": -1, "steps": [
            {"name": "a", "command": "true"}]}));
        assert!(!report.valid);
        assert_eq!(report.errors[0].path, "timeout");
        assert_eq!(report.workflow, None);
    }
}
