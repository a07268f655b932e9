//! The MCP wire: JSON-RPC 2.0, one message per line, and the facts of both protocol eras
//! (legacy `initialize` handshake; modern 2026-07-28 with `server/discover` and per-request
//! `_meta`). The client [`super::connection`] and our own server [`super::server`] build and
//! classify messages here, so the protocol's names and codes live in one place.

use serde_json::{Map, Value, json};

/// The modern revision: no handshake, every request carries its version in `_meta`.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The newest handshake-based revision; what we ask a legacy server for.
pub const LEGACY_VERSION: &str = "2025-11-25";
/// Handshake revisions we accept from (and echo to) legacy peers, newest first.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// 2026-07-28: the least severe log level the request wants as `notifications/message`.
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// 2026-07-28: the request's protocol version is not one the server speaks.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// A JSON-RPC request id: the spec allows strings and integers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    Number(i64),
    Text(String),
}

impl RequestId {
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(number) => number.as_i64().map(Self::Number),
            Value::String(text) => Some(Self::Text(text.clone())),
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Self::Number(number) => Value::from(*number),
            Self::Text(text) => Value::from(text.as_str()),
        }
    }
}

/// An error object from a JSON-RPC response.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn from_value(value: &Value) -> Self {
        Self {
            code: value
                .get("code")
                .and_then(Value::as_i64)
                .unwrap_or(INTERNAL_ERROR),
            message: value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error without a message")
                .to_owned(),
            data: value.get("data").cloned(),
        }
    }

    pub fn to_value(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

/// One incoming line, sorted by what it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: RequestId,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        id: RequestId,
        result: Result<Value, RpcError>,
    },
    /// Valid JSON that is no JSON-RPC message we can route; the id, when there is one, lets a
    /// server answer "invalid request".
    Invalid {
        id: Option<RequestId>,
    },
}

/// Sorts a parsed line. Routing is by id and method, never by arrival order: servers send
/// notifications before the reply a client waits for.
pub fn classify(message: Value) -> Incoming {
    let Value::Object(mut object) = message else {
        return Incoming::Invalid { id: None };
    };
    let id = object.get("id").and_then(RequestId::from_value);
    let params = object.remove("params").unwrap_or(Value::Null);
    match (object.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) => Incoming::Request { id, method, params },
        (Some(Value::String(method)), None) if !object.contains_key("id") => {
            Incoming::Notification { method, params }
        }
        (None, Some(id)) => {
            if let Some(error) = object.get("error") {
                Incoming::Response {
                    id,
                    result: Err(RpcError::from_value(error)),
                }
            } else if let Some(result) = object.remove("result") {
                Incoming::Response {
                    id,
                    result: Ok(result),
                }
            } else {
                Incoming::Invalid { id: Some(id) }
            }
        }
        (_, id) => Incoming::Invalid { id },
    }
}

pub fn request(id: &RequestId, method: &str, params: Value) -> Value {
    let mut message = json!({"jsonrpc": "2.0", "id": id.to_value(), "method": method});
    if !params.is_null() {
        message["params"] = params;
    }
    message
}

pub fn notification(method: &str, params: Value) -> Value {
    let mut message = json!({"jsonrpc": "2.0", "method": method});
    if !params.is_null() {
        message["params"] = params;
    }
    message
}

pub fn response(id: &RequestId, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.to_value(), "result": result})
}

pub fn error_response(id: Option<&RequestId>, error: &RpcError) -> Value {
    json!({"jsonrpc": "2.0", "id": id.map_or(Value::Null, RequestId::to_value), "error": error.to_value()})
}

/// The `params._meta` object of a request, created when missing.
pub fn meta_mut(params: &mut Value) -> &mut Map<String, Value> {
    if !params.is_object() {
        *params = Value::Object(Map::new());
    }
    let object = params.as_object_mut().expect("made an object above");
    let meta = object
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("made an object above")
}

/// One line of the stdio transport: compact JSON, which never contains a raw newline.
pub fn to_line(message: &Value) -> String {
    let mut line = message.to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_sort_into_requests_notifications_and_responses() {
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":3,"method":"ping"})),
            Incoming::Request {
                id: RequestId::Number(3),
                method: "ping".into(),
                params: Value::Null
            }
        );
        assert!(matches!(
            classify(json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"})),
            Incoming::Notification { .. }
        ));
        assert_eq!(
            classify(
                json!({"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"Method not found"}})
            ),
            Incoming::Response {
                id: RequestId::Text("a".into()),
                result: Err(RpcError::new(METHOD_NOT_FOUND, "Method not found"))
            }
        );
        assert_eq!(
            classify(json!({"jsonrpc":"2.0","id":1,"result":{}})),
            Incoming::Response {
                id: RequestId::Number(1),
                result: Ok(json!({}))
            }
        );
        assert_eq!(classify(json!([1])), Incoming::Invalid { id: None });
    }

    #[test]
    fn meta_is_added_to_any_params() {
        let mut params = Value::Null;
        meta_mut(&mut params).insert("progressToken".into(), json!(1));
        assert_eq!(params, json!({"_meta": {"progressToken": 1}}));
    }
}
