//! `GET /v1/models` and `GET /v1/models/{id}` in OpenAI's list and object shapes. There is one
//! model: the agent.

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::AGENT_MODEL;
use crate::error::{ApiError, ErrorCode};

/// A fixed creation time keeps the object identical across replicas and restarts.
const CREATED: u64 = 1_735_689_600;

fn agent_model() -> Value {
    json!({ "id": AGENT_MODEL, "object": "model", "created": CREATED, "owned_by": "kubiya" })
}

pub async fn list() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "object": "list", "data": [agent_model()] }))
}

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
