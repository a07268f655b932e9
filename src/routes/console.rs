//! The web console at `/`: a chat with the agent and the workflow it wrote as a live graph.
//! Its assets are built from `console/` (see the README) into `console/dist/`, which is
//! committed, and embedded in the binary here, so the server serves them offline with nothing
//! from elsewhere. The page itself carries no secret and is open like the probes; every call
//! it makes goes to the API with the key the user typed (see [`auth`](crate::auth)).
//!
//! Everything the page shows was written by a model or a workflow step, so the headers lock
//! it down: a Content-Security-Policy that allows only our own script, style and API (no
//! inline script, no other origin, no framing), `nosniff` and no referrer.

use actix_web::HttpResponse;
use actix_web::http::header;

use crate::error::ErrorBody;

const INDEX_HTML: &[u8] = include_bytes!("../../console/dist/index.html");
const APP_JS: &[u8] = include_bytes!("../../console/dist/app.js");
const APP_CSS: &[u8] = include_bytes!("../../console/dist/app.css");

/// Our own script, style and API, nothing else (the graph is SVG in the page, not an image).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The console's paths: the page, and its two assets.
pub const PAGE: &str = "/";
pub const SCRIPT: &str = "/console/app.js";
pub const STYLE: &str = "/console/app.css";

/// Whether `path` is one of the console's files, which anyone may fetch.
pub fn is_console_asset(path: &str) -> bool {
    path == PAGE || path == SCRIPT || path == STYLE
}

fn asset(content_type: &'static str, body: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // Small, and replaced with every release: always revalidate.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

#[utoipa::path(get, path = "/", tag = "console",
    responses((status = 200, description = "The web console's page", content_type = "text/html", body = String), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

#[utoipa::path(get, path = "/console/app.js", tag = "console",
    responses((status = 200, description = "The console's script", content_type = "text/javascript", body = String), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

#[utoipa::path(get, path = "/console/app.css", tag = "console",
    responses((status = 200, description = "The console's stylesheet", content_type = "text/css", body = String), (status = "default", description = "An error in OpenAI's shape", body = ErrorBody)))]
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}
