//! Incremental Server-Sent Events decoder for the OpenAI and Anthropic streams and the
//! Kubiya platform's execution stream.
//!
//! Its callers feed it response-body chunks exactly as the HTTP client delivers them; the
//! protocol decoders ([`openai`](crate::provider::openai),
//! [`anthropic`](crate::provider::anthropic), the platform runner's
//! [`kubiya_stream`](crate::workflow::run::kubiya_stream)) consume the [`SseEvent`]s it
//! yields. It follows the WHATWG event-stream rules that matter to us: `\n`, `\r\n` and `\r`
//! line ends, `:` comments, multi-line `data:`, one optional space after the colon, a
//! leading byte-order mark. Unlike a browser it also delivers an event left unterminated at
//! the end of the body (see [`SseDecoder::finish`]), because real captures end that way.
//! It keeps the stream's last event id and `retry:` for a caller that resumes streams (the
//! MCP client's streamable HTTP transport).

use std::time::Duration;

use super::lines::LineBuffer;

/// One dispatched event: its `event:` name, if any, and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// Feed bytes with [`SseDecoder::feed`], then drain events by iterating; repeat per chunk,
/// call [`SseDecoder::finish`] when the body ends and drain once more.
#[derive(Debug, Default)]
pub struct SseDecoder {
    lines: LineBuffer,
    checked_byte_order_mark: bool,
    /// The event being assembled.
    event: Option<String>,
    data: String,
    has_data: bool,
    last_event_id: Option<String>,
    retry: Option<Duration>,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk of the body; it may end anywhere, even inside a character.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.lines.feed(bytes);
    }

    /// The last `id:` the stream set (what `Last-Event-ID` carries on a reconnection).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The last `retry:` the stream set: how long to wait before reconnecting.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Marks the end of the body: a last line without terminator and an event without its
    /// closing blank line are delivered by the following iteration.
    pub fn finish(&mut self) {
        self.lines.finish();
    }

    /// The next complete event, or `None` until more bytes are fed.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        if !self.checked_byte_order_mark {
            let pending = self.lines.pending();
            if pending.len() < BYTE_ORDER_MARK.len()
                && BYTE_ORDER_MARK.starts_with(pending)
                && !self.lines.is_finished()
            {
                return None;
            }
            if pending.starts_with(BYTE_ORDER_MARK) {
                self.lines.skip(BYTE_ORDER_MARK.len());
            }
            self.checked_byte_order_mark = true;
        }
        while let Some(range) = self.lines.next_line(true) {
            let line = self.lines.line(range);
            if line.is_empty() {
                if self.has_data {
                    return Some(self.dispatch());
                }
                // A blank line without data ends an empty event: nothing to deliver.
                self.event = None;
                continue;
            }
            if line[0] == b':' {
                continue;
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &[][..]),
            };
            match field {
                b"data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    push_utf8(&mut self.data, value);
                    self.has_data = true;
                }
                b"event" => {
                    let mut name = String::new();
                    push_utf8(&mut name, value);
                    self.event = Some(name);
                }
                // An id with NUL is ignored, as the WHATWG rules say.
                b"id" if !value.contains(&0) => {
                    let mut id = String::new();
                    push_utf8(&mut id, value);
                    self.last_event_id = Some(id);
                }
                b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                    if let Ok(millis) = std::str::from_utf8(value).unwrap_or_default().parse() {
                        self.retry = Some(Duration::from_millis(millis));
                    }
                }
                _ => {}
            }
        }
        if self.lines.is_finished() && self.has_data {
            return Some(self.dispatch());
        }
        None
    }

    fn dispatch(&mut self) -> SseEvent {
        self.has_data = false;
        SseEvent {
            event: self.event.take(),
            data: std::mem::take(&mut self.data),
        }
    }
}

impl Iterator for SseDecoder {
    type Item = SseEvent;

    /// Not fused: `None` means "feed more", and events follow once more bytes arrive.
    fn next(&mut self) -> Option<SseEvent> {
        self.next_event()
    }
}

/// Appends a complete line's bytes; invalid UTF-8 becomes U+FFFD as the SSE spec demands.
fn push_utf8(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk);
            events.extend(&mut decoder);
        }
        decoder.finish();
        events.extend(&mut decoder);
        events
    }

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: name.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn fields_comments_and_multi_line_data() {
        let body = b": keep-alive\n\nevent: delta\ndata: one\ndata:two\ndata\nid: 7\nretry: 10\n\n";
        assert_eq!(decode(&[body]), [event(Some("delta"), "one\ntwo\n")]);
    }

    #[test]
    fn the_last_event_id_and_retry_are_kept_for_reconnection() {
        let mut decoder = SseDecoder::new();
        decoder.feed(
            b"id: event-1\nretry: 500\ndata: \n\nid: bad\0id\nretry: 5s\ndata: {}\n\nid: event-2\n",
        );
        assert_eq!(decoder.next_event(), Some(event(None, "")));
        assert_eq!(decoder.last_event_id(), Some("event-1"));
        assert_eq!(decoder.retry(), Some(Duration::from_millis(500)));
        assert_eq!(decoder.next_event(), Some(event(None, "{}")));
        assert_eq!(
            decoder.last_event_id(),
            Some("event-1"),
            "an id with NUL is ignored"
        );
        assert_eq!(
            decoder.retry(),
            Some(Duration::from_millis(500)),
            "only digits"
        );
        assert_eq!(decoder.next_event(), None);
        assert_eq!(decoder.last_event_id(), Some("event-2"));
    }

    #[test]
    fn only_one_space_after_the_colon_is_stripped() {
        assert_eq!(decode(&[b"data:  padded \n\n"]), [event(None, " padded ")]);
    }

    #[test]
    fn every_line_ending_works_and_names_reset_between_events() {
        let body = b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\rdata: 3\n\n";
        let expected = [event(Some("a"), "1"), event(None, "2"), event(None, "3")];
        assert_eq!(decode(&[body]), expected);
        for split in 0..=body.len() {
            assert_eq!(
                decode(&[&body[..split], &body[split..]]),
                expected,
                "{split}"
            );
        }
    }

    #[test]
    fn a_character_split_across_chunks_survives() {
        let body = "data: héllo — ✓\n\n".as_bytes();
        let bytewise: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(decode(&bytewise), [event(None, "héllo — ✓")]);
    }

    #[test]
    fn an_unterminated_last_event_is_flushed_at_the_end() {
        assert_eq!(
            decode(&[b"data: a\n\nevent: last\ndata: b"]),
            [event(None, "a"), event(Some("last"), "b")]
        );
        assert_eq!(decode(&[b"data: a\n"]), [event(None, "a")]);
        assert_eq!(decode(&[b"event: nothing\n"]), []);
    }

    #[test]
    fn a_byte_order_mark_is_skipped_even_when_split() {
        let body = b"\xEF\xBB\xBFdata: x\n\n";
        assert_eq!(
            decode(&[&body[..1], &body[1..2], &body[2..]]),
            [event(None, "x")]
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(decode(&[b"data: a\xFFb\n\n"]), [event(None, "a\u{FFFD}b")]);
    }
}
