//! The auth middleware. When API keys are configured, every route but the probes
//! (`/health*`), `/discover`, `/metrics`, `/openapi.json` and the console's page and assets
//! needs `Authorization: Bearer <key>`: no key is 401 `missing_api_key`, a wrong one 401
//! `invalid_api_key`, both in OpenAI's error shape.
//! The key's [`Tenant`](crate::tenant::Tenant) goes into the request's extensions for
//! handlers to take, and the request is counted against the tenant's per-minute limit (429
//! with `Retry-After`). Without keys every request runs as the default tenant. Keys are
//! compared in constant time by [`Tenants`](crate::tenant::Tenants) and never logged. Runs
//! inside `observe`, so refusals are logged and counted.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Routes anyone may call: load balancers and scrapers carry no keys, the API document is
/// how a client learns what to send, and a browser loads the console's page before its user
/// has typed a key.
fn is_open(path: &str) -> bool {
    path == "/health"
        || path.starts_with("/health/")
        || path == "/discover"
        || path == "/metrics"
        || path == "/openapi.json"
        || crate::routes::console::is_console_asset(path)
}

pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let tenants = &state.tenants;
    if !tenants.auth_enabled() {
        req.extensions_mut().insert(tenants.default_tenant());
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if is_open(req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let tenant = match bearer_key(&req) {
        None => Err(ApiError::new(
            ErrorCode::MissingApiKey,
            "You didn't provide an API key. Send it in an Authorization header using Bearer \
             auth (Authorization: Bearer YOUR_KEY).",
        )),
        Some(key) => tenants.tenant_for(key).cloned().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidApiKey,
                "Incorrect API key provided. Check the key in your Authorization header.",
            )
        }),
    };
    let admitted = match tenant {
        Ok(tenant) => tenants.admit_request(&tenant).await.map(|()| tenant),
        Err(refused) => Err(refused),
    };
    match admitted {
        Ok(tenant) => {
            req.extensions_mut().insert(tenant);
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(refused) => Ok(req.into_response(refused.error_response())),
    }
}

/// The key of an `Authorization: Bearer <key>` header; `None` when there is none at all.
/// Another scheme gives an empty key, which no configured key equals.
fn bearer_key(req: &ServiceRequest) -> Option<&[u8]> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)?
        .as_bytes()
        .trim_ascii();
    match value.split_at_checked(6) {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case(b"bearer")
                && rest.first().is_none_or(u8::is_ascii_whitespace) =>
        {
            let key = rest.trim_ascii();
            (!key.is_empty()).then_some(key)
        }
        _ if value.is_empty() => None,
        _ => Some(&[]),
    }
}
