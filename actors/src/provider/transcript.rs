//! [`Transcript`]: a conversation's messages, owned by the session that keeps them and shared,
//! not copied, with each model request of its turn. The `Composer` puts the session's
//! transcript into a [`super::ChatRequest`] as one more reference, the protocol encoders read
//! it in place, and the provider drops the request before it reports the call finished
//! ([`super::call`]), so the session's next append finds the messages its own again and
//! copies nothing. An append while a request still holds them copies them first (copy on
//! write): a request never sees messages added after it was built.
//!
//! Session records keep a transcript too; its JSON is the array of its messages.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::message::ChatMessage;

/// A conversation, shared by the requests built from it.
#[derive(Clone, Default, PartialEq)]
pub struct Transcript(Arc<Vec<ChatMessage>>);

impl Transcript {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `message`; copies the messages first only while a request still shares them.
    pub fn push(&mut self, message: ChatMessage) {
        Arc::make_mut(&mut self.0).push(message);
    }

    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            Arc::make_mut(&mut self.0).truncate(len);
        }
    }

    /// Room for messages, whether used or not: what the messages' fixed parts take.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// Gives back the room past the last message, unless the messages are shared: a shared
    /// transcript is not copied for it.
    pub fn shrink_to_fit(&mut self) {
        if let Some(messages) = Arc::get_mut(&mut self.0) {
            messages.shrink_to_fit();
        }
    }

    /// The messages as a `Vec`, copied only when they are shared.
    pub fn into_vec(self) -> Vec<ChatMessage> {
        Arc::unwrap_or_clone(self.0)
    }

    /// Whether `self` and `other` are the same messages in memory, not only equal ones.
    pub fn shares_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Deref for Transcript {
    type Target = [ChatMessage];

    fn deref(&self) -> &[ChatMessage] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Transcript {
    type Item = &'a ChatMessage;
    type IntoIter = std::slice::Iter<'a, ChatMessage>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Extend<ChatMessage> for Transcript {
    fn extend<I: IntoIterator<Item = ChatMessage>>(&mut self, messages: I) {
        let mut messages = messages.into_iter().peekable();
        if messages.peek().is_some() {
            Arc::make_mut(&mut self.0).extend(messages);
        }
    }
}

impl From<Vec<ChatMessage>> for Transcript {
    fn from(messages: Vec<ChatMessage>) -> Self {
        Self(Arc::new(messages))
    }
}

impl FromIterator<ChatMessage> for Transcript {
    fn from_iter<I: IntoIterator<Item = ChatMessage>>(messages: I) -> Self {
        Self::from(messages.into_iter().collect::<Vec<_>>())
    }
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for Transcript {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Transcript {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_keeps_the_messages_it_was_built_with() {
        let mut kept = Transcript::from(vec![ChatMessage::user("hi")]);
        let sent = kept.clone();
        assert!(sent.shares_with(&kept), "a request shares the messages");
        kept.push(ChatMessage::assistant_text("hello"));
        assert!(!sent.shares_with(&kept), "appending while shared copies");
        assert_eq!(&*sent, [ChatMessage::user("hi")]);
        assert_eq!(kept.len(), 2);

        // Once the request is gone the messages are the session's alone: appending moves
        // nothing.
        drop(sent);
        assert!(kept.capacity() > kept.len());
        let at = kept.as_ptr();
        kept.push(ChatMessage::user("more"));
        assert_eq!(kept.as_ptr(), at);
        kept.truncate(2);
        kept.extend([ChatMessage::user("again")]);
        assert_eq!(kept.as_ptr(), at);
        assert_eq!(kept[2], ChatMessage::user("again"));
    }

    #[test]
    fn its_json_is_the_array_of_its_messages() {
        let transcript = Transcript::from(vec![
            ChatMessage::user("hi"),
            ChatMessage::assistant_text("hello"),
        ]);
        let json = serde_json::to_value(&transcript).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello", "tool_calls": []},
            ])
        );
        let back: Transcript = serde_json::from_value(json).unwrap();
        assert_eq!(back, transcript);
        assert_eq!(back.into_vec(), transcript.clone().into_vec());
    }
}
