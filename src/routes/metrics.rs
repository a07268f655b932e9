//! `GET /metrics`: every registered series in the Prometheus text exposition format.

use actix_web::{HttpResponse, web};

use crate::state::AppState;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
