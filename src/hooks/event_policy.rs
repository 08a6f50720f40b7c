//! The event policy: which client event types the upstream may receive.

use std::collections::HashSet;
use std::sync::Arc;

use super::error_event::ErrorEvent;
use super::event::Event;
use super::hook::{Hook, HookContext, NewHook};
use super::interest::Interest;
use super::verdict::Verdict;
use crate::usage::SessionInfo;

/// Allows or denies client events by their `type` (exact names).
///
/// A refused event is not forwarded; the client gets an `error` event
/// (`invalid_request_error`, code `event_not_allowed`, echoing the event's
/// `event_id`), and the session goes on. With an allow list, events without
/// a type (binary, not JSON) are refused too.
///
/// # Example
///
/// ```
/// use tower_realtime::hooks::EventPolicy;
/// use tower_realtime::{Providers, RealtimeLayer};
///
/// let layer = RealtimeLayer::new(Providers::new())
///     .hook(EventPolicy::deny(["conversation.item.delete", "conversation.item.truncate"]));
/// # drop(layer);
/// ```
#[derive(Debug, Clone)]
pub struct EventPolicy {
    rule: Arc<Rule>,
}

#[derive(Debug)]
enum Rule {
    Allow(HashSet<String>),
    Deny(HashSet<String>),
}

impl EventPolicy {
    /// Only these client event types reach the upstream.
    pub fn allow<T: Into<String>>(types: impl IntoIterator<Item = T>) -> Self {
        Self {
            rule: Arc::new(Rule::Allow(types.into_iter().map(Into::into).collect())),
        }
    }

    /// These client event types never reach the upstream.
    pub fn deny<T: Into<String>>(types: impl IntoIterator<Item = T>) -> Self {
        Self {
            rule: Arc::new(Rule::Deny(types.into_iter().map(Into::into).collect())),
        }
    }

    fn allows(&self, event_type: Option<&str>) -> bool {
        match (&*self.rule, event_type) {
            (Rule::Allow(allowed), Some(event_type)) => allowed.contains(event_type),
            (Rule::Allow(_), None) => false,
            (Rule::Deny(denied), event_type) => event_type.is_none_or(|t| !denied.contains(t)),
        }
    }
}

impl NewHook for EventPolicy {
    type Hook = EventPolicy;

    fn new_session(&self, _session: &SessionInfo) -> Self {
        self.clone()
    }
}

impl Hook for EventPolicy {
    fn interest(&self) -> Interest {
        match &*self.rule {
            Rule::Allow(_) => Interest::new().every_client_event(),
            Rule::Deny(denied) => Interest::new().client_events(denied.iter().cloned()),
        }
    }

    fn on_event(&mut self, event: Event, _cx: &mut HookContext<'_>) -> Verdict {
        if self.allows(event.event_type()) {
            return Verdict::forward(event);
        }
        let message = match event.event_type() {
            Some(event_type) => {
                format!("The event type `{event_type}` is not allowed by this gateway.")
            }
            None => "Events without a type are not allowed by this gateway.".to_owned(),
        };
        let error = ErrorEvent::invalid_request("event_not_allowed", message).answering(&event);
        Verdict::reply(error.to_event())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hooks::testing::decide;

    #[test]
    fn denied_events_are_answered_with_an_error() {
        let mut policy = EventPolicy::deny(["conversation.item.delete"]);
        let out = decide(
            &mut policy,
            json!({"type": "conversation.item.delete", "event_id": "evt_9", "item_id": "i"}),
        );
        assert!(out.forwarded.is_empty());
        let error = &out.replied[0];
        assert_eq!(error["error"]["code"], "event_not_allowed");
        assert_eq!(error["error"]["event_id"], "evt_9");
        let out = decide(&mut policy, json!({"type": "response.create"}));
        assert_eq!(out.forwarded.len(), 1);
    }

    #[test]
    fn an_allow_list_refuses_everything_else() {
        let mut policy = EventPolicy::allow(["input_audio_buffer.append"]);
        assert!(
            policy
                .interest()
                .wants(crate::hooks::Direction::ClientToUpstream, None)
        );
        let out = decide(&mut policy, json!({"type": "session.update"}));
        assert_eq!(out.replied.len(), 1);
        let out = decide(
            &mut policy,
            json!({"type": "input_audio_buffer.append", "audio": ""}),
        );
        assert_eq!(out.forwarded.len(), 1);
    }
}
