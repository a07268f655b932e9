//! Resolves the configured provider choice into the vendor the server runs with: `auto`
//! becomes the first vendor whose key variable is set (else the offline planner), an empty
//! model becomes the vendor's default, and the key comes from `--api-key`, then the vendor's
//! variable, then the configuration file. A vendor that needs a key and has none is a
//! start-up error naming the variable.

use kubiya_actors::provider::ProviderKind;

use crate::config::{ConfigError, FlagOverrides, ProviderChoice, ProviderSettings};

/// The provider the server will run with, and why it was chosen (for the start-up log).
#[derive(Clone)]
pub struct ProviderSetup {
    pub kind: ProviderKind,
    pub model: String,
    pub api_key: Option<String>,
    pub reason: String,
}

impl std::fmt::Debug for ProviderSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSetup")
            .field("kind", &self.kind)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Vendors tried by `auto`, in order.
const AUTO_ORDER: [ProviderKind; 4] = [
    ProviderKind::OpenAi,
    ProviderKind::Anthropic,
    ProviderKind::Together,
    ProviderKind::Groq,
];

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
    let preset = kind.preset();
    let configured_key = (!settings.api_key.is_empty()).then(|| settings.api_key.clone());
    let api_key = flags
        .api_key
        .clone()
        .or_else(|| preset.key_var.and_then(&env))
        .or(configured_key);
    if let (Some(var), None) = (preset.key_var, &api_key) {
        return Err(ConfigError::new(format!(
            "provider {kind} needs an API key: set {var} or pass --api-key"
        )));
    }
    let model = if settings.model.is_empty() {
        preset.default_model.to_owned()
    } else {
        settings.model.clone()
    };
    Ok(ProviderSetup {
        kind,
        model,
        api_key: api_key.filter(|_| preset.key_var.is_some()),
        reason,
    })
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

    fn env_with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn auto_picks_the_first_vendor_with_a_key_in_documented_order() {
        let env = env_with(&[("GROQ_API_KEY", "g"), ("ANTHROPIC_API_KEY", "a")]);
        let setup = resolve(&ProviderSettings::default(), &FlagOverrides::default(), env).unwrap();
        assert_eq!(setup.kind, ProviderKind::Anthropic);
        assert_eq!(setup.model, "claude-3-5-sonnet-20241022");
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
        assert_eq!(setup.kind, ProviderKind::Offline);
        assert_eq!(setup.api_key, None);
    }

    #[test]
    fn the_flag_key_beats_the_variable_which_beats_the_file() {
        let settings = ProviderSettings {
            name: ProviderChoice::OpenAi,
            api_key: "from-file".into(),
            ..Default::default()
        };
        let env = env_with(&[("OPENAI_API_KEY", "from-env")]);
        let flags = FlagOverrides {
            api_key: Some("from-flag".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve(&settings, &flags, &env).unwrap().api_key.as_deref(),
            Some("from-flag")
        );
        let none = FlagOverrides::default();
        assert_eq!(
            resolve(&settings, &none, &env).unwrap().api_key.as_deref(),
            Some("from-env")
        );
        let file_only = resolve(&settings, &none, env_with(&[])).unwrap();
        assert_eq!(file_only.api_key.as_deref(), Some("from-file"));
    }

    #[test]
    fn a_missing_key_names_the_variable() {
        let settings = ProviderSettings {
            name: ProviderChoice::Groq,
            ..Default::default()
        };
        let err = resolve(&settings, &FlagOverrides::default(), env_with(&[])).unwrap_err();
        assert!(err.to_string().contains("GROQ_API_KEY"), "{err}");
    }
}
