//! What one request of our MCP server may send back before its result: progress
//! ([`ProgressReporter`], when the client sent a token) and log messages ([`Logger`], at or
//! above the level the client asked for). Both go to the request's own outbound channel (the
//! stdio output, or the request's SSE stream over HTTP) and fall silent once the request is
//! cancelled, as the specification requires.

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::jsonrpc;

/// How many messages wait for a slow reader (a client not reading its SSE stream, a stalled
/// stdout) before notifications are dropped.
const OUTBOUND_CAPACITY: usize = 256;
/// Room kept free for responses: notifications stop while less than this is left.
const RESPONSE_ROOM: usize = 16;

/// Where a request's messages go: a bounded channel to the writer, which never waits on a
/// client. Notifications (progress, logs, resource updates) are dropped while the reader is
/// behind, as the specification allows; a response is never dropped (it waits for room in a
/// task of its own, so memory grows with requests in flight, not with what they report).
#[derive(Clone, Debug)]
pub struct Outbound(mpsc::Sender<Value>);

impl Outbound {
    /// A channel and its receiving end.
    pub fn channel() -> (Self, mpsc::Receiver<Value>) {
        let (sender, receiver) = mpsc::channel(OUTBOUND_CAPACITY);
        (Self(sender), receiver)
    }

    /// Sends a notification unless the reader is behind; false when it was dropped.
    pub fn notify(&self, message: Value) -> bool {
        self.0.capacity() > RESPONSE_ROOM && self.0.try_send(message).is_ok()
    }

    /// Sends a response (or anything else that must arrive), waiting for room if need be.
    pub fn respond(&self, message: Value) {
        if let Err(mpsc::error::TrySendError::Full(message)) = self.0.try_send(message) {
            let sender = self.0.clone();
            tokio::spawn(async move {
                let _ = sender.send(message).await;
            });
        }
    }
}

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
        self.output.notify(jsonrpc::notification(
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
        self.output.notify(jsonrpc::notification(
            "notifications/message",
            json!({"level": level.name(), "logger": logger, "data": data}),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Paused time: the wait for "nothing more" ends as soon as nothing else can happen.
    #[tokio::test(start_paused = true)]
    async fn a_reader_that_falls_behind_loses_notifications_but_never_a_response() {
        let (out, mut reader) = Outbound::channel();
        let sent = (0..1000)
            .filter(|n| out.notify(json!({"method": "notifications/progress", "n": n})))
            .count();
        assert_eq!(sent, OUTBOUND_CAPACITY - RESPONSE_ROOM, "bounded");
        for id in 0..(RESPONSE_ROOM + 10) {
            out.respond(json!({"id": id, "result": {}}));
        }
        let mut responses = 0;
        while let Ok(Some(message)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), reader.recv()).await
        {
            responses += usize::from(message.get("id").is_some());
        }
        assert_eq!(responses, RESPONSE_ROOM + 10, "every response arrives");
    }
}
