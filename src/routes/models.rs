//! `GET /v1/models` and `GET /v1/models/{id}` in OpenAI's list and object shapes. There is one
//! model: the agent.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::wire::AGENT_MODEL;

/// A fixed creation time keeps the object identical across replicas and restarts.
const CREATED: u64 = 1_735_689_600;

/// OpenAI's model object.
#[derive(Serialize, ToSchema)]
pub struct Model {
    #[schema(example = "kubiya-workflow-agent")]
    id: &'static str,
    #[schema(example = "model")]
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// OpenAI's model list.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    #[schema(example = "list")]
    object: &'static str,
    data: Vec<Model>,
}

fn agent_model() -> Model {
    Model {
        id: AGENT_MODEL,
        object: "model",
        created: CREATED,
        owned_by: "kubiya",
    }
}

#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, description = "The one model: the agent", body = ModelList), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn list() -> HttpResponse {
    HttpResponse::Ok().json(ModelList {
        object: "list",
        data: vec![agent_model()],
    })
}

#[utoipa::path(get, path = "/v1/models/{id}", tag = "models",
    params(("id" = String, Path, description = "The model id")),
    responses((status = 200, description = "The model", body = Model), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn retrieve(id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    if id.as_str() != AGENT_MODEL {
        return Err(model_not_found(&id));
    }
    Ok(HttpResponse::Ok().json(agent_model()))
}

pub fn model_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ModelNotFound,
        format!("The model `{id}` does not exist or you do not have access to it."),
    )
    .with_param("model")
}
