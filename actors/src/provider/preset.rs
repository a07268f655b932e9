//! Vendor presets: one row per vendor, naming the protocol adapter it speaks, where it lives
//! by default, which environment variables override its key and base URL, and its default
//! model. The table is data; nothing here does I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The vendors a user can pick with `--provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Together,
    Groq,
    Ollama,
    /// The built-in planner: no network, no key, deterministic.
    Offline,
}

/// The wire protocols we implement; vendors are presets over these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OpenAI chat completions (`/chat/completions`, SSE).
    OpenAiChat,
    /// Anthropic Messages (`/v1/messages`, SSE with named events).
    AnthropicMessages,
    /// Ollama native chat (`/api/chat`, NDJSON).
    OllamaChat,
    /// The built-in offline planner.
    Offline,
}

/// Everything we know about a vendor before configuration is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub kind: ProviderKind,
    pub protocol: Protocol,
    /// Base URL in the vendor SDK's own convention (OpenAI-style ones end in `/v1`).
    pub base_url: &'static str,
    /// Variable holding the API key; `None` when the vendor needs no key.
    pub key_var: Option<&'static str>,
    /// Variable overriding the base URL.
    pub base_url_var: Option<&'static str>,
    pub default_model: &'static str,
}

impl ProviderKind {
    /// Every vendor, in the order start-up auto-detection tries them.
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Together,
        ProviderKind::Groq,
        ProviderKind::Ollama,
        ProviderKind::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Together => "together",
            ProviderKind::Groq => "groq",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Offline => "offline",
        }
    }

    pub fn preset(self) -> Preset {
        let (protocol, base_url, key_var, base_url_var, default_model) = match self {
            ProviderKind::OpenAi => (
                Protocol::OpenAiChat,
                "https://api.openai.com/v1",
                Some("OPENAI_API_KEY"),
                Some("OPENAI_BASE_URL"),
                "gpt-4o",
            ),
            ProviderKind::Anthropic => (
                Protocol::AnthropicMessages,
                "https://api.anthropic.com",
                Some("ANTHROPIC_API_KEY"),
                Some("ANTHROPIC_BASE_URL"),
                "claude-3-5-sonnet-20241022",
            ),
            ProviderKind::Together => (
                Protocol::OpenAiChat,
                "https://api.together.xyz/v1",
                Some("TOGETHER_API_KEY"),
                Some("TOGETHER_BASE_URL"),
                "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            ),
            ProviderKind::Groq => (
                Protocol::OpenAiChat,
                "https://api.groq.com/openai/v1",
                Some("GROQ_API_KEY"),
                Some("GROQ_BASE_URL"),
                "llama-3.3-70b-versatile",
            ),
            ProviderKind::Ollama => (
                Protocol::OpenAiChat,
                "http://localhost:11434",
                None,
                Some("OLLAMA_HOST"),
                "llama3.2",
            ),
            ProviderKind::Offline => (Protocol::Offline, "", None, None, "kubiya-offline-planner"),
        };
        Preset {
            kind: self,
            protocol,
            base_url,
            key_var,
            base_url_var,
            default_model,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let allowed: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown provider `{s}`, expected one of {}",
                    allowed.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_serde() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert!(
            "loud"
                .parse::<ProviderKind>()
                .unwrap_err()
                .contains("openai, anthropic")
        );
    }

    #[test]
    fn only_keyless_vendors_lack_a_key_variable() {
        for kind in ProviderKind::ALL {
            let keyless = matches!(kind, ProviderKind::Ollama | ProviderKind::Offline);
            assert_eq!(kind.preset().key_var.is_none(), keyless, "{kind}");
        }
    }
}
