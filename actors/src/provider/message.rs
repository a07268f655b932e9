//! The normalised conversation: what we ask an LLM, independent of any vendor's wire format.
//!
//! Sessions store these types and the composer builds them; the protocol modules
//! ([`super::openai`], [`super::anthropic`], [`super::ollama`]) translate a [`ChatRequest`]
//! into each vendor's JSON body. Nothing here knows about HTTP.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::event::ProviderError;
use super::prefix::{SystemPrompt, ToolCatalog};
use super::transcript::Transcript;

/// One call to a chat model: the whole conversation so far plus the tools it may call. The
/// system prompt and the tools are shared with the other requests that send them, the
/// conversation with the session that keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    /// Instructions that frame the conversation; each protocol places them its own way.
    #[serde(default)]
    pub system: Option<SystemPrompt>,
    pub messages: Transcript,
    #[serde(default)]
    pub tools: ToolCatalog,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub stream: bool,
}

/// One turn of the conversation, tagged by who produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ChatMessage {
    User {
        content: String,
    },
    Assistant {
        /// `None` when the model answered only with tool calls.
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        tool_calls: Vec<ToolCall>,
    },
    /// The outcome of running one tool call, fed back to the model.
    Tool {
        tool_call_id: String,
        /// Name of the tool that ran; Ollama identifies results by name rather than id.
        name: String,
        content: String,
        #[serde(default)]
        is_error: bool,
    },
}

impl ChatMessage {
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage::User {
            content: content.into(),
        }
    }

    pub fn assistant_text(content: impl Into<String>) -> Self {
        ChatMessage::Assistant {
            content: Some(content.into()),
            tool_calls: Vec::new(),
        }
    }

    pub fn tool_result(call: &ToolCall, content: impl Into<String>, is_error: bool) -> Self {
        ChatMessage::Tool {
            tool_call_id: call.id.clone(),
            name: call.name.clone(),
            content: content.into(),
            is_error,
        }
    }
}

/// A complete tool invocation requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolCall {
    /// The vendor's id, or a generated `call_<uuid>` when the vendor sends none.
    pub id: String,
    pub name: String,
    /// The parsed arguments: always a JSON object (`{}` when the model sent none).
    #[schema(value_type = Object)]
    pub arguments: Value,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments object.
    #[serde(default)]
    pub parameters: Value,
}

impl ToolSpec {
    /// The schema to send, borrowed: vendors require an object schema, so a missing one
    /// becomes the schema of an empty object.
    pub(crate) fn parameters_schema(&self) -> ParametersSchema<'_> {
        ParametersSchema(&self.parameters)
    }
}

/// A tool's arguments schema as the vendors take it (see [`ToolSpec::parameters_schema`]).
pub(crate) struct ParametersSchema<'a>(&'a Value);

impl Serialize for ParametersSchema<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.0.is_null() {
            return self.0.serialize(serializer);
        }
        let mut schema = serializer.serialize_map(Some(2))?;
        schema.serialize_entry("type", "object")?;
        schema.serialize_entry("properties", &Map::new())?;
        schema.end()
    }
}

/// Generates the id for a tool call the vendor left anonymous.
pub(crate) fn generated_call_id() -> String {
    format!("call_{}", uuid::Uuid::new_v4().simple())
}

/// Parses tool arguments that arrived as JSON text (OpenAI's `arguments` string, Anthropic's
/// concatenated `partial_json`). Models send nothing for argument-less tools, so blank text
/// and `null` become `{}`; anything but an object is a protocol error.
pub(crate) fn parse_tool_arguments(tool: &str, text: &str) -> Result<Value, ProviderError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => object_arguments(tool, value),
        Err(error) => Err(ProviderError::protocol(format!(
            "arguments of tool call `{tool}` are not valid JSON: {error}"
        ))),
    }
}

/// Checks arguments that arrived as a JSON value (Ollama, Anthropic `input`); a string is
/// treated as JSON text because some OpenAI-compatible servers send one.
pub(crate) fn object_arguments(tool: &str, value: Value) -> Result<Value, ProviderError> {
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Map::new())),
        Value::String(text) => parse_tool_arguments(tool, &text),
        _ => Err(ProviderError::protocol(format!(
            "arguments of tool call `{tool}` are not a JSON object"
        ))),
    }
}

/// A sampling temperature as a JSON number, `None` when it is none (NaN, infinite); going
/// through its shortest decimal form keeps `0.7` from becoming `0.699999988079071`.
pub(crate) fn temperature_json(temperature: f32) -> Option<serde_json::Number> {
    temperature
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_round_trip_through_serde_tagged_by_role() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Paris"}),
        };
        let messages = vec![
            ChatMessage::user("hi"),
            ChatMessage::Assistant {
                content: None,
                tool_calls: vec![call.clone()],
            },
            ChatMessage::tool_result(&call, "sunny", false),
        ];
        let value = serde_json::to_value(&messages).unwrap();
        assert_eq!(
            value,
            json!([
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "name": "get_weather",
                 "content": "sunny", "is_error": false}
            ])
        );
        let back: Vec<ChatMessage> = serde_json::from_value(value).unwrap();
        assert_eq!(back, messages);
    }

    #[test]
    fn tool_arguments_become_objects_or_protocol_errors() {
        assert_eq!(parse_tool_arguments("t", " ").unwrap(), json!({}));
        assert_eq!(parse_tool_arguments("t", "null").unwrap(), json!({}));
        assert_eq!(
            parse_tool_arguments("t", r#"{"a":1}"#).unwrap(),
            json!({"a": 1})
        );
        assert!(matches!(
            parse_tool_arguments("t", r#"{"a":"#),
            Err(ProviderError::Protocol { .. })
        ));
        assert!(matches!(
            parse_tool_arguments("t", "[1]"),
            Err(ProviderError::Protocol { .. })
        ));
        assert_eq!(
            object_arguments("t", json!(r#"{"a":1}"#)).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn temperatures_keep_their_decimal_form() {
        assert_eq!(temperature_json(0.7).map(Value::Number), Some(json!(0.7)));
        assert_eq!(temperature_json(0.0).map(Value::Number), Some(json!(0.0)));
        assert_eq!(temperature_json(f32::NAN), None);
    }

    #[test]
    fn generated_ids_look_like_openai_ones() {
        let id = generated_call_id();
        assert!(id.starts_with("call_"));
        assert_eq!(id.len(), 5 + 32);
        assert_ne!(id, generated_call_id());
    }
}
