//! What the supervisor is told to run: one [`McpServerConfig`] per server, keyed by server name
//! (the `mcpServers` shape desktop MCP hosts use), and the [`McpSettings`] every server shares
//! (timeouts, result cap, restart backoff). The `kubiya` binary's configuration layers fill
//! them; the supervisor and its children read them.
//!
//! Env values may hold `${VAR}` references, expanded from the process environment only when a
//! server is spawned, so secrets stay out of the configuration and out of every log line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::elicitation::ElicitationPolicy;

/// How to reach one MCP server: a program to start (stdio) or a `url` (streamable HTTP).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The program; looked up on `PATH` when it has no slash. Empty for a remote server.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// A remote server's streamable HTTP endpoint (`https://host/mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Headers sent to a remote server (e.g. `Authorization: Bearer ${TOKEN}`); values may
    /// reference our environment as `${VAR}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables set for the server on top of a small allowlist inherited from us; values may
    /// reference our environment as `${VAR}`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory; ours when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Per-call idle timeout for this server, overriding `mcp.call_timeout_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// `false` keeps the server configured but never started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Desktop hosts write `"type": "stdio"`, or `"http"` / `"streamable-http"` for a `url`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// OAuth client credentials for a remote server that asks for authorization (401).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<McpOAuthConfig>,
    /// How the server's questions to the user are answered (declined unless set).
    #[serde(default)]
    pub elicitation: ElicitationPolicy,
}

/// A remote server's OAuth client, registered beforehand with its authorization server: the
/// client credentials grant gets the tokens. Values may reference our environment as `${VAR}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpOAuthConfig {
    pub client_id: String,
    /// Absent for a public client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Scopes to ask for (space-separated); by default those the server names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The only authorization server the credentials are sent to. Without it, the one the
    /// server names first is used, and kept for the life of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

// The client id and secret may be literal secrets: never shown.
impl fmt::Debug for McpOAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpOAuthConfig")
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("scope", &self.scope)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

// Env values may be literal secrets: only their names are ever shown.
impl fmt::Debug for McpServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpServerConfig")
            .field("command", &self.command)
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field("timeout_secs", &self.timeout_secs)
            .field("enabled", &self.enabled)
            .field("oauth", &self.oauth)
            .field("elicitation", &self.elicitation)
            .finish()
    }
}

impl McpServerConfig {
    /// A server that runs `command` with `args`.
    pub fn new(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            command: command.into(),
            url: None,
            headers: BTreeMap::new(),
            args: args.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            cwd: None,
            timeout_secs: None,
            enabled: None,
            transport: None,
            oauth: None,
            elicitation: ElicitationPolicy::default(),
        }
    }

    /// A remote server at `url` (streamable HTTP).
    pub fn remote(url: impl Into<String>) -> Self {
        let mut config = Self::new("", Vec::<String>::new());
        config.url = Some(url.into());
        config
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// What every supervised server shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpSettings {
    /// A call fails after this long without a reply or a progress notification.
    pub call_timeout_secs: u64,
    /// A call fails after this long whatever progress it reports.
    pub max_call_timeout_secs: u64,
    /// Spawn, handshake and the first tool listing must finish within this.
    pub startup_timeout_secs: u64,
    /// Tool results longer than this (UTF-8 bytes of text for the model) are cut with a note.
    pub max_result_bytes: usize,
    /// The longest wait between restarts of a server that keeps failing.
    pub max_restart_backoff_secs: u64,
}

impl Default for McpSettings {
    fn default() -> Self {
        Self {
            call_timeout_secs: 60,
            max_call_timeout_secs: 300,
            startup_timeout_secs: 30,
            max_result_bytes: 65536,
            max_restart_backoff_secs: 30,
        }
    }
}

impl McpSettings {
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_secs.max(1))
    }

    pub fn max_restart_backoff(&self) -> Duration {
        Duration::from_secs(self.max_restart_backoff_secs.max(1))
    }
}

/// The `{"mcpServers": {...}}` document desktop hosts keep (`claude_desktop_config.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct DesktopHostConfig {
    #[serde(rename = "mcpServers", default)]
    pub mcp_servers: BTreeMap<String, McpServerConfig>,
}

impl DesktopHostConfig {
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// Why a server's configuration cannot be used; names the server and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mcp_servers.{server}{field}: {problem}")]
pub struct McpConfigError {
    pub server: String,
    /// `""` or `.field`.
    pub field: String,
    pub problem: String,
}

/// Transports a remote server's `type` may name.
const HTTP_TYPES: [&str; 3] = ["http", "streamable-http", "streamableHttp"];

/// Checks what serde cannot: server names usable as tool prefixes, a command or a URL (not
/// both), transports we run.
pub fn check_servers(servers: &BTreeMap<String, McpServerConfig>) -> Result<(), McpConfigError> {
    for (name, config) in servers {
        let error = |field: &str, problem: String| McpConfigError {
            server: name.clone(),
            field: field.to_owned(),
            problem,
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || name.contains("__")
        {
            return Err(error(
                "",
                "a server name may use only letters, digits, '-' and '_' (not \"__\", which separates it from tool names)".to_owned(),
            ));
        }
        match (&config.url, config.command.trim().is_empty()) {
            (Some(_), false) => {
                return Err(error(
                    "",
                    "set `command` (a local server) or `url` (a remote one), not both".to_owned(),
                ));
            }
            (None, true) => {
                return Err(error(
                    ".command",
                    "must name a program (or set `url` for a remote server)".to_owned(),
                ));
            }
            (Some(url), true) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(error(
                        ".url",
                        format!("`{url}` is not an http:// or https:// URL"),
                    ));
                }
                if let Some(transport) = &config.transport
                    && !HTTP_TYPES.contains(&transport.as_str())
                {
                    return Err(error(
                        ".type",
                        format!(
                            "`{transport}` is not supported for a url; use \"http\" (streamable HTTP)"
                        ),
                    ));
                }
            }
            (None, false) => {
                if let Some(transport) = &config.transport
                    && transport != "stdio"
                {
                    return Err(error(
                        ".type",
                        format!("`{transport}` needs a `url`; a `command` runs over stdio"),
                    ));
                }
            }
        }
        for (key, value) in &config.headers {
            if let Err(problem) = check_references(value) {
                return Err(error(&format!(".headers.{key}"), problem));
            }
        }
        if let Some(oauth) = &config.oauth {
            if config.url.is_none() {
                return Err(error(
                    ".oauth",
                    "OAuth is for a remote server (`url`)".to_owned(),
                ));
            }
            let values = [
                ("client_id", Some(&oauth.client_id)),
                ("client_secret", oauth.client_secret.as_ref()),
            ];
            for (field, value) in values {
                if let Some(value) = value
                    && let Err(problem) = check_references(value)
                {
                    return Err(error(&format!(".oauth.{field}"), problem));
                }
            }
            if let Some(issuer) = &oauth.issuer
                && !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            {
                return Err(error(
                    ".oauth.issuer",
                    format!("`{issuer}` is not an http:// or https:// URL"),
                ));
            }
        }
        for (key, value) in &config.env {
            if let Err(problem) = check_references(value) {
                return Err(error(&format!(".env.{key}"), problem));
            }
        }
    }
    Ok(())
}

fn check_references(value: &str) -> Result<(), String> {
    expand_env(value, |_| Some(String::new())).map(|_| ())
}

/// Expands `${VAR}` references with `lookup`. A reference to an unset variable is an error
/// naming the variable (never a value), so a missing key is noticed at start rather than
/// sent as an empty string.
pub fn expand_env(value: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut expanded = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        expanded.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("an unclosed ${ reference".to_owned());
        };
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{name}}}` is not a variable reference"));
        }
        match lookup(name) {
            Some(found) => expanded.push_str(&found),
            None => return Err(format!("references ${{{name}}}, which is not set")),
        }
        rest = &after[end + 1..];
    }
    expanded.push_str(rest);
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_and_unset_ones_are_named() {
        let lookup = |name: &str| (name == "KEY").then(|| "s3cret".to_owned());
        assert_eq!(
            expand_env("Bearer ${KEY}!", lookup).unwrap(),
            "Bearer s3cret!"
        );
        assert_eq!(expand_env("plain $KEY", lookup).unwrap(), "plain $KEY");
        let error = expand_env("${MISSING}", lookup).unwrap_err();
        assert!(error.contains("MISSING"), "{error}");
        assert!(expand_env("${open", lookup).is_err());
    }

    #[test]
    fn desktop_documents_parse_and_names_are_checked() {
        let document = DesktopHostConfig::from_json(
            r#"{"mcpServers":{"fs":{"command":"node","args":["x.js"],"env":{"TOKEN":"${T}"},"type":"stdio"}}}"#,
        )
        .unwrap();
        assert_eq!(document.mcp_servers["fs"].args, ["x.js"]);
        assert!(check_servers(&document.mcp_servers).is_ok());

        let mut bad = document.mcp_servers.clone();
        let config = bad.remove("fs").unwrap();
        bad.insert("a__b".to_owned(), config);
        assert!(
            check_servers(&bad)
                .unwrap_err()
                .to_string()
                .contains("a__b")
        );
    }

    #[test]
    fn env_values_never_show_in_debug_output() {
        let mut config = McpServerConfig::new("node", ["x"]);
        config.env.insert("TOKEN".into(), "sk-literal".into());
        config.oauth = Some(McpOAuthConfig {
            client_id: "client-literal".into(),
            client_secret: Some("sk-literal".into()),
            scope: None,
            issuer: None,
        });
        let shown = format!("{config:?}");
        assert!(
            shown.contains("TOKEN")
                && !shown.contains("sk-literal")
                && !shown.contains("client-literal"),
            "{shown}"
        );
    }
}
