//! Reading a workflow out of what a caller sent: the `workflow` field of a tool call or a
//! request, as an object or as a JSON or YAML document in a string. One tolerance for every
//! caller (the model's tool calls, our MCP server, the HTTP API).

use serde_json::Value;

use crate::workflow::ValidationError;
use crate::workflow::dsl::model::parse_document;

/// The workflow document in a tool call's `arguments`: its `workflow` field, or, when a
/// model sent the workflow itself as the arguments, the arguments.
pub fn workflow_from_argument(arguments: &Value) -> Result<Value, Vec<ValidationError>> {
    workflow_document(arguments.get("workflow").unwrap_or(arguments))
}

/// A `workflow` field as a document: an object as it is, a string parsed as JSON or YAML.
/// Anything else is left to validation, which says what a workflow must be (and refuses
/// more than `MAX_STEPS` steps before it copies anything).
pub fn workflow_document(field: &Value) -> Result<Value, Vec<ValidationError>> {
    match field {
        Value::String(text) => {
            parse_document(text).map_err(|error| vec![ValidationError::new("", error.to_string())])
        }
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_workflow_is_read_as_an_object_as_json_text_or_as_yaml_text() {
        let object = json!({"name": "w", "steps": [{"name": "a", "command": "true"}]});
        let as_json = json!({"workflow": object.to_string()});
        let as_yaml = json!({"workflow": "name: w\nsteps:\n  - name: a\n    command: \"true\"\n"});
        for arguments in [
            json!({"workflow": object}),
            as_json,
            as_yaml,
            object.clone(),
        ] {
            assert_eq!(
                workflow_from_argument(&arguments),
                Ok(object.clone()),
                "{arguments}"
            );
        }
    }

    #[test]
    fn unreadable_text_is_refused_as_a_problem_of_the_document() {
        let errors = workflow_from_argument(&json!({"workflow": "name: [unclosed"})).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "");
    }
}
