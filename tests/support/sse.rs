//! The one server-sent-events parser of the test suites: a body (or chunks as they arrive) cut
//! into events at blank lines, comments (heartbeats) skipped, each event's `id:` and `data:`
//! kept. Tests read a whole body with [`data`] / [`json_data`] (chat chunks, Compose and UI
//! message events) or [`parse_sse`] (execution events, which carry a numeric id), and a live
//! stream with [`SseReader`]. A line that is neither a field we know nor a comment fails the
//! test: the server never sends one.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the parser"
)]

use serde_json::Value;

/// One event: its `id:` when it has one, and its `data:` lines joined by newlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub id: Option<String>,
    pub data: String,
}

/// Parses one event's lines; `None` for a block of comments only (a heartbeat).
pub fn frame(block: &str) -> Option<Frame> {
    let mut id = None;
    let mut data: Option<String> = None;
    for line in block.lines() {
        if let Some(value) = field(line, "id") {
            id = Some(value.to_owned());
        } else if let Some(value) = field(line, "data") {
            match data.as_mut() {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        } else {
            assert!(
                line.starts_with(':') || field(line, "event").is_some(),
                "unexpected SSE line {line:?}"
            );
        }
    }
    Some(Frame { id, data: data? })
}

/// `line`'s value when it is the field `name` (one optional space after the colon).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let value = line.strip_prefix(name)?.strip_prefix(':')?;
    Some(value.strip_prefix(' ').unwrap_or(value))
}

/// Every event of a whole body, in order.
pub fn frames(body: &str) -> Vec<Frame> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(frame)
        .collect()
}

/// The `data:` payloads of a whole body, in order, the `[DONE]` terminator included.
pub fn data(body: &str) -> Vec<String> {
    frames(body).into_iter().map(|frame| frame.data).collect()
}

/// The `data:` payloads as JSON, the `[DONE]` terminator left out.
pub fn json_data(body: &str) -> Vec<Value> {
    data(body)
        .iter()
        .filter(|data| *data != "[DONE]")
        .map(|data| {
            serde_json::from_str(data).unwrap_or_else(|err| panic!("not JSON ({err}): {data}"))
        })
        .collect()
}

/// An execution's event: its sequence number and its JSON data.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: u64,
    pub data: Value,
}

impl From<Frame> for SseEvent {
    fn from(frame: Frame) -> Self {
        let id = frame.id.expect("an execution event has an id");
        Self {
            id: id.parse().expect("a numeric id"),
            data: serde_json::from_str(&frame.data).expect("JSON data"),
        }
    }
}

/// Each execution event as `type` and, for a step's, its step: `step_running build`.
pub fn kinds(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            let kind = event.data["type"].as_str().unwrap_or_default();
            match event.data["step"].as_str() {
                Some(step) => format!("{kind} {step}"),
                None => kind.to_owned(),
            }
        })
        .collect()
}

/// One execution event; `None` for a comment (heartbeat).
pub fn parse_sse_block(block: &str) -> Option<SseEvent> {
    frame(block).map(SseEvent::from)
}

/// A whole body of execution events; comments (heartbeats) are skipped.
pub fn parse_sse(body: &str) -> Vec<SseEvent> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(parse_sse_block)
        .collect()
}

/// Cuts a live stream into whole events as its chunks arrive; a part of an event not yet
/// complete waits for the next chunk.
#[derive(Debug, Default)]
pub struct SseReader {
    pending: String,
}

impl SseReader {
    /// The events `chunk` completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Frame> {
        self.pending
            .push_str(std::str::from_utf8(chunk).expect("UTF-8"));
        let mut events = Vec::new();
        while let Some(end) = self.pending.find("\n\n") {
            events.extend(frame(&self.pending[..end]));
            self.pending.drain(..end + 2);
        }
        events
    }
}
