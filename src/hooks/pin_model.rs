//! Model pinning: the model a session was routed to is the model it uses.

use std::ops::Range;

use super::error_event::ErrorEvent;
use super::event::Event;
use super::hook::{Hook, HookContext};
use super::interest::Interest;
use super::verdict::Verdict;
use crate::usage::SessionInfo;
use crate::usage::scan::{self, Value};

/// Rewrites the `model` of a client's `session.update` (`session.model`)
/// and `response.create` (`response.model`) to the model the session was
/// routed to, so a client cannot switch to a model it was not routed,
/// allowed or priced for. Added to every session unless
/// [`RealtimeLayer::pin_model(false)`](crate::RealtimeLayer::pin_model).
///
/// Rewritten rather than refused: SDKs send the model they connected with
/// (which may carry the provider prefix), and the upstream's
/// `session.updated` tells the client which model it got. Only the model's
/// value is replaced; the rest of the event goes on byte for byte. Keys are
/// compared decoded, and an event with two `session` (or `response`)
/// objects, or two `model`s in one, is refused with an `error` event
/// (`ambiguous_event`): JSON parsers disagree on which one counts.
#[derive(Debug)]
pub(crate) struct PinModel {
    model: String,
}

/// Where the model of an event is, if it names one.
#[derive(Debug, PartialEq)]
enum Named {
    Nothing,
    /// The span of the model's value, and the value when it is a string.
    Model(Range<usize>, Option<String>),
    /// A key that decides the model appears twice.
    Twice,
}

impl PinModel {
    pub(crate) fn new(session: &SessionInfo) -> Self {
        Self {
            model: session.model.clone(),
        }
    }
}

/// Finds `object.model` in `json`.
fn named(json: &[u8], object: &str) -> Named {
    let mut span = None;
    let mut members = scan::members(json);
    while let Some((key, _)) = members.next() {
        if scan::key_is(key, object) {
            if span.is_some() {
                return Named::Twice;
            }
            span = Some(members.value_span());
        }
    }
    let Some(span) = span else {
        return Named::Nothing;
    };
    let inner = &json[span.clone()];
    let mut model = None;
    let mut members = scan::members(inner);
    while let Some((key, value)) = members.next() {
        if scan::key_is(key, "model") {
            if model.is_some() {
                return Named::Twice;
            }
            let at = members.value_span();
            let text = match value {
                Value::Str(text) => scan::decode(text.raw),
                Value::Other => None,
            };
            model = Some((span.start + at.start..span.start + at.end, text));
        }
    }
    model.map_or(Named::Nothing, |(at, text)| Named::Model(at, text))
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
        let Some(text) = event.as_text() else {
            return Verdict::forward(event);
        };
        match named(text.as_bytes(), object) {
            Named::Nothing => Verdict::forward(event),
            Named::Model(_, Some(model)) if model == self.model => Verdict::forward(event),
            Named::Model(at, _) => {
                let model = serde_json::Value::from(self.model.as_str()).to_string();
                let pinned = format!("{}{model}{}", &text[..at.start], &text[at.end..]);
                Verdict::forward(Event::text(pinned))
            }
            Named::Twice => {
                let error = ErrorEvent::invalid_request(
                    "ambiguous_event",
                    format!("The event names `{object}` or its `model` more than once."),
                )
                .answering(&event);
                Verdict::reply(error.to_event())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hooks::testing::{decide, decide_in};

    fn pin(text: &str) -> crate::hooks::testing::Decided {
        let mut pin = PinModel::new(&SessionInfo::example());
        decide_in(
            &mut pin,
            crate::hooks::Direction::ClientToUpstream,
            Event::text(text),
        )
    }

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

    #[test]
    fn only_the_model_changes_and_escapes_or_repeats_do_not_hide_one() {
        let text = r#"{"type":"session.update", "session": {"z":1,"mod\u0065l" : "o3","a":{"model":"x"}}}"#;
        let out = pin(text);
        assert_eq!(
            out.forwarded,
            [serde_json::from_str::<serde_json::Value>(
                r#"{"type":"session.update","session":{"z":1,"model":"gpt-realtime","a":{"model":"x"}}}"#
            )
            .unwrap()]
        );
        let at = text.find(r#""o3""#).unwrap();
        assert_eq!(
            named(text.as_bytes(), "session"),
            Named::Model(at..at + 4, Some("o3".into()))
        );
        for twice in [
            r#"{"type":"session.update","session":{"model":"gpt-realtime","model":"o3"}}"#,
            r#"{"type":"session.update","session":{"model":"o3"},"sessi\u006fn":{}}"#,
        ] {
            let out = pin(twice);
            assert!(out.forwarded.is_empty(), "{twice}");
            assert_eq!(out.replied[0]["error"]["code"], "ambiguous_event");
        }
        // A model that is not a string is replaced too.
        let out = pin(r#"{"type":"response.create","response":{"model":null}}"#);
        assert_eq!(out.forwarded[0]["response"]["model"], "gpt-realtime");
    }
}
