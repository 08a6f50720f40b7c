//! Model pinning: the model a session was routed to is the model it uses.

use serde_json::Value;

use super::event::Event;
use super::hook::{Hook, HookContext};
use super::interest::Interest;
use super::verdict::Verdict;
use crate::usage::SessionInfo;

/// Rewrites the `model` of a client's `session.update` (`session.model`)
/// and `response.create` (`response.model`) to the model the session was
/// routed to, so a client cannot switch to a model it was not routed,
/// allowed or priced for. Added to every session unless
/// [`RealtimeLayer::pin_model(false)`](crate::RealtimeLayer::pin_model).
///
/// Rewritten rather than refused: SDKs send the model they connected with
/// (which may carry the provider prefix), and the upstream's
/// `session.updated` tells the client which model it got. Every event
/// checked is re-serialised from what was checked, so the upstream reads
/// exactly that: duplicate keys cannot hide a second model.
#[derive(Debug)]
pub(crate) struct PinModel {
    model: String,
}

impl PinModel {
    pub(crate) fn new(session: &SessionInfo) -> Self {
        Self {
            model: session.model.clone(),
        }
    }

    /// The event with its model pinned, re-serialised; `None` when it is not JSON.
    fn pinned(&self, event: &Event, object: &str) -> Option<Event> {
        let mut json = event.to_json()?;
        if let Some(model) = json.get_mut(object).and_then(|o| o.get_mut("model")) {
            *model = Value::from(self.model.as_str());
        }
        Some(Event::json(&json))
    }
}

impl Hook for PinModel {
    fn interest(&self) -> Interest {
        Interest::new().client_events(["session.update", "response.create"])
    }

    fn on_event(&mut self, event: Event, _cx: &mut HookContext<'_>) -> Verdict {
        let object = match event.event_type() {
            Some("session.update") => "session",
            _ => "response",
        };
        match self.pinned(&event, object) {
            Some(pinned) => Verdict::forward(pinned),
            None => Verdict::forward(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hooks::testing::decide;

    #[test]
    fn the_routed_model_is_the_model() {
        let mut pin = PinModel::new(&SessionInfo::example());
        let out = decide(
            &mut pin,
            json!({"type": "session.update", "session": {"model": "gpt-4o-realtime-preview", "voice": "ash"}}),
        );
        assert_eq!(out.forwarded[0]["session"]["model"], "gpt-realtime");
        assert_eq!(out.forwarded[0]["session"]["voice"], "ash");
        let out = decide(
            &mut pin,
            json!({"type": "response.create", "response": {"model": "other"}}),
        );
        assert_eq!(out.forwarded[0]["response"]["model"], "gpt-realtime");
        // No model named: passed on untouched.
        let out = decide(&mut pin, json!({"type": "response.create"}));
        assert_eq!(out.forwarded, [json!({"type": "response.create"})]);
    }
}
