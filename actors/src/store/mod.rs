//! The storage floor under the domain: the one [`RedisConnection`] a replica shares (and
//! [`RedisEndpoint`], where Redis is), how key parts are escaped ([`key_part`]), the clock
//! entries are stamped with ([`now_ms`]), [`StoreError`] and the ids keys are made of
//! ([`TenantId`], [`SessionId`], [`ExecutionId`]). The session store, the turn log,
//! rate limits, kept documents and shared executions build on it; it imports none of them.

mod clock;
pub mod connection;
mod error;
mod ids;
mod keys;

pub use clock::now_ms;
pub use connection::{RedisConnection, RedisEndpoint, RedisTls, RenewedHold, redact_url};
pub use error::StoreError;
pub use ids::{DEFAULT_TENANT, ExecutionId, InvalidId, MAX_ID_LEN, SessionId, TenantId, check_id};
pub use keys::key_part;
