//! OAuth for remote MCP servers (the 2025-11-25 authorization flow, client credentials grant):
//! what [`super::http_client`] does when a server answers 401, or 403 `insufficient_scope`.
//!
//! The server's `WWW-Authenticate` challenge names its protected resource metadata (RFC 9728;
//! the well-known locations are tried when it does not), which names its authorization server;
//! that server's metadata (RFC 8414, then OpenID discovery) gives the token endpoint. The
//! client credentials configured for the server ([`super::config::McpOAuthConfig`]) buy a
//! bearer token there, bound to the server with the `resource` parameter (RFC 8707), with the
//! scope the challenge asked for, or the metadata lists. Tokens are kept per server in a
//! [`TokenCache`] that outlives reconnects, refreshed shortly before they expire (with the
//! refresh token when one came, else a new grant) and replaced when the server refuses one.
//!
//! Credentials go only to an authorization server whose metadata names itself as the issuer
//! we looked up, over HTTPS (plain HTTP only on loopback), and only ever the one configured as
//! `issuer` or, without it, the first one this server named: a server cannot redirect them
//! elsewhere later. Secrets and tokens never reach a log line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use awc::Client;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

/// How long one metadata or token request may take.
const OAUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest metadata document or token response we read.
const MAX_OAUTH_BODY: usize = 64 * 1024;
/// A token is renewed when less than this (or a tenth of its life) remains.
const RENEW_MARGIN: Duration = Duration::from_secs(30);

/// What `application/x-www-form-urlencoded` escapes (all but alphanumerics and `*-._`).
const FORM_ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// The configured client, references already expanded.
#[derive(Clone)]
pub(crate) struct OAuthCredentials {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    pub issuer: Option<String>,
}

/// What a 401/403 `WWW-Authenticate: Bearer ...` challenge says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
}

impl Challenge {
    /// The `Bearer` challenge among those in a `WWW-Authenticate` value.
    pub(crate) fn parse(header: &str) -> Self {
        let mut challenge = Self::default();
        let mut in_bearer = false;
        for (key, value) in auth_params(header) {
            match (key, value) {
                (scheme, None) => in_bearer = scheme.eq_ignore_ascii_case("bearer"),
                (key, Some(value)) if in_bearer => match key.to_ascii_lowercase().as_str() {
                    "resource_metadata" => challenge.resource_metadata = Some(value),
                    "scope" => challenge.scope = Some(value),
                    "error" => challenge.error = Some(value),
                    _ => {}
                },
                _ => {}
            }
        }
        challenge
    }

    pub(crate) fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// A `WWW-Authenticate` value as a flat list: a scheme is `(name, None)`, a parameter
/// `(name, Some(value))` with quoted strings unescaped.
fn auth_params(header: &str) -> Vec<(String, Option<String>)> {
    let mut items = Vec::new();
    let mut chars = header.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != ',' && *c != '='))
                .collect();
        if name.is_empty() {
            if chars.next().is_none() {
                return items;
            }
            continue;
        }
        while chars.next_if(|c| *c == ' ').is_some() {}
        if chars.next_if_eq(&'=').is_none() {
            items.push((name, None));
            continue;
        }
        while chars.next_if(|c| *c == ' ').is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
            value.truncate(value.trim_end().len());
        }
        items.push((name, Some(value)));
    }
}

/// A server's tokens and where they come from; shared by every connection to that server.
#[derive(Default)]
pub(crate) struct TokenCache {
    state: Mutex<CacheState>,
    /// One token request at a time per server.
    renewing: tokio::sync::Mutex<()>,
}

#[derive(Default, Clone)]
struct CacheState {
    token: Option<Token>,
    authority: Option<Authority>,
}

#[derive(Clone)]
struct Token {
    access: String,
    refresh: Option<String>,
    /// When to renew it (`None`: it does not expire).
    renew_at: Option<Instant>,
    scope: Option<String>,
}

impl Token {
    fn is_fresh(&self) -> bool {
        self.renew_at.is_none_or(|at| Instant::now() < at)
    }
}

/// The authorization server of a protected resource, as discovered.
#[derive(Clone)]
struct Authority {
    issuer: String,
    token_endpoint: String,
    auth_methods: Vec<String>,
    /// The resource identifier the tokens are bound to.
    resource: String,
    scopes_supported: Vec<String>,
}

/// The OAuth client of one remote server.
#[derive(Clone)]
pub(crate) struct OAuth {
    pub credentials: OAuthCredentials,
    pub cache: Arc<TokenCache>,
    /// The server's endpoint: the protected resource.
    pub server_url: String,
}

impl OAuth {
    fn snapshot(&self) -> CacheState {
        self.cache
            .state
            .lock()
            .map(|state| state.clone())
            .unwrap_or_default()
    }

    fn store(&self, change: impl FnOnce(&mut CacheState)) {
        if let Ok(mut state) = self.cache.state.lock() {
            change(&mut state);
        }
    }

    /// The token to send now, renewed first when it is about to expire; `None` before the
    /// server has asked for one.
    pub(crate) async fn current(&self, client: &Client) -> Option<String> {
        let token = self.snapshot().token?;
        if token.is_fresh() {
            return Some(token.access);
        }
        let _renewing = self.cache.renewing.lock().await;
        let CacheState { token, authority } = self.snapshot();
        let token = token?;
        if token.is_fresh() {
            return Some(token.access);
        }
        let authority = authority?;
        match self
            .renew(client, &authority, &token, token.scope.clone())
            .await
        {
            Ok(renewed) => Some(renewed),
            Err(problem) => {
                tracing::warn!(server = %self.server_url, %problem, "renewing the OAuth token failed");
                self.store(|state| state.token = None);
                None
            }
        }
    }

    /// After the server refused `rejected` (or no token) with `challenge`: discovers the
    /// authorization server (once) and gets a new token.
    pub(crate) async fn authorize(
        &self,
        client: &Client,
        challenge: &Challenge,
        rejected: Option<&str>,
    ) -> Result<String, String> {
        let _renewing = self.cache.renewing.lock().await;
        let CacheState { token, authority } = self.snapshot();
        // Another request got a new token while this one waited.
        if let Some(token) = &token
            && Some(token.access.as_str()) != rejected
            && !challenge.insufficient_scope()
        {
            return Ok(token.access.clone());
        }
        let authority = match authority {
            Some(authority) => authority,
            None => {
                let authority = self.discover(client, challenge).await?;
                self.store(|state| state.authority = Some(authority.clone()));
                authority
            }
        };
        let scope = self.scope_for(&authority, challenge, token.as_ref());
        self.grant(client, &authority, scope).await
    }

    /// The scope to ask for: configured, else what the challenge names (with what the
    /// refused token had, on a step-up), else what the resource lists, else none.
    fn scope_for(
        &self,
        authority: &Authority,
        challenge: &Challenge,
        token: Option<&Token>,
    ) -> Option<String> {
        if let Some(scope) = &self.credentials.scope {
            return Some(scope.clone());
        }
        if let Some(asked) = &challenge.scope {
            let mut scopes: Vec<&str> = Vec::new();
            if challenge.insufficient_scope()
                && let Some(held) = token.and_then(|token| token.scope.as_deref())
            {
                scopes.extend(held.split_whitespace());
            }
            for scope in asked.split_whitespace() {
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
            return Some(scopes.join(" "));
        }
        (!authority.scopes_supported.is_empty()).then(|| authority.scopes_supported.join(" "))
    }

    async fn discover(&self, client: &Client, challenge: &Challenge) -> Result<Authority, String> {
        let candidates = match &challenge.resource_metadata {
            Some(url) => vec![url.clone()],
            None => well_known(&self.server_url, "oauth-protected-resource", true),
        };
        let (metadata_url, resource) =
            first_document::<ResourceMetadata>(client, &candidates, "protected resource metadata")
                .await?;
        if !resource_covers(&resource.resource, &self.server_url) {
            return Err(format!(
                "the protected resource metadata at {metadata_url} is for `{}`, not this server",
                resource.resource
            ));
        }
        let issuer = match &self.credentials.issuer {
            Some(issuer) if resource.authorization_servers.contains(issuer) => issuer.clone(),
            Some(issuer) => {
                return Err(format!(
                    "the server's authorization servers {:?} do not include the configured issuer {issuer}",
                    resource.authorization_servers
                ));
            }
            None => resource
                .authorization_servers
                .first()
                .cloned()
                .ok_or("the protected resource metadata names no authorization server")?,
        };
        if let Some(pinned) = self.snapshot().authority
            && pinned.issuer != issuer
        {
            return Err(format!(
                "the server moved to another authorization server ({issuer}); the credentials stay with {}",
                pinned.issuer
            ));
        }
        check_transport(&issuer, "authorization server")?;
        let candidates = authorization_metadata_urls(&issuer);
        let (metadata_url, metadata) = first_document::<AuthorizationMetadata>(
            client,
            &candidates,
            "authorization server metadata",
        )
        .await?;
        // RFC 8414 §3.3: metadata for another issuer must not be used.
        if metadata.issuer != issuer {
            return Err(format!(
                "the authorization server metadata at {metadata_url} names issuer `{}`, not `{issuer}`",
                metadata.issuer
            ));
        }
        check_transport(&metadata.token_endpoint, "token endpoint")?;
        if let Some(grants) = &metadata.grant_types_supported
            && !grants.iter().any(|grant| grant == "client_credentials")
        {
            return Err(format!(
                "the authorization server {issuer} does not offer the client credentials grant (it offers {grants:?})"
            ));
        }
        Ok(Authority {
            issuer,
            token_endpoint: metadata.token_endpoint,
            auth_methods: metadata.token_endpoint_auth_methods_supported,
            resource: resource.resource,
            scopes_supported: resource.scopes_supported,
        })
    }

    /// A new token with the client credentials grant.
    async fn grant(
        &self,
        client: &Client,
        authority: &Authority,
        scope: Option<String>,
    ) -> Result<String, String> {
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if let Some(scope) = &scope {
            form.push(("scope", scope.clone()));
        }
        let token = self.token_request(client, authority, form, scope).await?;
        let access = token.access.clone();
        self.store(|state| state.token = Some(token));
        Ok(access)
    }

    /// Renews `token`: with its refresh token when it has one (a new grant if that fails).
    async fn renew(
        &self,
        client: &Client,
        authority: &Authority,
        token: &Token,
        scope: Option<String>,
    ) -> Result<String, String> {
        if let Some(refresh) = &token.refresh {
            let form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh.clone()),
            ];
            match self
                .token_request(client, authority, form, scope.clone())
                .await
            {
                Ok(mut renewed) => {
                    // A server that does not rotate refresh tokens keeps the old one valid.
                    renewed.refresh = renewed.refresh.or_else(|| Some(refresh.clone()));
                    let access = renewed.access.clone();
                    self.store(|state| state.token = Some(renewed));
                    return Ok(access);
                }
                Err(problem) => {
                    tracing::debug!(server = %self.server_url, %problem, "refresh refused; asking for a new token");
                }
            }
        }
        self.grant(client, authority, scope).await
    }

    /// Posts to the token endpoint with the client's authentication and the resource.
    async fn token_request(
        &self,
        client: &Client,
        authority: &Authority,
        mut form: Vec<(&'static str, String)>,
        scope: Option<String>,
    ) -> Result<Token, String> {
        form.push(("resource", authority.resource.clone()));
        let credentials = &self.credentials;
        let mut request = client
            .post(&authority.token_endpoint)
            .timeout(OAUTH_TIMEOUT)
            .insert_header(("Accept", "application/json"));
        let offers = |method: &str| {
            authority
                .auth_methods
                .iter()
                .any(|offered| offered == method)
        };
        match &credentials.client_secret {
            // RFC 8414: without a list, client_secret_basic is the default.
            Some(secret) if authority.auth_methods.is_empty() || offers("client_secret_basic") => {
                // RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
                request = request.basic_auth(
                    utf8_percent_encode(&credentials.client_id, FORM_ENCODED),
                    utf8_percent_encode(secret, FORM_ENCODED),
                );
            }
            Some(secret) if offers("client_secret_post") => {
                form.push(("client_id", credentials.client_id.clone()));
                form.push(("client_secret", secret.clone()));
            }
            Some(_) => {
                return Err(format!(
                    "the token endpoint accepts none of the client authentications we use (client_secret_basic, client_secret_post); it offers {:?}",
                    authority.auth_methods
                ));
            }
            None => form.push(("client_id", credentials.client_id.clone())),
        }
        let mut response = request
            .send_form(&form)
            .await
            .map_err(|error| format!("the token endpoint cannot be reached: {error}"))?;
        let status = response.status();
        let body = response
            .body()
            .limit(MAX_OAUTH_BODY)
            .await
            .map_err(|error| format!("reading the token response failed: {error}"))?;
        if !status.is_success() {
            let refusal = serde_json::from_slice::<TokenError>(&body).unwrap_or_default();
            return Err(format!(
                "the authorization server refused the token request (HTTP {}): {} {}",
                status.as_u16(),
                refusal.error,
                refusal.error_description
            )
            .trim_end()
            .to_owned());
        }
        let issued: TokenResponse = serde_json::from_slice(&body)
            .map_err(|error| format!("the token response is not usable: {error}"))?;
        if !issued.token_type.eq_ignore_ascii_case("bearer") {
            return Err(format!(
                "the authorization server issued a `{}` token; we use bearer tokens",
                issued.token_type
            ));
        }
        let renew_at = issued.expires_in.map(|seconds| {
            let life = Duration::from_secs(seconds);
            Instant::now() + life.saturating_sub(RENEW_MARGIN.min(life / 10))
        });
        tracing::debug!(server = %self.server_url, issuer = %authority.issuer, expires_in = ?issued.expires_in, "got an OAuth token");
        Ok(Token {
            access: issued.access_token,
            refresh: issued.refresh_token,
            renew_at,
            scope: issued.scope.or(scope),
        })
    }
}

#[derive(Deserialize)]
struct ResourceMetadata {
    resource: String,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

#[derive(Deserialize)]
struct AuthorizationMetadata {
    issuer: String,
    token_endpoint: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    grant_types_supported: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// `scheme://authority` and the path of `url` (without query or fragment).
fn split_url(url: &str) -> Option<(&str, &str)> {
    let after_scheme = url.find("://")? + 3;
    let path_start = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |at| after_scheme + at);
    let path_end = url[path_start..]
        .find(['?', '#'])
        .map_or(url.len(), |at| path_start + at);
    Some((&url[..path_start], &url[path_start..path_end]))
}

/// The well-known URLs for `suffix` about `url`: with the path inserted after the well-known
/// segment (RFC 8615 style, as RFC 9728 and RFC 8414 do), then (if `root_too`) at the root.
fn well_known(url: &str, suffix: &str, root_too: bool) -> Vec<String> {
    let Some((origin, path)) = split_url(url) else {
        return Vec::new();
    };
    let path = path.trim_end_matches('/');
    let mut urls = Vec::new();
    if !path.is_empty() {
        urls.push(format!("{origin}/.well-known/{suffix}{path}"));
    }
    if path.is_empty() || root_too {
        urls.push(format!("{origin}/.well-known/{suffix}"));
    }
    urls
}

/// Where an issuer's metadata may be, in the order the MCP specification gives.
fn authorization_metadata_urls(issuer: &str) -> Vec<String> {
    let mut urls = well_known(issuer, "oauth-authorization-server", false);
    urls.extend(well_known(issuer, "openid-configuration", false));
    if let Some((_, path)) = split_url(issuer)
        && !path.trim_end_matches('/').is_empty()
    {
        urls.push(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ));
    }
    urls
}

/// Whether tokens for `resource` may be used at `server_url`: the same origin, and the
/// server's path inside the resource's.
fn resource_covers(resource: &str, server_url: &str) -> bool {
    let (Some((resource_origin, resource_path)), Some((server_origin, server_path))) =
        (split_url(resource), split_url(server_url))
    else {
        return false;
    };
    let resource_path = resource_path.trim_end_matches('/');
    resource_origin.eq_ignore_ascii_case(server_origin)
        && server_path.starts_with(resource_path)
        && matches!(
            server_path.as_bytes().get(resource_path.len()),
            None | Some(b'/')
        )
}

/// Credentials go over HTTPS, or plain HTTP to this machine only.
fn check_transport(url: &str, what: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let host = url.strip_prefix("http://").map(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        }
    });
    match host {
        Some("localhost" | "127.0.0.1" | "::1") => Ok(()),
        Some(host) if host.starts_with("127.") => Ok(()),
        _ => Err(format!(
            "the {what} {url} is not HTTPS; credentials go over plain HTTP only to this machine"
        )),
    }
}

/// The first of `urls` that answers with a usable JSON document.
async fn first_document<T: DeserializeOwned>(
    client: &Client,
    urls: &[String],
    what: &str,
) -> Result<(String, T), String> {
    let mut problems = Vec::new();
    for url in urls {
        match fetch_json(client, url).await {
            Ok(document) => return Ok((url.clone(), document)),
            Err(problem) => problems.push(format!("{url}: {problem}")),
        }
    }
    Err(format!("no {what} found ({})", problems.join("; ")))
}

async fn fetch_json<T: DeserializeOwned>(client: &Client, url: &str) -> Result<T, String> {
    let mut response = client
        .get(url)
        .timeout(OAUTH_TIMEOUT)
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status();
    // Read to the end whatever the status, so the connection can be reused.
    let body = response
        .body()
        .limit(MAX_OAUTH_BODY)
        .await
        .map_err(|error| error.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    serde_json::from_slice(&body).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read_from_the_bearer_scheme_only() {
        let challenge = Challenge::parse(
            r#"Basic realm="x", Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp""#,
        );
        assert_eq!(
            challenge.resource_metadata.as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(challenge.scope.as_deref(), Some("files:read files:write"));
        assert!(challenge.insufficient_scope());
        let unquoted = Challenge::parse("Bearer error=invalid_token, scope=a");
        assert_eq!(unquoted.error.as_deref(), Some("invalid_token"));
        assert_eq!(unquoted.scope.as_deref(), Some("a"));
        assert_eq!(Challenge::parse("Basic realm=\"x\""), Challenge::default());
        assert_eq!(Challenge::parse(""), Challenge::default());
    }

    #[test]
    fn well_known_urls_insert_the_path() {
        assert_eq!(
            well_known(
                "https://mcp.example.com/tenant/mcp?x=1",
                "oauth-protected-resource",
                true
            ),
            [
                "https://mcp.example.com/.well-known/oauth-protected-resource/tenant/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ]
        );
        assert_eq!(
            authorization_metadata_urls("https://auth.example.com"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            authorization_metadata_urls("https://auth.example.com/realm"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/realm",
                "https://auth.example.com/.well-known/openid-configuration/realm",
                "https://auth.example.com/realm/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn a_resource_covers_only_its_own_origin_and_path() {
        let server = "https://mcp.example.com/mcp";
        assert!(resource_covers("https://mcp.example.com/mcp", server));
        assert!(resource_covers("https://mcp.example.com", server));
        assert!(resource_covers("https://mcp.example.com/", server));
        assert!(!resource_covers("https://evil.example.com/mcp", server));
        assert!(!resource_covers("https://mcp.example.com/other", server));
        assert!(!resource_covers("https://mcp.example.com/mc", server));
        assert!(!resource_covers("http://mcp.example.com/mcp", server));
    }

    #[test]
    fn credentials_need_https_away_from_this_machine() {
        assert!(check_transport("https://auth.example.com/token", "x").is_ok());
        assert!(check_transport("http://localhost:8080/token", "x").is_ok());
        assert!(check_transport("http://127.0.0.1/token", "x").is_ok());
        assert!(check_transport("http://[::1]:9/token", "x").is_ok());
        assert!(check_transport("http://auth.example.com/token", "x").is_err());
        assert!(check_transport("http://localhost.evil.com/token", "x").is_err());
        assert!(check_transport("http://user@evil.com:80/x", "x").is_err());
        assert!(check_transport("ftp://localhost/token", "x").is_err());
    }
}
