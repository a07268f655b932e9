//! The ids everything is addressed by: [`TenantId`], [`SessionId`] and [`ExecutionId`]. Each
//! wraps an `Arc<str>` (cloning one is a counter bump), serialises as the bare string (stored
//! JSON and Redis keys are unchanged by the wrapping) and is built only through
//! [`TenantId::parse`] and its siblings, which accept at most [`MAX_ID_LEN`] characters of
//! letters, digits and `-_.:@` — the one rule the HTTP boundary checks client ids against —
//! or, for executions, [`ExecutionId::generate`]. Ids read back from the store are trusted:
//! only what passed a constructor was ever written.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The longest id accepted, so no client makes the server store or echo a huge key.
pub const MAX_ID_LEN: usize = 128;

/// Why a string is not an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidId {
    Empty,
    TooLong(usize),
    ForbiddenCharacter,
}

impl fmt::Display for InvalidId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => formatter.write_str("is empty"),
            Self::TooLong(len) => {
                write!(
                    formatter,
                    "is {len} characters long; at most {MAX_ID_LEN} are allowed."
                )
            }
            Self::ForbiddenCharacter => {
                formatter.write_str("may only contain letters, digits and - _ . : @")
            }
        }
    }
}

impl std::error::Error for InvalidId {}

/// Checks `value` against the id rule.
pub fn check_id(value: &str) -> Result<(), InvalidId> {
    if value.is_empty() {
        return Err(InvalidId::Empty);
    }
    if value.len() > MAX_ID_LEN {
        return Err(InvalidId::TooLong(value.len()));
    }
    if !value.bytes().all(is_id_byte) {
        return Err(InvalidId::ForbiddenCharacter);
    }
    Ok(())
}

fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':' | b'@')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        /// The bare string, as `#[serde(transparent)]` would write it (serde's `rc` feature,
        /// which derives this for `Arc<str>`, is off in the workspace).
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(|value| Self(value.into()))
            }
        }

        impl $name {
            /// `value` as an id, if it follows the id rule.
            pub fn parse(value: impl AsRef<str> + Into<Arc<str>>) -> Result<Self, InvalidId> {
                check_id(value.as_ref())?;
                Ok(Self(value.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, formatter)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Reads as the string it is, so key builders and formatters take it where they took
        /// a `&str`; the wrapper is about who may build one, not about hiding the text.
        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }
    };
}

id_type!(
    /// The tenant an API key stands for; ids of one tenant never reach another.
    TenantId
);
id_type!(
    /// A conversation's id within its tenant and user, chosen by the client or generated.
    SessionId
);
id_type!(
    /// A run of a workflow.
    ExecutionId
);

impl ExecutionId {
    /// A fresh, unguessable execution id.
    pub fn generate() -> Self {
        Self(format!("exec_{}", uuid::Uuid::new_v4().simple()).into())
    }
}

/// The tenant every request runs as when no API keys are configured.
pub const DEFAULT_TENANT: &str = "default";

impl TenantId {
    /// The tenant of a server without API keys ([`DEFAULT_TENANT`]).
    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.into())
    }
}

impl SessionId {
    /// A fresh session id, for a turn that names none.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_rule_and_serialise_as_bare_strings() {
        let id = TenantId::parse("acme").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"acme\"");
        assert_eq!(serde_json::from_str::<TenantId>("\"acme\"").unwrap(), id);
        assert_eq!(id.to_string(), "acme");
        assert_eq!(SessionId::parse(""), Err(InvalidId::Empty));
        assert_eq!(
            SessionId::parse("a".repeat(MAX_ID_LEN + 1)),
            Err(InvalidId::TooLong(MAX_ID_LEN + 1))
        );
        for bad in ["a b", "a\r\nb", "é", "a/b"] {
            assert_eq!(ExecutionId::parse(bad), Err(InvalidId::ForbiddenCharacter));
        }
        assert!(SessionId::parse("user@example.com:1").is_ok());
        assert!(ExecutionId::parse(ExecutionId::generate().as_str()).is_ok());
    }
}
