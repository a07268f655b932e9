//! `ValidJson<T>`: the JSON body extractor every POST route uses. It takes only
//! `application/json` bodies (415 otherwise: a browser sends `text/plain` cross-origin without
//! asking first), enforces the configured body size (413) and read timeout (408, so a client
//! trickling bytes cannot hold a worker's buffer), and tells malformed JSON (400
//! `invalid_json`) from a well-formed body with a wrong or missing field (400 naming the field
//! by its JSON path, e.g. `messages[0].role`).

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// The largest body a route accepts and how long it may take to arrive; registered as app
/// data by start-up.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub bytes: usize,
    pub timeout: Duration,
}

impl Default for BodyLimit {
    fn default() -> Self {
        Self {
            bytes: 1024 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Whether the request declares a JSON body: `application/json` or a `+json` type, any
/// parameters (`charset=utf-8`) allowed.
fn declares_json(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .get(essence.len().saturating_sub(5)..)
            .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
            && essence
                .get(..12)
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case("application/"))
}

/// A JSON body deserialized into `T`, or the precise reason it could not be.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let rules = req
            .app_data::<web::Data<BodyLimit>>()
            .map_or_else(BodyLimit::default, |rules| *rules.get_ref());
        let limit = rules.bytes;
        if !declares_json(req) {
            return Box::pin(futures_util::future::ready(Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "This route takes a JSON body: send it with `Content-Type: application/json`.",
            ))));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|length| length > limit) {
                return Err(too_large(limit));
            }
            let read = async {
                let mut body = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
                while let Some(chunk) = payload.next().await {
                    let chunk = chunk.map_err(|err| {
                        ApiError::new(
                            ErrorCode::InvalidRequest,
                            format!("could not read the request body: {err}"),
                        )
                    })?;
                    if body.len() + chunk.len() > limit {
                        return Err(too_large(limit));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            };
            let body = tokio::time::timeout(rules.timeout, read)
                .await
                .map_err(|_| {
                    ApiError::new(
                        ErrorCode::RequestTimeout,
                        format!(
                            "The request body did not arrive within {} seconds.",
                            rules.timeout.as_secs()
                        ),
                    )
                })??;
            parse(&body).map(ValidJson)
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("The request body is larger than the limit of {limit} bytes."),
    )
}

/// Deserializes with the path of the failing field kept, for a message a client can act on.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "The request body is empty; send a JSON object.",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(describe)?;
    deserializer.end().map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("We could not parse the JSON body of your request: {err}"),
        )
    })?;
    Ok(value)
}

fn describe(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    {
        let inner = err.inner();
        if !inner.is_data() {
            return ApiError::new(
                ErrorCode::InvalidJson,
                format!("We could not parse the JSON body of your request: {inner}"),
            );
        }
        let message = strip_position(&inner.to_string());
        let mut path = err.path().to_string();
        // serde reports a missing field at its parent; name the field itself.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            path = if path == "." {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
        }
        if path == "." {
            return ApiError::new(
                ErrorCode::InvalidRequest,
                format!("Invalid request body: {message}"),
            );
        }
        ApiError::invalid_field(
            path.clone(),
            format!("Invalid value for '{path}': {message}"),
        )
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only deserialized")]
    struct Request {
        model: String,
        messages: Vec<Message>,
    }

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only deserialized")]
    struct Message {
        role: String,
    }

    #[test]
    fn malformed_json_is_invalid_json() {
        let err = parse::<Request>(b"{\"model\": ").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidJson);
        assert!(parse::<Request>(b"{} trailing").is_err());
        assert_eq!(
            parse::<Request>(b"").unwrap_err().code,
            ErrorCode::InvalidJson
        );
    }

    #[test]
    fn a_wrong_type_names_the_nested_field() {
        let err = parse::<Request>(br#"{"model":"m","messages":[{"role":7}]}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(err.param.as_deref(), Some("messages[0].role"));
        assert!(
            err.message
                .contains("invalid type: integer `7`, expected a string"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_missing_field_names_the_field() {
        let err = parse::<Request>(br#"{"messages":[]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("model"));
        let err = parse::<Request>(br#"{"model":"m","messages":[{}]}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages[0].role"));
    }
}
