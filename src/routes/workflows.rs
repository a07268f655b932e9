//! `POST /v1/workflows/validate`: checks a workflow without running it. The `workflow` field
//! is a JSON object or a JSON/YAML document as a string; the answer lists every problem with
//! its JSON path and, whenever the document could be read, the normalised workflow (chain
//! dependencies made explicit). Validation is pure and cheap, so no actor is involved.

use actix_web::{HttpResponse, web};
use kubiya_actors::workflow::dsl::model::parse_document;
use kubiya_actors::workflow::{ValidationError, Workflow, normalised, validate_value};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ValidJson;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ValidateRequest {
    /// The workflow: an object, or a JSON or YAML document as a string.
    workflow: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidateResponse {
    valid: bool,
    /// Every problem, with its JSON path.
    errors: Vec<ValidationError>,
    /// The normalised workflow, whenever the document could be read.
    #[schema(value_type = Option<Object>)]
    workflow: Option<Workflow>,
}

#[utoipa::path(post, path = "/v1/workflows/validate", tag = "workflows",
    request_body(content = ValidateRequest, content_type = "application/json"),
    responses((status = 200, description = "The verdict, every problem and the normalised workflow", body = ValidateResponse), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn validate(
    ValidJson(request): ValidJson<ValidateRequest>,
) -> Result<HttpResponse, ApiError> {
    // Validation is pure but not free (a long chain is quadratic in its steps): it runs on
    // the blocking pool so one large workflow cannot stall every connection of its worker.
    let answer = web::block(move || verdict(&request.workflow))
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(answer))
}

fn verdict(field: &Value) -> ValidateResponse {
    let (valid, errors, workflow) = match document_of(field) {
        Err(errors) => (false, errors, None),
        Ok(document) => match validate_value(&document) {
            Ok(workflow) => (true, Vec::new(), Some(normalised(&workflow))),
            Err(errors) => {
                let readable = Workflow::from_value(document).ok();
                (false, errors, readable.as_ref().map(normalised))
            }
        },
    };
    ValidateResponse {
        valid,
        errors,
        workflow,
    }
}

/// A `workflow` field as a document: an object as it is, a string parsed as JSON or YAML.
/// (Validation refuses more than `MAX_STEPS` steps before it copies anything.)
pub(super) fn document_of(field: &Value) -> Result<Value, Vec<ValidationError>> {
    match field {
        Value::String(text) => {
            parse_document(text).map_err(|error| vec![ValidationError::new("", error.to_string())])
        }
        other => Ok(other.clone()),
    }
}

/// The workflow in a `workflow` field, or every problem with it; on the blocking pool, as
/// [`validate`] explains.
pub(super) async fn workflow_of(
    field: Value,
) -> Result<Result<Workflow, Vec<ValidationError>>, ApiError> {
    web::block(move || validate_value(&document_of(&field)?))
        .await
        .map_err(ApiError::internal)
}
