//! [`Tenant`]: which tenant a request acts for, as an extractor. Until authentication
//! arrives every request belongs to the `default` tenant; this is the one place that
//! decides it, so handlers that scope data by tenant need no change when keys map to
//! tenants.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use crate::error::ApiError;

/// The tenant every request belongs to while the server has no authentication.
pub const DEFAULT_TENANT: &str = "default";

/// The tenant of the request being handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(_: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Tenant(DEFAULT_TENANT.to_owned())))
    }
}
