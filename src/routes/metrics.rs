//! `GET /metrics`: every series in the Prometheus text exposition format. Values other parts
//! own (token accounting, open streams, MCP server states) are read at scrape time.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use kubiya_actors::mcp::ServerStatuses;

use crate::error::ErrorBody;
use crate::metrics::Snapshot;
use crate::state::AppState;

#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let accounting = &state.providers.accounting;
    let mut snapshot = Snapshot {
        model_calls: accounting.calls.load(Ordering::Relaxed),
        upstream_connections: accounting.connections_opened.load(Ordering::Relaxed),
        input_tokens: accounting.input_tokens.load(Ordering::Relaxed),
        output_tokens: accounting.output_tokens.load(Ordering::Relaxed),
        open_streams: state.open_streams.count() as u64,
        ..Snapshot::default()
    };
    // A supervisor that does not answer leaves the MCP series empty rather than failing the scrape.
    if let Some(Ok(servers)) = match &state.mcp {
        Some(mcp) => Some(mcp.send(ServerStatuses).await),
        None => None,
    } {
        let mut by_state: BTreeMap<String, i64> = BTreeMap::new();
        for server in &servers {
            *by_state
                .entry(server.state.as_str().to_owned())
                .or_default() += 1;
            snapshot.mcp_restarts += u64::from(server.restarts);
        }
        snapshot.mcp_servers = by_state.into_iter().collect();
    }
    state.metrics.record(&snapshot);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
