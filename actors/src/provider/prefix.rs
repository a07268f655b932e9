//! The request prefix every model call of a turn repeats: the system prompt and the tool
//! catalog, kilobytes in front of a one-line question. The `Composer` builds each once per
//! catalog version and every request shares it ([`Arc`]); the JSON of each is encoded on
//! first use and kept with it, the catalog once per [`ToolShape`] the protocols use, so a
//! model call encodes only its conversation, whatever the protocol. The protocol encoders
//! ([`super::openai`], [`super::ollama`], [`super::anthropic`]) read these and write the
//! shapes; nothing here knows about HTTP.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::message::ToolSpec;
use super::{anthropic, openai};

/// Instructions that frame a conversation, shared by the requests that send them.
#[derive(Clone)]
pub struct SystemPrompt(Arc<PromptShared>);

struct PromptShared {
    text: Box<str>,
    /// The text as a JSON string literal, quotes included.
    json: OnceLock<Box<[u8]>>,
}

impl SystemPrompt {
    pub fn new(text: impl Into<String>) -> Self {
        Self(Arc::new(PromptShared {
            text: text.into().into_boxed_str(),
            json: OnceLock::new(),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// The prompt as a JSON string literal, escaped once for every request that shares it.
    pub(crate) fn json(&self) -> &[u8] {
        self.0.json.get_or_init(|| {
            serde_json::to_vec(&*self.0.text)
                .unwrap_or_default()
                .into_boxed_slice()
        })
    }
}

impl Deref for SystemPrompt {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for SystemPrompt {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl From<&str> for SystemPrompt {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl PartialEq for SystemPrompt {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for SystemPrompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for SystemPrompt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SystemPrompt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

/// The tools a model may call, shared by the requests that offer them.
#[derive(Clone)]
pub struct ToolCatalog(Arc<CatalogShared>);

struct CatalogShared {
    specs: Vec<ToolSpec>,
    /// The `tools` array in each shape, encoded when first asked for.
    json: [OnceLock<Box<[u8]>>; ToolShape::COUNT],
}

/// The shapes a `tools` array takes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolShape {
    /// `{"type": "function", "function": {name, description, parameters}}`: OpenAI's chat
    /// completions and Ollama's native API.
    Function,
    /// `{name, description, input_schema}`: Anthropic Messages.
    Anthropic,
}

impl ToolShape {
    const COUNT: usize = 2;

    fn write(self, specs: &[ToolSpec], body: &mut Vec<u8>) {
        match self {
            ToolShape::Function => openai::write_tools(specs, body),
            ToolShape::Anthropic => anthropic::write_tools(specs, body),
        }
    }
}

impl ToolCatalog {
    pub fn new(specs: Vec<ToolSpec>) -> Self {
        Self(Arc::new(CatalogShared {
            specs,
            json: Default::default(),
        }))
    }

    /// The catalog as a JSON `tools` array in `shape`, encoded once for every request that
    /// shares it; `None` when it offers no tools, which the protocols then leave out.
    pub(crate) fn json(&self, shape: ToolShape) -> Option<&[u8]> {
        if self.is_empty() {
            return None;
        }
        let json = self.0.json[shape as usize].get_or_init(|| {
            let mut json = Vec::with_capacity(512 * self.0.specs.len());
            shape.write(&self.0.specs, &mut json);
            json.into_boxed_slice()
        });
        Some(json)
    }
}

impl Default for ToolCatalog {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Deref for ToolCatalog {
    type Target = [ToolSpec];

    fn deref(&self) -> &[ToolSpec] {
        &self.0.specs
    }
}

impl From<Vec<ToolSpec>> for ToolCatalog {
    fn from(specs: Vec<ToolSpec>) -> Self {
        Self::new(specs)
    }
}

impl FromIterator<ToolSpec> for ToolCatalog {
    fn from_iter<I: IntoIterator<Item = ToolSpec>>(specs: I) -> Self {
        Self::new(specs.into_iter().collect())
    }
}

impl PartialEq for ToolCatalog {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.specs == other.0.specs
    }
}

impl fmt::Debug for ToolCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.specs, f)
    }
}

impl Serialize for ToolCatalog {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.specs.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ToolCatalog {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<ToolSpec>::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn the_encoded_prefix_is_the_json_of_its_parts() {
        let prompt = SystemPrompt::new("Say \"hi\"\n\tthen stop");
        let parsed: Value = serde_json::from_slice(prompt.json()).unwrap();
        assert_eq!(parsed, json!("Say \"hi\"\n\tthen stop"));
        let catalog = ToolCatalog::new(vec![ToolSpec {
            name: "get_weather".into(),
            description: "Weather by city".into(),
            parameters: Value::Null,
        }]);
        let parsed: Value =
            serde_json::from_slice(catalog.json(ToolShape::Function).unwrap()).unwrap();
        assert_eq!(
            parsed,
            json!([{"type": "function", "function": {
                "name": "get_weather",
                "description": "Weather by city",
                "parameters": {"type": "object", "properties": {}},
            }}])
        );
        let parsed: Value =
            serde_json::from_slice(catalog.json(ToolShape::Anthropic).unwrap()).unwrap();
        assert_eq!(
            parsed,
            json!([{
                "name": "get_weather",
                "description": "Weather by city",
                "input_schema": {"type": "object", "properties": {}},
            }])
        );
        // Shared, not copied: a clone encodes nothing again, in either shape.
        let shared = catalog.clone();
        for shape in [ToolShape::Function, ToolShape::Anthropic] {
            assert!(std::ptr::eq(
                shared.json(shape).unwrap(),
                catalog.json(shape).unwrap()
            ));
        }
        assert!(!std::ptr::eq(
            catalog.json(ToolShape::Function).unwrap(),
            catalog.json(ToolShape::Anthropic).unwrap()
        ));
        assert_eq!(ToolCatalog::default().json(ToolShape::Function), None);
    }
}
