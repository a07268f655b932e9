//! Tenants. [`Tenants`] knows the configured API keys, which tenant each one stands for and
//! that tenant's limits, and counts requests and streams against those limits with the
//! [`RateLimiter`]. The auth middleware ([`crate::auth`]) puts the caller's [`Tenant`] into
//! the request; handlers take it as an extractor and key everything they store by it, so one
//! tenant's sessions do not exist for another. Without API keys every request runs as the
//! one default tenant, limited only in its concurrent executions.

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{Ready, ready};
use kubiya_actors::limits::{RateLimiter, StreamPermit, TenantLimits};
use kubiya_actors::mcp::McpAccess;
use kubiya_actors::store::TenantId;
use subtle::ConstantTimeEq;

use crate::config::AuthSettings;
use crate::error::ApiError;

pub use kubiya_actors::store::DEFAULT_TENANT;

/// The tenant a request runs as, with its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub limits: TenantLimits,
    /// The MCP tools this key may see and call.
    pub mcp_access: McpAccess,
}

impl Tenant {
    pub fn default_tenant() -> Self {
        Self {
            id: TenantId::default_tenant(),
            limits: TenantLimits::default(),
            mcp_access: McpAccess::All,
        }
    }
}

/// Handlers take the caller's tenant as an argument; the auth middleware always sets it.
impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Tenant>()
                .cloned()
                .ok_or_else(|| ApiError::internal("no tenant: the auth middleware is not mounted")),
        )
    }
}

/// The configured keys and the limiter their tenants are counted by.
pub struct Tenants {
    keys: Vec<(Box<[u8]>, Tenant)>,
    /// Shared with the Sessions, which take an execution slot for each run they start.
    limiter: Arc<RateLimiter>,
    /// Built once: without keys every request clones it.
    default: Tenant,
}

impl Tenants {
    /// Keys from resolved settings (every `key_env` already read into `key`); a tenant whose
    /// key sets no execution limit gets `max_executions` (0: unlimited).
    pub fn new(
        auth: &AuthSettings,
        limiter: RateLimiter,
        max_executions: u32,
    ) -> Result<Self, String> {
        let default_executions = (max_executions > 0).then_some(max_executions);
        let keys = auth
            .api_keys
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                if entry.key.is_empty() {
                    return Err(format!("auth.api_keys[{index}] has no key"));
                }
                let id = TenantId::parse(entry.tenant.as_str())
                    .map_err(|why| format!("auth.api_keys[{index}].tenant {why}"))?;
                let tenant = Tenant {
                    id,
                    limits: TenantLimits {
                        requests_per_minute: entry.requests_per_minute,
                        max_concurrent_streams: entry.max_concurrent_streams,
                        max_concurrent_executions: entry
                            .max_concurrent_executions
                            .or(default_executions),
                    },
                    mcp_access: entry
                        .mcp_allow
                        .clone()
                        .map_or(McpAccess::All, McpAccess::Only),
                };
                Ok((entry.key.as_bytes().into(), tenant))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            limiter: Arc::new(limiter),
            default: Tenant {
                limits: TenantLimits {
                    max_concurrent_executions: default_executions,
                    ..TenantLimits::default()
                },
                ..Tenant::default_tenant()
            },
        })
    }

    /// Who a request runs as when auth is off.
    pub fn default_tenant(&self) -> Tenant {
        self.default.clone()
    }

    /// Whether requests must carry a key.
    pub fn auth_enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// How many distinct tenants the keys name.
    pub fn tenant_count(&self) -> usize {
        let mut names: Vec<&str> = self.keys.iter().map(|(_, tenant)| &*tenant.id).collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }

    /// The tenant `presented` is the key of. Every configured key is compared, each in
    /// constant time, so the time taken does not tell how much of a key was right.
    pub fn tenant_for(&self, presented: &[u8]) -> Option<&Tenant> {
        let mut found = None;
        for (key, tenant) in &self.keys {
            if bool::from(key[..].ct_eq(presented)) {
                found = Some(tenant);
            }
        }
        found
    }

    /// Counts one request against the tenant's per-minute limit.
    pub async fn admit_request(&self, tenant: &Tenant) -> Result<(), ApiError> {
        Ok(self
            .limiter
            .admit_request(&tenant.id, tenant.limits)
            .await?)
    }

    /// A slot for one more concurrent chat turn of the tenant, held until its stream ends.
    pub async fn open_stream(&self, tenant: &Tenant) -> Result<StreamPermit, ApiError> {
        Ok(self.limiter.open_stream(&tenant.id, tenant.limits).await?)
    }

    /// A slot for one more running execution of `tenant`, or 429 when it has too many.
    /// The limiter the tenants are counted by, for Sessions that start executions.
    pub fn limiter(&self) -> Arc<RateLimiter> {
        self.limiter.clone()
    }

    pub async fn open_execution(&self, tenant: &Tenant) -> Result<StreamPermit, ApiError> {
        Ok(self
            .limiter
            .open_execution(&tenant.id, tenant.limits)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeySettings;
    use kubiya_actors::limits::local::LocalLimiter;

    #[test]
    fn a_key_maps_to_its_tenant_and_nothing_else_does() {
        let auth = AuthSettings {
            api_keys: vec![
                ApiKeySettings {
                    key: "sk-a".into(),
                    tenant: "team-a".into(),
                    requests_per_minute: Some(5),
                    ..Default::default()
                },
                ApiKeySettings {
                    key: "sk-b".into(),
                    tenant: "team-b".into(),
                    ..Default::default()
                },
            ],
        };
        let tenants = Tenants::new(&auth, RateLimiter::Local(LocalLimiter::default()), 0).unwrap();
        assert!(tenants.auth_enabled());
        assert_eq!(tenants.tenant_count(), 2);
        let a = tenants.tenant_for(b"sk-a").unwrap();
        assert_eq!(&*a.id, "team-a");
        assert_eq!(a.limits.requests_per_minute, Some(5));
        assert_eq!(&*tenants.tenant_for(b"sk-b").unwrap().id, "team-b");
        for wrong in [&b"sk-"[..], b"sk-aa", b"", b"SK-A"] {
            assert!(tenants.tenant_for(wrong).is_none());
        }
    }
}
