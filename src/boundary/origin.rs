//! Which web origins may drive the API from a browser. A browser attaches `Origin` to every
//! cross-origin request and to every WebSocket handshake; other clients (SDKs, curl) send
//! none. [`OriginPolicy`] allows the configured `server.cors.allowed_origins` (they also get
//! CORS headers) and the service's own pages: an origin naming the very host and port the
//! request was sent to, when that host is an IP address or `localhost` — a page on a domain
//! name could be a DNS-rebinding page that only pretends to be us. When API keys are
//! required ([`OriginPolicy::with_api_keys`]), a page whose origin is exactly the request's
//! host counts as our own whatever its name: a rebinding page has no key (the console keeps
//! it in its own origin's storage, and browsers attach no credentials to these requests), so
//! every call it makes is refused with 401 anyway, and a console opened by a domain name
//! needs no configuration.

use std::net::IpAddr;

use crate::config::CorsSettings;

#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Configured origins, normalised (lowercase, no trailing slash).
    allowed: Vec<String>,
    /// `*` was configured: every origin is allowed.
    any: bool,
    /// API keys are required, so a page on any name of the request's own host is ours.
    api_keys: bool,
}

/// What the policy says about one request's `Origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No `Origin`: not a cross-origin browser request.
    Absent,
    /// The service's own page.
    SameOrigin,
    /// A configured origin: allowed, with CORS headers.
    Cors,
    Refused,
}

impl OriginVerdict {
    pub fn is_allowed(self) -> bool {
        self != Self::Refused
    }
}

impl OriginPolicy {
    pub fn new(cors: &CorsSettings) -> Self {
        let any = cors
            .allowed_origins
            .iter()
            .any(|origin| origin.trim() == "*");
        let allowed = cors
            .allowed_origins
            .iter()
            .map(|origin| normalise(origin))
            .filter(|origin| origin != "*" && !origin.is_empty())
            .collect();
        Self {
            allowed,
            any,
            api_keys: false,
        }
    }

    /// The policy of a server that requires API keys (see the module's note).
    pub fn with_api_keys(mut self, required: bool) -> Self {
        self.api_keys = required;
        self
    }

    /// The verdict on `origin` for a request sent to `host` (its `Host` header).
    pub fn judge(&self, origin: Option<&str>, host: Option<&str>) -> OriginVerdict {
        let Some(origin) = origin else {
            return OriginVerdict::Absent;
        };
        let origin = normalise(origin);
        if self.any || self.allowed.contains(&origin) {
            return OriginVerdict::Cors;
        }
        match host {
            Some(host) if is_own_page(&origin, host, self.api_keys) => OriginVerdict::SameOrigin,
            _ => OriginVerdict::Refused,
        }
    }
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `http://H` or `https://H` where `H` is exactly the request's `Host`, and a name that DNS
/// cannot rebind unless `any_name` (API keys are required).
fn is_own_page(origin: &str, host: &str, any_name: bool) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    if authority != Some(host.as_str()) {
        return false;
    }
    if any_name {
        return true;
    }
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host
            .rsplit_once(':')
            .map_or(host.as_str(), |(name, _)| name),
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> OriginPolicy {
        OriginPolicy::new(&CorsSettings {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        })
    }

    #[test]
    fn configured_origins_get_cors_and_others_are_refused() {
        let policy = policy(&["https://App.example.com/"]);
        let host = Some("127.0.0.1:8000");
        assert_eq!(
            policy.judge(Some("https://app.example.com"), host),
            OriginVerdict::Cors
        );
        assert_eq!(
            policy.judge(Some("https://evil.example"), host),
            OriginVerdict::Refused
        );
        assert_eq!(policy.judge(Some("null"), host), OriginVerdict::Refused);
        assert_eq!(policy.judge(None, host), OriginVerdict::Absent);
        assert_eq!(
            self::policy(&["*"]).judge(Some("https://evil.example"), host),
            OriginVerdict::Cors
        );
    }

    #[test]
    fn our_own_pages_are_allowed_unless_the_name_could_be_rebound() {
        let policy = policy(&[]);
        for (origin, host) in [
            ("http://127.0.0.1:8000", "127.0.0.1:8000"),
            ("http://localhost:8000", "localhost:8000"),
            ("http://[::1]:8000", "[::1]:8000"),
        ] {
            assert_eq!(
                policy.judge(Some(origin), Some(host)),
                OriginVerdict::SameOrigin,
                "{origin}"
            );
        }
        for (origin, host) in [
            // DNS rebinding: the attacker's name resolving to us.
            ("http://evil.example:8000", "evil.example:8000"),
            ("http://127.0.0.1:9999", "127.0.0.1:8000"),
            ("http://localhost:8000", "127.0.0.1:8000"),
        ] {
            assert_eq!(
                policy.judge(Some(origin), Some(host)),
                OriginVerdict::Refused,
                "{origin}"
            );
        }
    }

    #[test]
    fn with_api_keys_a_page_of_the_requests_own_host_is_ours_whatever_its_name() {
        let policy = policy(&[]).with_api_keys(true);
        for (origin, host) in [
            ("https://agents.example.com", "agents.example.com"),
            ("http://agents.example.com:8000", "agents.example.com:8000"),
            ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ] {
            assert_eq!(
                policy.judge(Some(origin), Some(host)),
                OriginVerdict::SameOrigin,
                "{origin}"
            );
        }
        // Another page, or the same name on another port, is still refused.
        for (origin, host) in [
            ("https://evil.example", "agents.example.com"),
            ("http://agents.example.com:9999", "agents.example.com:8000"),
            (
                "https://agents.example.com.evil.example",
                "agents.example.com",
            ),
        ] {
            assert_eq!(
                policy.judge(Some(origin), Some(host)),
                OriginVerdict::Refused,
                "{origin}"
            );
        }
    }
}
