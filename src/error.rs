//! The service's one table from error code to HTTP status and OpenAI error `type`, and
//! [`ApiError`], the error every handler returns. Bodies always have OpenAI's shape,
//! `{"error":{"message","type","param","code"}}`, so every OpenAI SDK raises the right
//! exception class with our message.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// What went wrong, as a client can act on it. The table in [`ErrorCode::spec`] is the only
/// place that decides statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not JSON at all.
    InvalidJson,
    /// A field is missing, has the wrong type or a value we cannot honour.
    InvalidRequest,
    MissingApiKey,
    InvalidApiKey,
    NotFound,
    ModelNotFound,
    MethodNotAllowed,
    /// Another turn holds the session.
    SessionBusy,
    PayloadTooLarge,
    /// The session's transcript would grow past its byte cap.
    SessionTooLarge,
    /// A body that is not `application/json`.
    UnsupportedMediaType,
    /// A browser request from a web origin that may not call the API.
    OriginNotAllowed,
    /// The body did not arrive within the body timeout.
    RequestTimeout,
    /// The request's headers are larger than the limit.
    HeadersTooLarge,
    /// Understood, but nothing valid could be made of it.
    Unprocessable,
    RateLimited,
    Internal,
    /// The model provider failed or answered with nonsense.
    UpstreamError,
    /// The server is shutting down and takes no new work.
    Draining,
    /// A dependency (the store, the provider) is unavailable for now.
    Unavailable,
    UpstreamTimeout,
}

struct Spec {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
}

impl ErrorCode {
    const fn spec(self) -> Spec {
        use ErrorCode::*;
        let (status, kind, code) = match self {
            InvalidJson => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
            ),
            InvalidRequest => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_value",
            ),
            MissingApiKey => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "missing_api_key",
            ),
            InvalidApiKey => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key",
            ),
            NotFound => (StatusCode::NOT_FOUND, "invalid_request_error", "not_found"),
            ModelNotFound => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
            ),
            SessionBusy => (
                StatusCode::CONFLICT,
                "invalid_request_error",
                "session_busy",
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
            ),
            SessionTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "session_too_large",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                "unsupported_media_type",
            ),
            OriginNotAllowed => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "origin_not_allowed",
            ),
            RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "request_timeout",
            ),
            HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "invalid_request_error",
                "headers_too_large",
            ),
            Unprocessable => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_error",
                "unprocessable",
            ),
            RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
            ),
            UpstreamError => (StatusCode::BAD_GATEWAY, "server_error", "upstream_error"),
            Draining => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "shutting_down",
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "service_unavailable",
            ),
            UpstreamTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "upstream_timeout",
            ),
        };
        Spec { status, kind, code }
    }

    pub fn status(self) -> StatusCode {
        self.spec().status
    }

    /// OpenAI's error `type`.
    pub fn kind(self) -> &'static str {
        self.spec().kind
    }

    /// OpenAI's error `code`.
    pub fn code(self) -> &'static str {
        self.spec().code
    }
}

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub param: Option<String>,
    /// Seconds for a `Retry-After` header (rate limits, draining).
    pub retry_after: Option<u64>,
}

/// The wire shape, `{"error": {...}}`; also used in-band in streams.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorObject<'a>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorObject<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// A field the client got wrong: 400 naming it.
    pub fn invalid_field(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message).with_param(param)
    }

    /// An error that is ours, not the client's: the cause is logged once, here, and the
    /// client gets an opaque message.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::Internal,
            "The server had an error while processing your request.",
        )
    }

    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorObject {
                message: &self.message,
                kind: self.code.kind(),
                param: self.param.as_deref(),
                code: Some(self.code.code()),
            },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.code(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        response.json(self.body())
    }
}

/// The domain's errors, each mapped to its code here and nowhere else.
impl From<kubiya_actors::session::TurnRejected> for ApiError {
    fn from(rejected: kubiya_actors::session::TurnRejected) -> Self {
        use kubiya_actors::session::TurnRejected;
        match rejected {
            TurnRejected::Busy(_) => {
                ApiError::new(ErrorCode::SessionBusy, rejected.to_string()).with_param("session_id")
            }
            TurnRejected::StoreUnavailable(_) => {
                ApiError::new(ErrorCode::Unavailable, rejected.to_string())
            }
        }
    }
}

impl From<kubiya_actors::store::StoreError> for ApiError {
    fn from(error: kubiya_actors::store::StoreError) -> Self {
        use kubiya_actors::store::StoreError;
        match error {
            StoreError::Unavailable(message) => ApiError::new(ErrorCode::Unavailable, message),
            // Only a turn takes a session's lease; anything else seeing it is our bug.
            StoreError::Busy => ApiError::internal(error),
        }
    }
}

impl From<kubiya_actors::workflow::ExecutionError> for ApiError {
    fn from(error: kubiya_actors::workflow::ExecutionError) -> Self {
        use kubiya_actors::workflow::ExecutionError;
        match error {
            ExecutionError::NotFound(id) => ApiError::new(
                ErrorCode::NotFound,
                format!("No execution found with id '{id}'."),
            ),
            ExecutionError::Invalid(ref problems) => {
                let only_params = problems
                    .iter()
                    .all(|problem| problem.path.starts_with("params."));
                let param = if only_params { "params" } else { "workflow" };
                ApiError::invalid_field(param, sentence(&error.to_string()))
            }
            ExecutionError::RunnerUnavailable(_) => {
                ApiError::invalid_field("runner", sentence(&error.to_string()))
            }
            ExecutionError::Unavailable(_) => {
                ApiError::new(ErrorCode::Unavailable, sentence(&error.to_string()))
            }
        }
    }
}

/// `text` with a capital first letter and a full stop, as API messages read.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let first = chars
        .next()
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_default();
    let rest = chars.as_str().trim_end_matches('.');
    format!("{first}{rest}.")
}

impl From<kubiya_actors::session::TurnError> for ApiError {
    fn from(error: kubiya_actors::session::TurnError) -> Self {
        use kubiya_actors::session::TurnErrorKind;
        let code = match error.kind {
            TurnErrorKind::RateLimited => ErrorCode::RateLimited,
            TurnErrorKind::UpstreamTimeout => ErrorCode::UpstreamTimeout,
            TurnErrorKind::Upstream => ErrorCode::UpstreamError,
            TurnErrorKind::StoreUnavailable => ErrorCode::Unavailable,
            TurnErrorKind::Draining => ErrorCode::Draining,
            TurnErrorKind::Unprocessable => ErrorCode::Unprocessable,
            TurnErrorKind::TimedOut => ErrorCode::UpstreamTimeout,
        };
        ApiError::new(code, error.message)
    }
}

impl From<kubiya_actors::limits::LimitError> for ApiError {
    fn from(error: kubiya_actors::limits::LimitError) -> Self {
        use kubiya_actors::limits::LimitError;
        let code = match error {
            LimitError::RequestRate { .. }
            | LimitError::Streams { .. }
            | LimitError::Executions { .. } => ErrorCode::RateLimited,
            LimitError::Unavailable(_) => ErrorCode::Unavailable,
        };
        ApiError::new(code, error.to_string()).with_retry_after(error.retry_after_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_an_error_status_and_a_snake_case_code() {
        use ErrorCode::*;
        for code in [
            InvalidJson,
            InvalidRequest,
            MissingApiKey,
            InvalidApiKey,
            NotFound,
            ModelNotFound,
            MethodNotAllowed,
            SessionBusy,
            PayloadTooLarge,
            SessionTooLarge,
            UnsupportedMediaType,
            OriginNotAllowed,
            RequestTimeout,
            HeadersTooLarge,
            Unprocessable,
            RateLimited,
            Internal,
            UpstreamError,
            Draining,
            Unavailable,
            UpstreamTimeout,
        ] {
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert!(
                code.code()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
    }

    #[test]
    fn the_body_has_openai_shape() {
        let error = ApiError::invalid_field("messages", "`messages` must not be empty");
        let body = serde_json::to_value(error.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "message": "`messages` must not be empty",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "invalid_value"
            }})
        );
    }
}
