//! [`Identity`]: who a request is for — the tenant its API key stands for (set by the auth
//! middleware), the user and the session — taken by every route from one extractor, so every
//! route reads `X-User-Id` and `X-Session-Id` the same way. A field of the request itself
//! (`user_id`, `session_id` in the body or query) comes before its header; each value is
//! checked as a client id ([`ids`]) when it is used, naming the field it came from.

use actix_web::dev::Payload;
use actix_web::http::header::HeaderName;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::{Ready, ready};
use kubiya_actors::session::SessionKey;
use kubiya_actors::store::SessionId;

use crate::boundary::ids;
use crate::error::ApiError;
use crate::tenant::Tenant;

/// The header naming the session to continue; every turn's answer carries it too.
pub const SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");
/// The header naming the user.
pub const USER_ID: HeaderName = HeaderName::from_static("x-user-id");
/// The user of a request that names none.
pub const DEFAULT_USER: &str = "default_user";

/// The caller: its tenant, and the user and session its headers name.
#[derive(Debug, Clone)]
pub struct Identity {
    pub tenant: Tenant,
    user_header: Option<String>,
    session_header: Option<String>,
}

impl Identity {
    /// The user: the request's own `field` when present, else `X-User-Id`, else the default.
    pub fn user(&self, field: Option<String>, param: &str) -> Result<String, ApiError> {
        Ok(ids::first_present(
            [(field, param), (self.user_header.clone(), "X-User-Id")],
            ids::plain,
        )?
        .unwrap_or_else(|| DEFAULT_USER.to_owned()))
    }

    /// The session to continue: the request's `session_id` when present, else
    /// `X-Session-Id`; `None` starts a new one.
    pub fn session_id(&self, field: Option<String>) -> Result<Option<SessionId>, ApiError> {
        ids::first_present(
            [
                (field, "session_id"),
                (self.session_header.clone(), "X-Session-Id"),
            ],
            SessionId::parse,
        )
    }

    /// The key a session of this tenant is stored under.
    pub fn session_key(&self, user: String, id: SessionId) -> SessionKey {
        SessionKey {
            tenant: self.tenant.id.clone(),
            user,
            id,
        }
    }

    /// A turn's session from the request's `user_id` and `session_id` fields and the headers:
    /// its key (a fresh id when none is named) and whether it continues a stored session.
    pub fn turn_session(
        &self,
        user: Option<String>,
        session_id: Option<String>,
    ) -> Result<(SessionKey, bool), ApiError> {
        let user = self.user(user, "user_id")?;
        let named = self.session_id(session_id)?;
        let continuing = named.is_some();
        let id = named.unwrap_or_else(SessionId::generate);
        Ok((self.session_key(user, id), continuing))
    }
}

impl FromRequest for Identity {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let header = |name: &HeaderName| {
            req.headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let identity = Tenant::from_request(req, payload)
            .into_inner()
            .map(|tenant| Identity {
                tenant,
                user_header: header(&USER_ID),
                session_header: header(&SESSION_ID),
            });
        ready(identity)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::HttpMessage;
    use actix_web::test::TestRequest;

    use super::*;

    fn identity(headers: &[(&str, &str)]) -> Identity {
        let mut request = TestRequest::default();
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let request = request.to_http_request();
        request.extensions_mut().insert(Tenant::default_tenant());
        Identity::from_request(&request, &mut Payload::None)
            .into_inner()
            .expect("the tenant is set")
    }

    #[test]
    fn the_request_field_comes_before_the_header_and_both_are_checked() {
        let caller = identity(&[("x-user-id", "alice"), ("x-session-id", "s-1")]);
        assert_eq!(caller.user(None, "user_id").unwrap(), "alice");
        assert_eq!(caller.user(Some("bob".into()), "user_id").unwrap(), "bob");
        assert_eq!(caller.session_id(None).unwrap().as_deref(), Some("s-1"));
        let (key, continuing) = caller.turn_session(None, Some("s-2".into())).unwrap();
        assert_eq!((key.user.as_str(), key.id.as_str()), ("alice", "s-2"));
        assert!(continuing);

        let anonymous = identity(&[]);
        let (key, continuing) = anonymous.turn_session(None, None).unwrap();
        assert_eq!(
            (key.tenant.as_str(), key.user.as_str()),
            ("default", DEFAULT_USER)
        );
        assert!(!continuing);

        let bad = identity(&[("x-user-id", "a b")]);
        let error = bad.user(None, "user_id").unwrap_err();
        assert_eq!(error.param.as_deref(), Some("X-User-Id"));
    }
}
