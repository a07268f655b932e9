//! `POST /v1/workflows/validate`: checks a workflow without running it. The `workflow` field
//! is a JSON object or a JSON/YAML document as a string; the answer lists every problem with
//! its JSON path and, whenever every value has the type the model gives it, the normalised
//! workflow (chain dependencies made explicit). Validation is pure and cheap, so no actor is
//! involved.

use actix_web::{HttpResponse, web};
use kubiya_actors::tools::{ValidationReport, workflow_document};
use kubiya_actors::workflow::{ValidationError, Workflow, validate_value};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ValidJson;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ValidateRequest {
    /// The workflow: an object, or a JSON or YAML document as a string.
    workflow: Value,
}

#[utoipa::path(post, path = "/v1/workflows/validate", tag = "workflows",
    request_body(content = ValidateRequest, content_type = "application/json"),
    responses((status = 200, description = "The verdict, every problem and the normalised workflow", body = ValidationReport), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn validate(
    ValidJson(request): ValidJson<ValidateRequest>,
) -> Result<HttpResponse, ApiError> {
    // Validation is pure but not free (a long chain is quadratic in its steps): it runs on
    // the blocking pool so one large workflow cannot stall every connection of its worker.
    let answer = web::block(move || ValidationReport::of_field(&request.workflow))
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(answer))
}

/// The workflow in a `workflow` field, or every problem with it; on the blocking pool, as
/// [`validate`] explains.
pub(super) async fn workflow_of(
    field: Value,
) -> Result<Result<Workflow, Vec<ValidationError>>, ApiError> {
    web::block(move || validate_value(&workflow_document(&field)?))
        .await
        .map_err(ApiError::internal)
}
