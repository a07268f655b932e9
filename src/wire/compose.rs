//! The Compose API's events — `text`, `tool_call`, `tool_result`, `workflow`,
//! `validation_error`, the execution events and `error` — as SSE (`data: {json}` then
//! `data: [DONE]`) or as raw NDJSON, one event a line, ending with a `done` line.

use std::io::Write;

use bytes::{BufMut, BytesMut};
use kubiya_actors::session::TurnEvent;
use serde_json::json;

use super::{StreamEncoder, event_json};

/// `id: N` + `data: {event}` per event, `data: [DONE]` after the last.
#[derive(Default)]
pub struct ComposeSseEncoder {
    seq: u64,
}

impl StreamEncoder for ComposeSseEncoder {
    fn encode(&mut self, event: &TurnEvent, out: &mut BytesMut) {
        if let Some(json) = event_json(event) {
            self.seq += 1;
            let _ = write!(out.writer(), "id: {}\ndata: ", self.seq);
            let _ = serde_json::to_writer(out.writer(), &json);
            out.put_slice(b"\n\n");
        }
        if event.is_terminal() {
            out.put_slice(b"data: [DONE]\n\n");
        }
    }

    fn heartbeat(&self) -> Option<&'static [u8]> {
        Some(super::SSE_HEARTBEAT)
    }
}

/// One JSON event per line; the last line is `{"type":"done",...}` on success.
#[derive(Default)]
pub struct NdjsonEncoder;

impl StreamEncoder for NdjsonEncoder {
    fn encode(&mut self, event: &TurnEvent, out: &mut BytesMut) {
        let json = match event {
            TurnEvent::Finished { usage, .. } => Some(json!({"type": "done", "usage": {
                "prompt_tokens": usage.input, "completion_tokens": usage.output,
            }})),
            other => event_json(other),
        };
        if let Some(json) = json {
            let _ = serde_json::to_writer(out.writer(), &json);
            out.put_u8(b'\n');
        }
    }

    fn heartbeat(&self) -> Option<&'static [u8]> {
        None
    }
}
