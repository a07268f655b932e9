//! Resolves the provider settings into the upstreams the provider actors call: `auto`
//! becomes the first vendor whose key variable is set (else the offline planner), an empty
//! model becomes the vendor's default, the base URL comes from `--base-url`, then the vendor's
//! variable (`OPENAI_BASE_URL`, `OLLAMA_HOST`, ...), then the file, and the key from
//! `--api-key`, then the vendor's variable, then the file. A vendor that needs a key and has
//! none is a start-up error naming the variable.

use std::time::Duration;

use kubiya_actors::provider::{Protocol, ProviderKind, RetryPolicy, Timeouts, UpstreamConfig};

use crate::config::{ConfigError, FlagOverrides, ProtocolChoice, ProviderChoice, ProviderSettings};

/// The upstreams to call (primary first, then fallbacks) and why the primary was chosen.
#[derive(Debug, Clone)]
pub struct ProviderSetup {
    pub upstreams: Vec<UpstreamConfig>,
    pub reason: String,
}

impl ProviderSetup {
    pub fn kind(&self) -> ProviderKind {
        self.upstreams[0].kind
    }

    pub fn model(&self) -> &str {
        &self.upstreams[0].model
    }

    /// Just the offline planner: no network, no key.
    pub fn offline() -> Self {
        let settings = ProviderSettings {
            name: ProviderChoice::Offline,
            ..ProviderSettings::default()
        };
        resolve(&settings, &FlagOverrides::default(), |_| None).expect("offline needs nothing")
    }
}

/// Vendors tried by `auto`, in order.
const AUTO_ORDER: [ProviderKind; 4] = [
    ProviderKind::OpenAi,
    ProviderKind::Anthropic,
    ProviderKind::Together,
    ProviderKind::Groq,
];

/// One vendor's choices before its preset and the environment fill the gaps.
struct Requested<'a> {
    kind: ProviderKind,
    model: &'a str,
    api_key: Option<String>,
    base_url: Option<String>,
}

pub fn resolve(
    settings: &ProviderSettings,
    flags: &FlagOverrides,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ProviderSetup, ConfigError> {
    let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let (kind, reason) = match settings.name {
        ProviderChoice::Auto => AUTO_ORDER
            .into_iter()
            .find_map(|kind| {
                let var = kind.preset().key_var?;
                env(var).map(|_| (kind, format!("--provider not given and {var} is set")))
            })
            .unwrap_or((
                ProviderKind::Offline,
                "--provider not given and no provider key variable (OPENAI_API_KEY, \
                 ANTHROPIC_API_KEY, TOGETHER_API_KEY, GROQ_API_KEY) is set"
                    .to_owned(),
            )),
        choice => (
            kind_of(choice),
            if flags.provider.is_some() {
                "--provider"
            } else {
                "configuration"
            }
            .to_owned(),
        ),
    };
    let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    let primary = Requested {
        kind,
        model: &settings.model,
        api_key: flags
            .api_key
            .clone()
            .or_else(|| vendor_var(kind, env, Var::Key))
            .or(non_empty(&settings.api_key)),
        base_url: flags
            .base_url
            .clone()
            .or_else(|| vendor_var(kind, env, Var::BaseUrl))
            .or(non_empty(&settings.base_url)),
    };
    let mut upstreams = vec![upstream(primary, settings)?];
    for fallback in &settings.fallbacks {
        let kind = kind_of(fallback.name);
        let requested = Requested {
            kind,
            model: &fallback.model,
            api_key: vendor_var(kind, env, Var::Key).or(non_empty(&fallback.api_key)),
            base_url: non_empty(&fallback.base_url).or_else(|| vendor_var(kind, env, Var::BaseUrl)),
        };
        upstreams.push(upstream(requested, settings)?);
    }
    Ok(ProviderSetup { upstreams, reason })
}

enum Var {
    Key,
    BaseUrl,
}

fn vendor_var(
    kind: ProviderKind,
    env: impl Fn(&str) -> Option<String>,
    var: Var,
) -> Option<String> {
    let preset = kind.preset();
    match var {
        Var::Key => preset.key_var.and_then(&env),
        Var::BaseUrl => preset.base_url_var.and_then(&env),
    }
}

fn upstream(
    requested: Requested<'_>,
    settings: &ProviderSettings,
) -> Result<UpstreamConfig, ConfigError> {
    let kind = requested.kind;
    let preset = kind.preset();
    if let (Some(var), None) = (preset.key_var, &requested.api_key) {
        return Err(ConfigError::new(format!(
            "provider {kind} needs an API key: set {var} or pass --api-key"
        )));
    }
    let protocol = match (settings.protocol, kind) {
        (_, ProviderKind::Offline) => Protocol::Offline,
        (ProtocolChoice::Auto, _) => preset.protocol,
        (ProtocolChoice::OpenAi, _) => Protocol::OpenAiChat,
        (ProtocolChoice::Anthropic, _) => Protocol::AnthropicMessages,
        (ProtocolChoice::Ollama, _) => Protocol::OllamaChat,
    };
    let mut base_url = requested
        .base_url
        .unwrap_or_else(|| preset.base_url.to_owned());
    if kind == ProviderKind::Ollama {
        base_url = ollama_base_url(&base_url, protocol);
    }
    Ok(UpstreamConfig {
        kind,
        protocol,
        base_url,
        api_key: requested.api_key.filter(|_| preset.key_var.is_some()),
        model: if requested.model.is_empty() {
            preset.default_model.to_owned()
        } else {
            requested.model.to_owned()
        },
        timeouts: Timeouts {
            connect: Duration::from_millis(settings.connect_timeout_ms),
            first_byte: Duration::from_millis(settings.first_byte_timeout_ms),
            between_chunks: Duration::from_millis(settings.chunk_timeout_ms),
            total: Duration::from_millis(settings.total_timeout_ms),
        },
        retry: RetryPolicy {
            max_retries: settings.max_retries,
            base_delay: Duration::from_millis(settings.retry_base_ms),
            max_delay: Duration::from_millis(settings.retry_max_ms),
        },
        max_connections: settings.max_connections,
    })
}

/// `OLLAMA_HOST` as Ollama reads it: scheme optional (`0.0.0.0:11434`, `localhost`), port
/// 11434 when absent. Its OpenAI-compatible API lives under `/v1`, the native one at the root.
fn ollama_base_url(host: &str, protocol: Protocol) -> String {
    let host = host.trim_end_matches('/');
    let mut url = if host.contains("://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    };
    let authority = url.split("://").nth(1).unwrap_or_default();
    if !authority
        .split('/')
        .next()
        .unwrap_or_default()
        .contains(':')
    {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", ""));
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        url = format!(
            "{scheme}://{authority}:11434{}{path}",
            if path.is_empty() { "" } else { "/" }
        );
    }
    match (protocol, url.ends_with("/v1")) {
        (Protocol::OpenAiChat, false) => format!("{url}/v1"),
        (Protocol::OllamaChat, true) => url.trim_end_matches("/v1").to_owned(),
        _ => url,
    }
}

fn kind_of(choice: ProviderChoice) -> ProviderKind {
    match choice {
        ProviderChoice::OpenAi => ProviderKind::OpenAi,
        ProviderChoice::Anthropic => ProviderKind::Anthropic,
        ProviderChoice::Together => ProviderKind::Together,
        ProviderChoice::Groq => ProviderKind::Groq,
        ProviderChoice::Ollama => ProviderKind::Ollama,
        ProviderChoice::Offline | ProviderChoice::Auto => ProviderKind::Offline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FallbackSettings;

    fn env_with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn named(name: ProviderChoice) -> ProviderSettings {
        ProviderSettings {
            name,
            ..Default::default()
        }
    }

    #[test]
    fn auto_picks_the_first_vendor_with_a_key_in_documented_order() {
        let env = env_with(&[("GROQ_API_KEY", "g"), ("ANTHROPIC_API_KEY", "a")]);
        let setup = resolve(&ProviderSettings::default(), &FlagOverrides::default(), env).unwrap();
        assert_eq!(setup.kind(), ProviderKind::Anthropic);
        assert_eq!(setup.model(), "claude-3-5-sonnet-20241022");
        assert_eq!(setup.upstreams[0].base_url, "https://api.anthropic.com");
        assert!(setup.reason.contains("ANTHROPIC_API_KEY"));
    }

    #[test]
    fn auto_without_keys_is_offline() {
        let setup = resolve(
            &ProviderSettings::default(),
            &FlagOverrides::default(),
            env_with(&[]),
        )
        .unwrap();
        assert_eq!(setup.kind(), ProviderKind::Offline);
        assert_eq!(setup.upstreams[0].protocol, Protocol::Offline);
        assert_eq!(setup.upstreams[0].api_key, None);
    }

    #[test]
    fn the_flag_beats_the_variable_which_beats_the_file() {
        let settings = ProviderSettings {
            api_key: "from-file".into(),
            base_url: "http://file/v1".into(),
            ..named(ProviderChoice::OpenAi)
        };
        let env = env_with(&[
            ("OPENAI_API_KEY", "from-env"),
            ("OPENAI_BASE_URL", "http://env/v1"),
        ]);
        let flags = FlagOverrides {
            api_key: Some("from-flag".into()),
            base_url: Some("http://flag/v1".into()),
            ..Default::default()
        };
        let primary = &resolve(&settings, &flags, &env).unwrap().upstreams[0];
        assert_eq!(
            (primary.api_key.as_deref(), primary.base_url.as_str()),
            (Some("from-flag"), "http://flag/v1")
        );
        let none = FlagOverrides::default();
        let primary = &resolve(&settings, &none, &env).unwrap().upstreams[0];
        assert_eq!(
            (primary.api_key.as_deref(), primary.base_url.as_str()),
            (Some("from-env"), "http://env/v1")
        );
        let primary = &resolve(&settings, &none, env_with(&[])).unwrap().upstreams[0];
        assert_eq!(
            (primary.api_key.as_deref(), primary.base_url.as_str()),
            (Some("from-file"), "http://file/v1")
        );
    }

    #[test]
    fn a_missing_key_names_the_variable_even_for_a_fallback() {
        let err = resolve(
            &named(ProviderChoice::Groq),
            &FlagOverrides::default(),
            env_with(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("GROQ_API_KEY"), "{err}");
        let settings = ProviderSettings {
            fallbacks: vec![FallbackSettings {
                name: ProviderChoice::Anthropic,
                ..Default::default()
            }],
            ..named(ProviderChoice::Offline)
        };
        let err = resolve(&settings, &FlagOverrides::default(), env_with(&[])).unwrap_err();
        assert!(err.to_string().contains("ANTHROPIC_API_KEY"), "{err}");
    }

    #[test]
    fn ollama_host_is_read_as_ollama_reads_it() {
        let cases = [
            ("", Protocol::OpenAiChat, "http://localhost:11434/v1"),
            (
                "0.0.0.0:11434",
                Protocol::OpenAiChat,
                "http://0.0.0.0:11434/v1",
            ),
            ("gpu-box", Protocol::OpenAiChat, "http://gpu-box:11434/v1"),
            (
                "https://ollama.example.com:443/",
                Protocol::OllamaChat,
                "https://ollama.example.com:443",
            ),
            (
                "http://127.0.0.1:9000/v1",
                Protocol::OllamaChat,
                "http://127.0.0.1:9000",
            ),
        ];
        for (host, protocol, expected) in cases {
            let host = if host.is_empty() {
                "http://localhost:11434"
            } else {
                host
            };
            assert_eq!(ollama_base_url(host, protocol), expected, "{host}");
        }
        let env = env_with(&[("OLLAMA_HOST", "127.0.0.1:7000")]);
        let setup = resolve(
            &named(ProviderChoice::Ollama),
            &FlagOverrides::default(),
            env,
        )
        .unwrap();
        assert_eq!(setup.upstreams[0].base_url, "http://127.0.0.1:7000/v1");
        assert_eq!(setup.model(), "llama3.2");
    }
}
