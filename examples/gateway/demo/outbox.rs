//! What the demo provider has yet to send: replies to client events at
//! once, the response being streamed in order with its deltas paced.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

/// Server events waiting to be sent.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Events that go out as soon as possible, ahead of the response.
    now: VecDeque<Value>,
    /// The response being streamed.
    response: VecDeque<Paced>,
    pace: Duration,
    next_paced: Instant,
    prefix: String,
    sent: u64,
}

#[derive(Debug)]
struct Paced {
    event: Value,
    paced: bool,
}

impl Outbox {
    /// Paced events go out `pace` apart; event ids start with `prefix`.
    pub(crate) fn new(pace: Duration, prefix: &str) -> Self {
        Self {
            now: VecDeque::new(),
            response: VecDeque::new(),
            pace,
            next_paced: Instant::now(),
            prefix: prefix.to_owned(),
            sent: 0,
        }
    }

    /// Queues a `kind` event with the fields of `body`, to go out ahead of
    /// the rest of the response being streamed.
    pub(crate) fn push(&mut self, kind: &str, body: Value) {
        let event = self.event(kind, body);
        self.now.push_back(event);
    }

    /// Queues a part of the response being streamed; `paced` parts (the
    /// deltas) go out one by one.
    pub(crate) fn push_response(&mut self, kind: &str, body: Value, paced: bool) {
        let event = self.event(kind, body);
        self.response.push_back(Paced { event, paced });
    }

    /// A `kind` event with a fresh `event_id` and the fields of `body`.
    fn event(&mut self, kind: &str, body: Value) -> Value {
        self.sent += 1;
        let mut event = Map::new();
        event.insert("type".into(), kind.into());
        event.insert(
            "event_id".into(),
            format!("event_{}_{}", self.prefix, self.sent).into(),
        );
        if let Value::Object(fields) = body {
            event.extend(fields);
        }
        Value::Object(event)
    }

    /// Whether a response is still on its way out.
    pub(crate) fn responding(&self) -> bool {
        !self.response.is_empty()
    }

    /// Drops what is left of the response being sent; `false` if none was.
    pub(crate) fn cancel_response(&mut self) -> bool {
        let responding = self.responding();
        self.response.clear();
        responding
    }

    /// When the next event is due, if one is waiting.
    pub(crate) fn due(&self) -> Option<Instant> {
        if !self.now.is_empty() {
            return Some(Instant::now());
        }
        let next = self.response.front()?;
        Some(if next.paced {
            self.next_paced
        } else {
            Instant::now()
        })
    }

    /// Takes every event that is due at `now`, in order.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<Value> {
        let mut due: Vec<Value> = self.now.drain(..).collect();
        while let Some(next) = self.response.front() {
            if next.paced {
                if now < self.next_paced {
                    break;
                }
                self.next_paced = now + self.pace;
            }
            due.extend(self.response.pop_front().map(|part| part.event));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paces_deltas_and_keeps_order() {
        let mut outbox = Outbox::new(Duration::from_millis(20), "t");
        outbox.push("session.updated", json!({"session": {}}));
        outbox.push_response("response.output_text.delta", json!({"delta": "a"}), true);
        outbox.push_response("response.output_text.delta", json!({"delta": "b"}), true);
        outbox.push_response("response.done", json!({}), false);
        assert!(outbox.responding());

        let now = Instant::now();
        let first = outbox.take_due(now);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0]["type"], "session.updated");
        assert_eq!(first[0]["event_id"], "event_t_1");
        assert_eq!(first[1]["delta"], "a");
        assert_eq!(outbox.due(), Some(now + Duration::from_millis(20)));
        assert!(outbox.take_due(now).is_empty());

        // Replies to client events do not wait for the response.
        outbox.push("error", json!({}));
        let reply = outbox.take_due(now);
        assert_eq!(reply.len(), 1);
        assert_eq!(reply[0]["type"], "error");

        let later = outbox.take_due(now + Duration::from_millis(20));
        let kinds: Vec<_> = later.iter().map(|e| e["type"].clone()).collect();
        assert_eq!(kinds, ["response.output_text.delta", "response.done"]);
        assert!(!outbox.responding());
        assert_eq!(outbox.due(), None);
    }

    #[test]
    fn cancelling_drops_only_the_response() {
        let mut outbox = Outbox::new(Duration::ZERO, "t");
        assert!(!outbox.cancel_response());
        outbox.push_response("response.created", json!({}), false);
        outbox.push("input_audio_buffer.cleared", json!({}));
        assert!(outbox.cancel_response());
        assert!(!outbox.responding());
        let left = outbox.take_due(Instant::now());
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["type"], "input_audio_buffer.cleared");
    }
}
