//! Reading the one request a WebSocket client sends, under the boundary's rules: text frames
//! only (binary is closed with 1003), fragmented text assembled up to the request size limit
//! (a frame or a message above it is closed with 1009), valid UTF-8 only (1007), and within
//! the request timeout (a client that sends nothing is closed with 1008), so an idle or odd
//! client never holds a socket open without end. Pings are answered while waiting.

use std::io::ErrorKind;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, MessageStream,
    ProtocolError, Session,
};

/// The limits a WebSocket request is read under.
#[derive(Debug, Clone, Copy)]
pub struct WsRequestRules {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// Limits the stream's frames and assembled messages to the request size.
pub fn limit(incoming: MessageStream, rules: WsRequestRules) -> AggregatedMessageStream {
    incoming
        .max_frame_size(rules.max_bytes)
        .aggregate_continuations()
        .max_continuation_size(rules.max_bytes)
}

/// The first text message, or why the socket must close (`None`: the client already left).
pub async fn first_request(
    incoming: &mut AggregatedMessageStream,
    socket: &mut Session,
    rules: WsRequestRules,
) -> Result<Bytes, Option<CloseReason>> {
    let deadline = tokio::time::Instant::now() + rules.timeout;
    loop {
        let next = match tokio::time::timeout_at(deadline, incoming.recv()).await {
            Ok(next) => next,
            Err(_) => {
                return Err(Some(reason(
                    CloseCode::Policy,
                    format!(
                        "no request within {} seconds: send one compose request as a JSON text message",
                        rules.timeout.as_secs()
                    ),
                )));
            }
        };
        match next {
            Some(Ok(AggregatedMessage::Text(text))) => return Ok(text.into_bytes()),
            Some(Ok(AggregatedMessage::Binary(_))) => {
                return Err(Some(reason(
                    CloseCode::Unsupported,
                    "binary messages are not accepted: send the request as a JSON text message",
                )));
            }
            Some(Ok(AggregatedMessage::Ping(bytes))) => {
                if socket.pong(&bytes).await.is_err() {
                    return Err(None);
                }
            }
            Some(Ok(AggregatedMessage::Pong(_))) => {}
            Some(Ok(AggregatedMessage::Close(_))) | None => return Err(None),
            Some(Err(error)) => return Err(closing(&error, rules.max_bytes)),
        }
    }
}

/// The close a protocol error calls for.
fn closing(error: &ProtocolError, max_bytes: usize) -> Option<CloseReason> {
    let too_large = format!("the request is larger than the limit of {max_bytes} bytes");
    match error {
        ProtocolError::Overflow => Some(reason(CloseCode::Size, too_large)),
        ProtocolError::Io(io) if io.kind() == ErrorKind::InvalidData => Some(reason(
            CloseCode::Invalid,
            "a text message must be valid UTF-8",
        )),
        // How actix-ws reports assembled fragments past the limit.
        ProtocolError::Io(io) if io.to_string().contains("maximum continuation size") => {
            Some(reason(CloseCode::Size, too_large))
        }
        ProtocolError::Io(_) => None,
        other => Some(reason(CloseCode::Protocol, other.to_string())),
    }
}

fn reason(code: CloseCode, description: impl Into<String>) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.into()),
    }
}
