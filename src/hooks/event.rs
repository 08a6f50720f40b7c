//! [`Event`]: one message of a session, as hooks see it.

use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::usage::scan::{self, Class};

/// Which way an event travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client, on its way to the upstream.
    ClientToUpstream,
    /// From the upstream, on its way to the client.
    UpstreamToClient,
}

impl Direction {
    /// The other way.
    pub fn reverse(self) -> Self {
        match self {
            Direction::ClientToUpstream => Direction::UpstreamToClient,
            Direction::UpstreamToClient => Direction::ClientToUpstream,
        }
    }
}

/// One text or binary message of a session: its bytes, and its `type`,
/// read when first asked for.
///
/// Events move without copies: an event read from one socket and forwarded
/// unchanged is written from the same buffer. Reading [`event_type`](Self::event_type)
/// walks the top-level members of the JSON object (values are skipped, not
/// parsed) and decodes escapes, so a hook sees the type the provider's JSON
/// parser sees. Parsing the whole event ([`to_json`](Self::to_json)) is up to the hook.
///
/// # Example
///
/// ```
/// use tower_realtime::hooks::Event;
///
/// let event = Event::text(r#"{"type":"session\u002eupdate","event_id":"evt_1","session":{}}"#);
/// assert_eq!(event.event_type(), Some("session.update"));
/// assert_eq!(event.event_id().as_deref(), Some("evt_1"));
/// assert_eq!(event.to_json().unwrap()["session"], serde_json::json!({}));
/// ```
#[derive(Clone)]
pub struct Event {
    payload: Payload,
    class: OnceLock<Class>,
}

#[derive(Clone)]
enum Payload {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Event {
    /// A text event, usually JSON.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(Payload::Text(Utf8Bytes::from(text.into())))
    }

    /// A text event holding `value` serialised.
    pub fn json(value: &serde_json::Value) -> Self {
        Self::text(value.to_string())
    }

    /// A binary event.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self::new(Payload::Binary(bytes.into()))
    }

    fn new(payload: Payload) -> Self {
        Self {
            payload,
            class: OnceLock::new(),
        }
    }

    /// The event of a text or binary message; `None` for control frames.
    pub(crate) fn from_message(message: Message) -> Option<Self> {
        match message {
            Message::Text(text) => Some(Self::new(Payload::Text(text))),
            Message::Binary(bytes) => Some(Self::new(Payload::Binary(bytes))),
            _ => None,
        }
    }

    /// The message that carries this event.
    pub(crate) fn into_message(self) -> Message {
        match self.payload {
            Payload::Text(text) => Message::Text(text),
            Payload::Binary(bytes) => Message::Binary(bytes),
        }
    }

    /// The payload, as sent.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.payload {
            Payload::Text(text) => text.as_bytes(),
            Payload::Binary(bytes) => bytes,
        }
    }

    /// The payload of a text event.
    pub fn as_text(&self) -> Option<&str> {
        match &self.payload {
            Payload::Text(text) => Some(text.as_str()),
            Payload::Binary(_) => None,
        }
    }

    /// Whether this is a binary event.
    pub fn is_binary(&self) -> bool {
        matches!(self.payload, Payload::Binary(_))
    }

    /// The payload size in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// The top-level `type` of a JSON object event, escapes decoded; `None`
    /// for other payloads, and for events with more than one top-level `type`.
    pub fn event_type(&self) -> Option<&str> {
        match self.class() {
            Class::Plain(range) => self.as_text()?.get(range.clone()),
            Class::Decoded(text) => Some(text),
            Class::Untyped | Class::Duplicate => None,
        }
    }

    /// The top-level `event_id`, if it is a string.
    pub fn event_id(&self) -> Option<String> {
        scan::members(self.as_bytes()).find_map(|(key, value)| match value {
            scan::Value::Str(text) if key == b"event_id" => scan::decode(text.raw),
            _ => None,
        })
    }

    /// The whole event, parsed; `None` when it is not JSON.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(self.as_bytes()).ok()
    }

    /// Whether the event has more than one top-level `type`.
    pub(crate) fn is_ambiguous(&self) -> bool {
        matches!(self.class(), Class::Duplicate)
    }

    fn class(&self) -> &Class {
        self.class.get_or_init(|| match &self.payload {
            Payload::Text(text) => scan::classify(text.as_bytes()),
            Payload::Binary(_) => Class::Untyped,
        })
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("type", &self.event_type())
            .field("binary", &self.is_binary())
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_does_not_copy() {
        let text = Utf8Bytes::from(r#"{"type":"x"}"#.to_owned());
        let start = text.as_bytes().as_ptr();
        let event = Event::from_message(Message::Text(text)).unwrap();
        assert_eq!(event.event_type(), Some("x"));
        let Message::Text(out) = event.into_message() else {
            panic!("text in, text out");
        };
        assert_eq!(out.as_bytes().as_ptr(), start);
    }

    #[test]
    fn binary_and_ambiguous_events_have_no_type() {
        assert_eq!(Event::binary(&b"{\"type\":\"x\"}"[..]).event_type(), None);
        let twice = Event::text(r#"{"type":"a","type":"b"}"#);
        assert_eq!(twice.event_type(), None);
        assert!(twice.is_ambiguous());
        assert_eq!(Event::text("not json").event_id(), None);
    }
}
