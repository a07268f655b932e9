//! What one request of our MCP server may send back before its result: progress
//! ([`ProgressReporter`], when the client sent a token) and log messages ([`Logger`], at or
//! above the level the client asked for). Both go to the request's own outbound channel (the
//! stdio output, or the request's SSE stream over HTTP) and fall silent once the request is
//! cancelled, as the specification requires.

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::jsonrpc;

/// Where a request's messages go; unbounded because a request sends a bounded number of
/// them (one per workflow step event, itself capped) and the writer never waits on a client.
pub type Outbound = mpsc::UnboundedSender<Value>;

/// What a tool call gets besides its arguments.
pub struct CallContext {
    /// Cancelled when the client cancels the request or goes away.
    pub cancel: CancellationToken,
    /// Present when the client asked for progress.
    pub progress: Option<ProgressReporter>,
    /// Present when the client wants log messages for this request.
    pub log: Option<Logger>,
}

/// Sends `notifications/progress` for one request; `progress` rises by one per report.
pub struct ProgressReporter {
    token: Value,
    sent: u64,
    output: Outbound,
    cancel: CancellationToken,
}

impl ProgressReporter {
    pub fn new(token: Value, output: Outbound, cancel: CancellationToken) -> Self {
        Self {
            token,
            sent: 0,
            output,
            cancel,
        }
    }

    pub fn report(&mut self, message: String) {
        // Nothing more may go out for a cancelled request.
        if self.cancel.is_cancelled() {
            return;
        }
        self.sent += 1;
        let _ = self.output.send(jsonrpc::notification(
            "notifications/progress",
            json!({"progressToken": self.token, "progress": self.sent, "message": message}),
        ));
    }
}

/// Syslog severities, as `logging/setLevel` and `notifications/message` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "debug" => Self::Debug,
            "info" => Self::Info,
            "notice" => Self::Notice,
            "warning" => Self::Warning,
            "error" => Self::Error,
            "critical" => Self::Critical,
            "alert" => Self::Alert,
            "emergency" => Self::Emergency,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Notice => "notice",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
            Self::Alert => "alert",
            Self::Emergency => "emergency",
        }
    }
}

/// Sends `notifications/message` for one request, dropping what is below `minimum`.
pub struct Logger {
    minimum: LogLevel,
    output: Outbound,
    cancel: CancellationToken,
}

impl Logger {
    pub fn new(minimum: LogLevel, output: Outbound, cancel: CancellationToken) -> Self {
        Self {
            minimum,
            output,
            cancel,
        }
    }

    pub fn log(&self, level: LogLevel, logger: &str, data: Value) {
        if level < self.minimum || self.cancel.is_cancelled() {
            return;
        }
        let _ = self.output.send(jsonrpc::notification(
            "notifications/message",
            json!({"level": level.name(), "logger": logger, "data": data}),
        ));
    }
}
