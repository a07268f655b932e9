//! On/off settings as people write them: `true`/`false` in TOML, and `1/0`, `true/false`,
//! `yes/no` or `on/off` (any case) in environment variables such as `MCP_DEBUG=1`. Figment
//! reads `1` from the environment as a number and `yes` as a string, so every boolean setting
//! deserializes through [`deserialize`].

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// The words that mean on and off, for error messages.
const EXPECTED: &str = "a boolean (1/0, true/false, yes/no, on/off)";

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    deserializer.deserialize_any(FlagVisitor)
}

struct FlagVisitor;

impl Visitor<'_> for FlagVisitor {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(EXPECTED)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
        Ok(value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<bool, E> {
        match value {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(E::invalid_value(de::Unexpected::Unsigned(value), &EXPECTED)),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<bool, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(value), &EXPECTED)),
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<bool, E> {
        parse(value).ok_or_else(|| E::invalid_value(de::Unexpected::Str(value), &EXPECTED))
    }
}

/// The on/off meaning of a word, if it has one.
pub fn parse(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::Serialized;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Flags {
        #[serde(deserialize_with = "super::deserialize")]
        on: bool,
    }

    fn read(value: serde_json::Value) -> Result<bool, String> {
        Figment::from(Serialized::defaults(serde_json::json!({ "on": value })))
            .extract::<Flags>()
            .map(|flags| flags.on)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn every_usual_spelling_reads_as_on_or_off() {
        for (word, expected) in [
            ("1", true),
            ("0", false),
            ("true", true),
            ("FALSE", false),
            ("yes", true),
            ("No", false),
            ("on", true),
            ("off", false),
        ] {
            assert_eq!(read(word.into()).unwrap(), expected, "{word}");
        }
        assert!(read(true.into()).unwrap());
        assert!(!read(0.into()).unwrap());
    }

    #[test]
    fn other_words_are_refused_with_the_accepted_spellings() {
        let error = read("maybe".into()).unwrap_err();
        assert!(error.contains("1/0, true/false, yes/no"), "{error}");
        assert!(read(2.into()).is_err());
    }
}
