//! What our MCP client answers when a supervised server asks its user a question
//! (`elicitation/create`). Nobody sits behind a supervised session to answer, so by default
//! every question is declined cleanly and the tool carries on without the answer. A server
//! configured with `elicitation = "accept_defaults"` gets the form's own defaults (SEP-1034)
//! instead, when the form has a valid default for every field it requires; anything else
//! (a URL to visit, a required field without a default) is still declined.
//! [`super::connection`] calls [`answer`] from its message router.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// How a server's questions are answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElicitationPolicy {
    #[default]
    Decline,
    /// Accept with the defaults the form declares, when they answer every required field.
    AcceptDefaults,
}

/// The `ElicitResult` for one `elicitation/create` request's `params`.
pub(crate) fn answer(policy: ElicitationPolicy, params: &Value) -> Value {
    let decline = json!({"action": "decline"});
    if policy != ElicitationPolicy::AcceptDefaults
        || params.get("mode").and_then(Value::as_str) == Some("url")
    {
        return decline;
    }
    let schema = params.get("requestedSchema");
    let Some(properties) = schema
        .and_then(|schema| schema.get("properties"))
        .and_then(Value::as_object)
    else {
        return decline;
    };
    let content: Map<String, Value> = properties
        .iter()
        .filter_map(|(name, field)| {
            let default = field.get("default")?;
            fits(field, default).then(|| (name.clone(), default.clone()))
        })
        .collect();
    let required = schema
        .and_then(|schema| schema.get("required"))
        .and_then(Value::as_array);
    let answered = required.is_none_or(|required| {
        required
            .iter()
            .all(|name| name.as_str().is_some_and(|name| content.contains_key(name)))
    });
    if answered {
        json!({"action": "accept", "content": content})
    } else {
        decline
    }
}

/// Whether `value` is a valid answer for a form field (the primitive schemas elicitation
/// allows: string, number, integer, boolean, enums of strings).
fn fits(field: &Value, value: &Value) -> bool {
    if let Some(options) = field.get("enum").and_then(Value::as_array) {
        return options.contains(value);
    }
    match field.get("type").and_then(Value::as_str) {
        Some("string") => value.is_string(),
        Some("number") => value.is_number(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(required: Value) -> Value {
        json!({"message": "?", "requestedSchema": {"type": "object", "properties": {
            "name": {"type": "string", "default": "John Doe"},
            "age": {"type": "integer", "default": 30},
            "status": {"type": "string", "enum": ["active", "inactive"], "default": "active"},
            "verified": {"type": "boolean", "default": "yes"},
            "note": {"type": "string"}
        }, "required": required}})
    }

    #[test]
    fn defaults_answer_a_form_only_when_they_cover_every_required_field() {
        let accepted = answer(ElicitationPolicy::AcceptDefaults, &form(json!(["name"])));
        assert_eq!(
            accepted,
            json!({"action": "accept", "content": {"name": "John Doe", "age": 30, "status": "active"}}),
            "a default of the wrong type is left out"
        );
        let missing = answer(ElicitationPolicy::AcceptDefaults, &form(json!(["note"])));
        assert_eq!(missing["action"], "decline");
        let wrong = answer(
            ElicitationPolicy::AcceptDefaults,
            &form(json!(["verified"])),
        );
        assert_eq!(wrong["action"], "decline");
    }

    #[test]
    fn questions_are_declined_by_default_and_urls_always() {
        assert_eq!(
            answer(ElicitationPolicy::Decline, &form(json!([])))["action"],
            "decline"
        );
        let url = json!({"mode": "url", "url": "https://example.com", "message": "log in"});
        assert_eq!(
            answer(ElicitationPolicy::AcceptDefaults, &url)["action"],
            "decline"
        );
    }
}
