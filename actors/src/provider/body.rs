//! [`BodyWriter`]: a request body written straight into bytes, the one way the protocol
//! encoders ([`super::openai`], [`super::anthropic`], [`super::ollama`]) build theirs. Fields
//! go into one buffer sized up front for the request ([`BodyWriter::for_request`]); the parts a
//! model call repeats arrive already encoded ([`super::prefix`]) and are copied in, the rest
//! is serialised from types that borrow the request, so no JSON tree is built per call.

use serde::Serialize;

use super::message::{ChatMessage, ChatRequest};

/// A JSON object being written, field by field.
pub(crate) struct BodyWriter {
    bytes: Vec<u8>,
    empty: bool,
}

impl BodyWriter {
    /// The object that sends `request` with an encoded prefix of `prefix` bytes, with room for
    /// all of it, so writing it seldom grows (copies) the buffer: the texts' lengths plus what
    /// each protocol's keys and quoting add around them, and a guess at each tool call's
    /// arguments, which are not measured without encoding them.
    pub(crate) fn for_request(request: &ChatRequest, prefix: usize) -> Self {
        const PER_MESSAGE: usize = 96;
        const PER_CALL: usize = 256;
        let conversation: usize = request
            .messages
            .iter()
            .map(|message| {
                PER_MESSAGE
                    + match message {
                        ChatMessage::User { content } => content.len(),
                        ChatMessage::Assistant {
                            content,
                            tool_calls,
                        } => {
                            content.as_ref().map_or(0, String::len)
                                + tool_calls
                                    .iter()
                                    .map(|call| PER_CALL + call.id.len() + call.name.len())
                                    .sum::<usize>()
                        }
                        ChatMessage::Tool {
                            tool_call_id,
                            name,
                            content,
                            ..
                        } => tool_call_id.len() + name.len() + content.len(),
                    }
            })
            .sum();
        Self::object(256 + request.model.len() + prefix + conversation)
    }

    /// An object with room for `capacity` bytes.
    pub(crate) fn object(capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity);
        bytes.push(b'{');
        Self { bytes, empty: true }
    }

    /// Starts the field `name`; names are our own constants, never escaped.
    fn key(&mut self, name: &str) {
        if !self.empty {
            self.bytes.push(b',');
        }
        self.empty = false;
        self.bytes.push(b'"');
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.extend_from_slice(b"\":");
    }

    pub(crate) fn field(&mut self, name: &str, value: &impl Serialize) {
        self.key(name);
        write_json(&mut self.bytes, value);
    }

    /// A field whose value was encoded before (a shared prefix).
    pub(crate) fn encoded_field(&mut self, name: &str, json: &[u8]) {
        self.key(name);
        self.bytes.extend_from_slice(json);
    }

    /// A field whose value `write` appends.
    pub(crate) fn field_with(&mut self, name: &str, write: impl FnOnce(&mut Vec<u8>)) {
        self.key(name);
        write(&mut self.bytes);
    }

    /// The `messages` array of the protocols that send the system prompt (`system`, already
    /// a JSON string) as its first message.
    pub(crate) fn messages<M: Serialize>(
        &mut self,
        system: Option<&[u8]>,
        messages: impl IntoIterator<Item = M>,
    ) {
        self.field_with("messages", |bytes| {
            bytes.push(b'[');
            let mut first = true;
            if let Some(system) = system {
                bytes.extend_from_slice(b"{\"role\":\"system\",\"content\":");
                bytes.extend_from_slice(system);
                bytes.push(b'}');
                first = false;
            }
            for message in messages {
                if !first {
                    bytes.push(b',');
                }
                first = false;
                write_json(bytes, &message);
            }
            bytes.push(b']');
        });
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bytes.push(b'}');
        self.bytes
    }
}

/// Appends `value`'s JSON; serialising our own wire types into a `Vec` cannot fail.
pub(crate) fn write_json(bytes: &mut Vec<u8>, value: &impl Serialize) {
    let _ = serde_json::to_writer(bytes, value);
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn fields_make_one_object() {
        let mut body = BodyWriter::object(0);
        body.field("model", &"m\"1");
        body.messages(Some(b"\"be brief\"".as_slice()), [json!({"role": "user"})]);
        body.encoded_field("tools", b"[]");
        body.field("stream", &true);
        let parsed: Value = serde_json::from_slice(&body.finish()).unwrap();
        assert_eq!(
            parsed,
            json!({
                "model": "m\"1",
                "messages": [{"role": "system", "content": "be brief"}, {"role": "user"}],
                "tools": [],
                "stream": true,
            })
        );
        let mut empty = BodyWriter::object(0);
        empty.messages(None, Vec::<Value>::new());
        assert_eq!(empty.finish(), b"{\"messages\":[]}");
    }
}
