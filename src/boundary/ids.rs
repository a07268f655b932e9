//! Identifiers a client chooses that become store keys and response headers: session ids and
//! user ids. Each is at most [`MAX_ID_LEN`] characters of letters, digits and `-_.:@`, so a
//! client cannot make the server store or echo 100 KB of header, nor smuggle separators into
//! keys (the rule is the id types' own, `kubiya_actors::store::check_id`); anything else is a
//! 400 naming the field. An empty value counts as absent, so two unrelated clients sending
//! `""` do not share one session.

pub use kubiya_actors::store::MAX_ID_LEN;
use kubiya_actors::store::{InvalidId, SessionId, check_id};

use crate::error::ApiError;

/// `value` checked as the field `param`: `Ok(None)` when absent or empty.
pub fn client_id(value: Option<String>, param: &str) -> Result<Option<String>, ApiError> {
    checked(value, param, plain)
}

/// A session id the client named in the field `param`: `Ok(None)` when absent or empty.
pub fn session_id(value: Option<String>, param: &str) -> Result<Option<SessionId>, ApiError> {
    checked(value, param, SessionId::parse)
}

/// The first of `candidates` (value, field) that is present, each checked as its field
/// and built by `parse` (e.g. [`SessionId::parse`]): e.g. a body's `session_id`, then the
/// `X-Session-Id` header.
pub fn first_present<T, const N: usize>(
    candidates: [(Option<String>, &str); N],
    parse: impl Fn(String) -> Result<T, InvalidId>,
) -> Result<Option<T>, ApiError> {
    for (value, param) in candidates {
        if let Some(id) = checked(value, param, &parse)? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// An id with no type of its own (a user id): the string, once it follows the id rule.
pub fn plain(value: String) -> Result<String, InvalidId> {
    check_id(&value).map(|()| value)
}

fn checked<T>(
    value: Option<String>,
    param: &str,
    parse: impl Fn(String) -> Result<T, InvalidId>,
) -> Result<Option<T>, ApiError> {
    let Some(value) = value.filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    parse(value)
        .map(Some)
        .map_err(|error| ApiError::invalid_field(param, format!("`{param}` {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_absent_and_bad_ids_name_the_field() {
        assert_eq!(client_id(Some(String::new()), "session_id").unwrap(), None);
        assert_eq!(client_id(None, "session_id").unwrap(), None);
        assert_eq!(
            client_id(Some("user@example.com".into()), "user_id").unwrap(),
            Some("user@example.com".into())
        );
        for bad in [
            "a".repeat(MAX_ID_LEN + 1),
            "a b".into(),
            "a\r\nb".into(),
            "é".into(),
        ] {
            let error = client_id(Some(bad), "session_id").unwrap_err();
            assert_eq!(error.param.as_deref(), Some("session_id"));
        }
        assert!(client_id(Some("x".repeat(MAX_ID_LEN)), "session_id").is_ok());
    }
}
