//! The normalised model output and the provider error taxonomy.
//!
//! Every protocol decoder turns its vendor's stream or response body into the same sequence
//! of [`LlmEvent`]s: deltas and completed tool calls as they arrive, then [`LlmEvent::Usage`]
//! when known, then exactly one [`LlmEvent::Finished`] — or a single [`LlmEvent::Failed`]
//! with nothing after it. The provider actor forwards these to sessions; [`ProviderError`]
//! also classifies HTTP failures (see [`ProviderError::from_status`]) so callers can decide
//! about retries without knowing which vendor answered.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::ToolCall;

/// One piece of a model's answer, in a vendor-independent shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum LlmEvent {
    TextDelta(String),
    ReasoningDelta(String),
    /// A tool call whose arguments are complete and parsed.
    ToolCall(ToolCall),
    Usage(Usage),
    Finished {
        reason: FinishReason,
    },
    Failed(ProviderError),
}

/// Token counts for one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub input: u64,
    /// Generated tokens, reasoning included.
    pub output: u64,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// A vendor reason with no normalised equivalent, kept verbatim.
    Other(String),
}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutPhase {
    /// Opening the connection (DNS, TCP, TLS).
    Connect,
    /// Waiting for the response headers.
    Response,
    /// Waiting for the next chunk of a body already under way.
    Stream,
    /// The whole call, retries and fallbacks included.
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connecting to the provider",
            TimeoutPhase::Response => "waiting for the provider's response",
            TimeoutPhase::Stream => "waiting for the provider's next chunk",
            TimeoutPhase::Total => "before the model call finished",
        })
    }
}

/// A failed model call, classified so callers can decide what to do without knowing the
/// vendor. Messages come from the vendor's error body with anything key-like redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderError {
    /// The key is missing, wrong or lacks permission (401/403).
    #[error("the provider rejected our credentials: {message}")]
    Auth { message: String },
    /// The account cannot pay for the call (402, or OpenAI's `insufficient_quota`).
    #[error("the provider account has no quota or credit left: {message}")]
    Billing { message: String },
    #[error("the provider is rate limiting us: {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused the request itself (unknown model, bad parameter, too large).
    #[error("the provider rejected the request: {message}")]
    BadRequest {
        status: Option<u16>,
        message: String,
    },
    /// 5xx, 529 overloaded, or the connection failed; `status` is `None` for the latter.
    #[error("the provider is unavailable: {message}")]
    UpstreamUnavailable {
        status: Option<u16>,
        message: String,
    },
    #[error("timed out {phase}")]
    Timeout { phase: TimeoutPhase },
    /// The provider spoke its protocol wrongly: a malformed line, a stream that ended
    /// without its terminator, or an error it reported mid-stream.
    #[error("the provider's response broke its protocol: {message}")]
    Protocol { message: String },
}

/// Vendor messages are shown to users and logged; cap them so a huge HTML error page does
/// not end up in either.
const MAX_MESSAGE_CHARS: usize = 500;

impl ProviderError {
    /// Whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::UpstreamUnavailable { .. }
                | ProviderError::Timeout { .. }
        )
    }

    /// The vendor's (redacted) message, without our framing.
    pub fn message(&self) -> String {
        match self {
            ProviderError::Auth { message }
            | ProviderError::Billing { message }
            | ProviderError::RateLimited { message, .. }
            | ProviderError::BadRequest { message, .. }
            | ProviderError::UpstreamUnavailable { message, .. }
            | ProviderError::Protocol { message } => message.clone(),
            ProviderError::Timeout { phase } => format!("timed out {phase}"),
        }
    }

    /// A protocol violation; `message` must not contain secrets.
    pub fn protocol(message: impl Into<String>) -> Self {
        ProviderError::Protocol {
            message: message.into(),
        }
    }

    /// The connection could not be opened or broke before a response arrived.
    pub fn connect(message: impl fmt::Display) -> Self {
        ProviderError::UpstreamUnavailable {
            status: None,
            message: redact_secrets(&message.to_string()),
        }
    }

    /// Reads a `Retry-After` header given in seconds (OpenAI and Anthropic send integers,
    /// some gateways decimals). HTTP-date values are not supported and yield `None`.
    pub fn parse_retry_after(value: &str) -> Option<Duration> {
        let seconds: f64 = value.trim().parse().ok()?;
        (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
    }

    /// Classifies a non-success HTTP response. `body` is the raw error body in any vendor's
    /// shape (OpenAI `{"error":{"message"}}`, Anthropic `{"type":"error","error":{...}}`,
    /// Ollama `{"error":"..."}`, or plain text); `retry_after` is the parsed header.
    pub fn from_status(status: u16, body: &[u8], retry_after: Option<Duration>) -> ProviderError {
        let detail = ErrorDetail::from_body(body);
        let message = detail
            .message
            .map(|message| redact_secrets(&message))
            .unwrap_or_else(|| format!("HTTP {status}"));
        let kind = detail.kind.as_deref().unwrap_or("");
        match status {
            401 | 403 => ProviderError::Auth { message },
            402 => ProviderError::Billing { message },
            429 if kind == "insufficient_quota" => ProviderError::Billing { message },
            429 => ProviderError::RateLimited {
                message,
                retry_after,
            },
            // Request timeout and conflict are transient; the vendor SDKs retry both.
            408 | 409 => ProviderError::UpstreamUnavailable {
                status: Some(status),
                message,
            },
            400..=499 => ProviderError::BadRequest {
                status: Some(status),
                message,
            },
            500..=599 => ProviderError::UpstreamUnavailable {
                status: Some(status),
                message,
            },
            _ => ProviderError::protocol(format!("unexpected HTTP status {status}: {message}")),
        }
    }

    /// Classifies an error the vendor reported inside a stream or a 200 body, from its
    /// error object (`{"type","code","message"}`) or bare string.
    pub(crate) fn from_error_value(error: &Value) -> ProviderError {
        let detail = ErrorDetail::from_error_value(error);
        let message = redact_secrets(
            detail
                .message
                .as_deref()
                .unwrap_or("the provider reported an error without a message"),
        );
        match detail.kind.as_deref().unwrap_or("") {
            "overloaded_error"
            | "api_error"
            | "server_error"
            | "timeout_error"
            | "service_unavailable" => ProviderError::UpstreamUnavailable {
                status: None,
                message,
            },
            "rate_limit_error" | "rate_limit_exceeded" | "tokens" | "requests" => {
                ProviderError::RateLimited {
                    message,
                    retry_after: None,
                }
            }
            "authentication_error" | "permission_error" | "invalid_api_key" => {
                ProviderError::Auth { message }
            }
            "billing_error" | "insufficient_quota" => ProviderError::Billing { message },
            "invalid_request_error" | "not_found_error" | "request_too_large" => {
                ProviderError::BadRequest {
                    status: None,
                    message,
                }
            }
            _ => ProviderError::protocol(format!("the provider reported an error: {message}")),
        }
    }
}

/// What we could read out of a vendor error body.
#[derive(Default)]
struct ErrorDetail {
    message: Option<String>,
    /// The vendor's error type or code (`rate_limit_error`, `insufficient_quota`, ...).
    kind: Option<String>,
}

impl ErrorDetail {
    fn from_body(body: &[u8]) -> ErrorDetail {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            let detail = match value.get("error") {
                Some(error) => ErrorDetail::from_error_value(error),
                // Some gateways answer `{"message": "..."}` or `{"detail": "..."}`.
                None => ErrorDetail {
                    message: ["message", "detail"]
                        .iter()
                        .find_map(|key| value.get(*key).and_then(Value::as_str))
                        .map(str::to_owned),
                    kind: None,
                },
            };
            if detail.message.is_some() {
                return detail;
            }
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        ErrorDetail {
            message: (!text.is_empty()).then(|| truncate(text)),
            kind: None,
        }
    }

    fn from_error_value(error: &Value) -> ErrorDetail {
        match error {
            Value::String(message) => ErrorDetail {
                message: Some(truncate(message)),
                kind: None,
            },
            Value::Object(fields) => {
                let text = |key: &str| fields.get(key).and_then(Value::as_str);
                // OpenAI puts the specific reason in `code` (`insufficient_quota`) and the
                // family in `type`; Anthropic only has `type`.
                let kind = match (text("code"), text("type")) {
                    (Some("insufficient_quota"), _) | (_, Some("insufficient_quota")) => {
                        Some("insufficient_quota")
                    }
                    (_, Some(kind)) => Some(kind),
                    (Some(code), None) => Some(code),
                    (None, None) => None,
                };
                ErrorDetail {
                    message: text("message").map(truncate),
                    kind: kind.map(str::to_owned),
                }
            }
            _ => ErrorDetail::default(),
        }
    }
}

/// The start of a bad payload, for error messages.
pub(crate) fn clip(data: &str) -> &str {
    match data.char_indices().nth(200) {
        Some((end, _)) => &data[..end],
        None => data,
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Prefixes of vendor API keys; vendors echo (partially masked) keys in 401 messages.
const KEY_PREFIXES: [&str; 7] = ["sk-", "sk_", "gsk_", "xai-", "tgp_", "pk-", "key-"];

/// Replaces anything that looks like an API key or bearer token with `[redacted]`.
pub(crate) fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_bearer = false;
    // Each piece is one word plus the whitespace after it, so the layout survives.
    for piece in text.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end();
        let token = word.trim_matches(|c: char| matches!(c, '.' | ',' | ';' | '"' | '\'' | '`'));
        if !token.is_empty() && (after_bearer || looks_like_secret(token)) {
            out.push_str(&piece.replacen(token, "[redacted]", 1));
        } else {
            out.push_str(piece);
        }
        after_bearer = token.eq_ignore_ascii_case("bearer");
    }
    out
}

fn looks_like_secret(token: &str) -> bool {
    if KEY_PREFIXES.iter().any(|prefix| token.starts_with(prefix)) {
        return true;
    }
    // Long opaque tokens mixing letters and digits are keys far more often than prose.
    token.len() >= 40
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*'))
        && token.bytes().any(|b| b.is_ascii_digit())
        && token.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Maps the OpenAI-style `finish_reason` strings (also used by Ollama's `done_reason`).
pub(crate) fn finish_reason_from_openai(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Some servers answer `stop` even though the turn ended in tool calls; normalise so the
/// caller can trust `ToolCalls` to mean "run the tools".
pub(crate) fn settle_finish_reason(
    reason: Option<FinishReason>,
    emitted_tool_calls: bool,
) -> FinishReason {
    match reason {
        None | Some(FinishReason::Stop) if emitted_tool_calls => FinishReason::ToolCalls,
        None => FinishReason::Stop,
        Some(reason) => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/protocols/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).unwrap()
    }

    #[test]
    fn openai_error_bodies_yield_their_message() {
        let error = ProviderError::from_status(
            400,
            &fixture("openai_error_400_unsupported_parameter.json"),
            None,
        );
        assert_eq!(
            error,
            ProviderError::BadRequest {
                status: Some(400),
                message: "Unsupported parameter: 'max_tokens' is not supported with this model. \
                          Use 'max_completion_tokens' instead."
                    .into(),
            }
        );
        assert!(!error.is_retryable());

        let error =
            ProviderError::from_status(400, &fixture("openai_error_400_code_null.json"), None);
        assert_eq!(
            error.message(),
            "Unsupported parameter: 'temperature' is not supported with this model."
        );
    }

    #[test]
    fn anthropic_error_bodies_yield_their_message_and_overload_is_retryable() {
        let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
        let error = ProviderError::from_status(529, body, None);
        assert_eq!(
            error,
            ProviderError::UpstreamUnavailable {
                status: Some(529),
                message: "Overloaded".into(),
            }
        );
        assert!(error.is_retryable());

        let body = br#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
        let error = ProviderError::from_status(429, body, Some(Duration::from_secs(7)));
        assert_eq!(
            error,
            ProviderError::RateLimited {
                message: "Number of request tokens has exceeded your per-minute rate limit".into(),
                retry_after: Some(Duration::from_secs(7)),
            }
        );
        assert!(error.is_retryable());
    }

    #[test]
    fn ollama_error_bodies_yield_their_message() {
        let error = ProviderError::from_status(
            404,
            br#"{"error":"model \"llama9\" not found, try pulling it first"}"#,
            None,
        );
        assert_eq!(
            error,
            ProviderError::BadRequest {
                status: Some(404),
                message: "model \"llama9\" not found, try pulling it first".into(),
            }
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let parse = ProviderError::parse_retry_after;
        assert_eq!(parse("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn statuses_map_to_kinds() {
        let kind = |status| ProviderError::from_status(status, b"", None);
        assert!(matches!(kind(401), ProviderError::Auth { .. }));
        assert!(matches!(kind(403), ProviderError::Auth { .. }));
        assert!(matches!(kind(402), ProviderError::Billing { .. }));
        assert!(matches!(kind(413), ProviderError::BadRequest { .. }));
        assert!(kind(500).is_retryable());
        assert!(kind(503).is_retryable());
        assert!(kind(408).is_retryable());
        assert_eq!(kind(502).message(), "HTTP 502");

        let quota = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let error = ProviderError::from_status(429, quota, None);
        assert!(matches!(error, ProviderError::Billing { .. }));
        assert!(!error.is_retryable());
    }

    #[test]
    fn plain_text_and_html_bodies_are_kept_short() {
        let error = ProviderError::from_status(502, b"  Bad Gateway\n", None);
        assert_eq!(error.message(), "Bad Gateway");
        let page = "<html>".repeat(1000);
        let error = ProviderError::from_status(503, page.as_bytes(), None);
        assert_eq!(error.message().chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn keys_echoed_by_vendors_are_redacted() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-proj-abc1****************************xyz9. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let error = ProviderError::from_status(401, body, None);
        let shown = error.to_string();
        assert!(!shown.contains("sk-proj"), "{shown}");
        assert!(shown.contains("Incorrect API key provided: [redacted]. You can find"));
        assert_eq!(
            redact_secrets("header was Bearer abc.def and gsk_123456"),
            "header was Bearer [redacted] and [redacted]"
        );
        assert_eq!(
            redact_secrets("model llama3.2 not found"),
            "model llama3.2 not found"
        );
    }

    #[test]
    fn in_stream_error_objects_are_classified() {
        let overloaded = serde_json::json!({"type": "overloaded_error", "message": "Overloaded"});
        assert_eq!(
            ProviderError::from_error_value(&overloaded),
            ProviderError::UpstreamUnavailable {
                status: None,
                message: "Overloaded".into(),
            }
        );
        let odd = serde_json::json!({"message": "boom", "type": "weird"});
        assert!(matches!(
            ProviderError::from_error_value(&odd),
            ProviderError::Protocol { .. }
        ));
    }

    #[test]
    fn errors_serialise_with_their_kind() {
        let error = ProviderError::Timeout {
            phase: TimeoutPhase::Stream,
        };
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "timeout", "phase": "stream"})
        );
        assert_eq!(
            error.to_string(),
            "timed out waiting for the provider's next chunk"
        );
    }
}
