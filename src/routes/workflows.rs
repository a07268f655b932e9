//! `POST /v1/workflows/validate`: checks a workflow without running it. The `workflow` field
//! is a JSON object or a JSON/YAML document as a string; the answer lists every problem with
//! its JSON path and, whenever the document could be read, the normalised workflow (chain
//! dependencies made explicit). Validation is pure and cheap, so no actor is involved.

use actix_web::HttpResponse;
use kubiya_actors::workflow::model::parse_document;
use kubiya_actors::workflow::{ValidationError, Workflow, normalised, validate_value};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extract::ValidJson;

#[derive(Debug, Deserialize)]
pub struct ValidateRequest {
    workflow: Value,
}

#[derive(Debug, Serialize)]
struct ValidateResponse {
    valid: bool,
    errors: Vec<ValidationError>,
    workflow: Option<Workflow>,
}

pub async fn validate(ValidJson(request): ValidJson<ValidateRequest>) -> HttpResponse {
    let (valid, errors, workflow) = match document_of(&request.workflow) {
        Err(errors) => (false, errors, None),
        Ok(document) => match validate_value(&document) {
            Ok(workflow) => (true, Vec::new(), Some(normalised(&workflow))),
            Err(errors) => {
                let readable = Workflow::from_value(document).ok();
                (false, errors, readable.as_ref().map(normalised))
            }
        },
    };
    HttpResponse::Ok().json(ValidateResponse {
        valid,
        errors,
        workflow,
    })
}

/// A `workflow` field as a document: an object as it is, a string parsed as JSON or YAML.
pub(super) fn document_of(field: &Value) -> Result<Value, Vec<ValidationError>> {
    match field {
        Value::String(text) => {
            parse_document(text).map_err(|error| vec![ValidationError::new("", error.to_string())])
        }
        other => Ok(other.clone()),
    }
}

/// The workflow in a `workflow` field, or every problem with it.
pub(super) fn workflow_of(field: &Value) -> Result<Workflow, Vec<ValidationError>> {
    validate_value(&document_of(field)?)
}
