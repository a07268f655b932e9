//! The settings for tenants and replicas: `[auth]` (API keys, each naming its tenant and that
//! tenant's limits) and `[store]` (where sessions, leases and rate-limit counters live: in
//! memory, or a Redis URL that replicas share). After the layers are merged,
//! [`AuthSettings::resolve_keys`] reads each `key_env` variable and checks every key entry,
//! and [`StoreSettings::check`] the URL, so a mistake stops start-up with one line naming it.
//! Keys and passwords in URLs never show in `{:?}` output.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

pub use kubiya_actors::store::redact_url;
use kubiya_actors::store::{RedisEndpoint, RedisTls, TenantId};

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// With none, auth is off and every request runs as the default tenant.
    pub api_keys: Vec<ApiKeySettings>,
}

/// One API key: `key` itself or `key_env`, the variable holding it.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub key_env: String,
    pub tenant: String,
    /// Requests per minute across every replica; absent means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Chat turns in progress at once; absent means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
    /// Workflow executions running at once; absent means `runner.max_concurrent_executions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_executions: Option<u32>,
    /// The supervised MCP servers (`"time"`) and tools (`"time__get_current_time"`) this key
    /// may see and call; absent means all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_allow: Option<Vec<String>>,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `redis://[user:password@]host:port/db`; empty keeps everything in this process.
    pub url: String,
    /// Prefix of every Redis key, so deployments can share one Redis.
    pub key_prefix: String,
    /// A turn lease or stream permit whose replica died frees itself after this long.
    pub lease_ttl_ms: u64,
    /// Bound on each Redis command and connection attempt.
    pub timeout_ms: u64,
    /// For `rediss://`: a PEM file with the CA that signed Redis's certificate; empty trusts
    /// the system's roots.
    pub tls_ca_file: String,
    /// For `rediss://` servers that require mutual TLS: the client certificate and key (PEM).
    pub tls_cert_file: String,
    pub tls_key_file: String,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            key_prefix: "kubiya".into(),
            lease_ttl_ms: 30_000,
            timeout_ms: 1_000,
            tls_ca_file: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
        }
    }
}

impl AuthSettings {
    /// Fills each `key` from its `key_env` variable (read through `env`) and checks every entry.
    pub fn resolve_keys(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let mut seen = HashSet::new();
        for (index, entry) in self.api_keys.iter_mut().enumerate() {
            let setting = format!("auth.api_keys[{index}]");
            let invalid =
                |why: String| ConfigError::new(format!("invalid setting {setting}: {why}"));
            match (entry.key.is_empty(), entry.key_env.is_empty()) {
                (false, false) => {
                    return Err(invalid("set `key` or `key_env`, not both".into()));
                }
                (true, true) => return Err(invalid("`key` or `key_env` is required".into())),
                (true, false) => {
                    entry.key = env(&entry.key_env)
                        .filter(|key| !key.is_empty())
                        .ok_or_else(|| {
                            invalid(format!(
                                "environment variable {} (key_env) is not set",
                                entry.key_env
                            ))
                        })?;
                }
                (false, true) => {}
            }
            if entry.tenant.trim().is_empty() {
                return Err(invalid("`tenant` must not be empty".into()));
            }
            // The tenant names store keys and stream permits, so it follows the id rule.
            if let Err(why) = TenantId::parse(entry.tenant.as_str()) {
                return Err(invalid(format!("`tenant` {why}")));
            }
            if entry.requests_per_minute == Some(0)
                || entry.max_concurrent_streams == Some(0)
                || entry.max_concurrent_executions == Some(0)
            {
                return Err(invalid(
                    "limits must be at least 1; leave one out for no limit".into(),
                ));
            }
            if !seen.insert(entry.key.clone()) {
                return Err(invalid("the same key is configured twice".into()));
            }
        }
        Ok(())
    }
}

impl StoreSettings {
    /// Where Redis is, for the clients of the session store, limits and executions.
    pub fn endpoint(&self) -> RedisEndpoint {
        let path = |file: &str| (!file.is_empty()).then(|| PathBuf::from(file));
        RedisEndpoint {
            url: self.url.clone(),
            tls: RedisTls {
                ca_file: path(&self.tls_ca_file),
                cert_file: path(&self.tls_cert_file),
                key_file: path(&self.tls_key_file),
            },
        }
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        if self.url.is_empty() {
            return Ok(());
        }
        self.endpoint().client().map_err(|why| {
            ConfigError::new(format!(
                "invalid setting store.url (`{}`) or store.tls_*: {why}; expected \
                 redis://host:port/db, or rediss:// with readable PEM files",
                redact_url(&self.url)
            ))
        })?;
        if self.lease_ttl_ms < 300 || self.timeout_ms == 0 {
            return Err(ConfigError::new(
                "invalid setting store: lease_ttl_ms must be at least 300 and timeout_ms at least 1",
            ));
        }
        Ok(())
    }
}

// Keys are secrets: they never reach a log line, not even through `{:?}`.
impl fmt::Debug for ApiKeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeySettings")
            .field("key_env", &self.key_env)
            .field("tenant", &self.tenant)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("max_concurrent_streams", &self.max_concurrent_streams)
            .field("max_concurrent_executions", &self.max_concurrent_executions)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("lease_ttl_ms", &self.lease_ttl_ms)
            .field("timeout_ms", &self.timeout_ms)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, key_env: &str, tenant: &str) -> ApiKeySettings {
        ApiKeySettings {
            key: key.into(),
            key_env: key_env.into(),
            tenant: tenant.into(),
            ..Default::default()
        }
    }

    #[test]
    fn key_env_is_read_and_each_mistake_is_named() {
        let mut auth = AuthSettings {
            api_keys: vec![entry("sk-a", "", "a"), entry("", "TEAM_B_KEY", "b")],
        };
        auth.resolve_keys(|name| (name == "TEAM_B_KEY").then(|| "sk-b".to_owned()))
            .unwrap();
        assert_eq!(auth.api_keys[1].key, "sk-b");

        let cases = [
            (entry("", "MISSING", "a"), "MISSING"),
            (entry("k", "ALSO", "a"), "not both"),
            (entry("", "", "a"), "required"),
            (entry("k", "", " "), "tenant"),
            // A tenant names store keys: it follows the id rule, like session ids.
            (entry("k", "", "team a"), "`tenant` may only contain"),
            (
                entry("k", "", &"t".repeat(129)),
                "`tenant` is 129 characters long",
            ),
        ];
        for (bad, expected) in cases {
            let mut auth = AuthSettings {
                api_keys: vec![bad],
            };
            let err = auth.resolve_keys(|_| None).unwrap_err().to_string();
            assert!(err.starts_with("invalid setting auth.api_keys[0]"), "{err}");
            assert!(err.contains(expected), "{err}");
        }
        let mut twice = AuthSettings {
            api_keys: vec![entry("k", "", "a"), entry("k", "", "b")],
        };
        let err = twice.resolve_keys(|_| None).unwrap_err().to_string();
        assert!(
            err.contains("api_keys[1]") && err.contains("twice"),
            "{err}"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let key = entry("sk-secret-value", "", "a");
        assert!(!format!("{key:?}").contains("sk-secret-value"));
        let store = StoreSettings {
            url: "redis://user:hunter2@cache:6379/0".into(),
            ..Default::default()
        };
        let shown = format!("{store:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("cache:6379/0"), "{shown}");
    }

    #[test]
    fn a_bad_store_url_is_refused() {
        let store = StoreSettings {
            url: "http://cache:6379".into(),
            ..Default::default()
        };
        let err = store.check().unwrap_err().to_string();
        assert!(err.starts_with("invalid setting store.url"), "{err}");
        let good = StoreSettings {
            url: "redis://127.0.0.1:6379/2".into(),
            ..Default::default()
        };
        assert!(good.check().is_ok());
    }
}
