//! Running one hook on one event, for the unit tests of hooks.

use serde_json::Value;

use super::control::SessionControl;
use super::event::{Direction, Event};
use super::hook::{Hook, HookContext};
use super::verdict::Verdict;
use crate::usage::SessionInfo;

/// What a hook made of one event, parsed.
#[derive(Debug, Default)]
pub(crate) struct Decided {
    pub(crate) forwarded: Vec<Value>,
    pub(crate) replied: Vec<Value>,
    pub(crate) ended: Option<super::Close>,
}

/// Runs `hook` on a client event (sync verdicts only).
pub(crate) fn decide(hook: &mut impl Hook, event: Value) -> Decided {
    decide_in(hook, Direction::ClientToUpstream, Event::json(&event))
}

pub(crate) fn decide_in(hook: &mut impl Hook, direction: Direction, event: Event) -> Decided {
    let control = SessionControl::new(SessionInfo::example());
    let mut replies = Vec::new();
    let mut cx = HookContext {
        direction,
        control: &control,
        replies: &mut replies,
    };
    let verdict = hook.on_event(event, &mut cx);
    let json = |event: Event| event.to_json().expect("JSON");
    let mut decided = Decided {
        replied: replies.into_iter().map(json).collect(),
        ..Decided::default()
    };
    match verdict {
        Verdict::Forward(events) => decided.forwarded = events.into_iter().map(json).collect(),
        Verdict::Reply(events) => decided.replied.extend(events.into_iter().map(json)),
        Verdict::End(close) => decided.ended = Some(close),
        Verdict::Later(_) => panic!("a sync verdict was expected"),
    }
    decided
}
