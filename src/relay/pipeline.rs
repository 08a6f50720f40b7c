//! The hooks of one session, and how an event passes through them.
//!
//! ```text
//! client ─▶ hook 0 ─▶ hook 1 … ─▶ model pinning ─▶ meter ─▶ upstream
//! client ◀─ hook 0 ◀─ hook 1 … ◀───────────────── meter ◀─ upstream
//! ```
//!
//! An event read from a socket becomes work: the event and the position of
//! the next hook to ask. Each hook interested in the event's type returns a
//! verdict; the events it sends on continue at the next position, replies
//! go to the sender's queue, and a verdict that is not ready yet parks the
//! direction until it is. Directions no hook is interested in skip all of
//! this: their messages are forwarded as read, never classified.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::Ending;
use crate::hooks::{
    Close, Direction, ErrorEvent, Event, Hook, HookContext, Interest, SessionControl, Verdict,
};

/// A verdict that is not ready yet.
type Pending = Pin<Box<dyn Future<Output = Verdict> + Send>>;

/// Decides, once a session has ended, what event the upstream gets before
/// the gateway's close frame, if the gateway closes it.
pub(crate) type Farewell = Box<dyn FnOnce(&Ending) -> Option<Utf8Bytes> + Send>;

/// The hooks of one session.
pub(crate) struct Pipeline {
    hooks: Vec<Box<dyn Hook>>,
    interests: Vec<Interest>,
    /// Per direction (client to upstream, upstream to client): whether any
    /// hook wants any of its events.
    active: [bool; 2],
    control: SessionControl,
    /// Whether injected events may be waiting in the control.
    pub(crate) injections_waiting: bool,
    /// Replies a hook made while deciding (reused).
    replies: Vec<Event>,
    /// Responses still running that a hook charges when they are done
    /// (the budget's), if a hook counts them.
    open_responses: Option<Arc<AtomicUsize>>,
    farewell: Option<Farewell>,
}

/// Events of one direction that are still passing through the hooks.
#[derive(Default)]
pub(crate) struct Flow {
    /// Each event with the position of the next hook to ask.
    work: VecDeque<(Event, usize)>,
    /// The hook whose verdict is not ready, and the verdict.
    parked: Option<(usize, Pending)>,
}

impl Flow {
    /// Whether events are waiting for hooks.
    pub(crate) fn is_busy(&self) -> bool {
        self.parked.is_some() || !self.work.is_empty()
    }

    /// An event read from the source, to pass through the hooks.
    pub(crate) fn push(&mut self, event: Event) {
        self.work.push_back((event, 0));
    }
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("work", &self.work.len())
            .field("parked", &self.parked.is_some())
            .finish()
    }
}

/// Where the events a direction's hooks decide on go.
pub(crate) trait Outbox {
    /// On to the destination.
    fn forward(&mut self, message: Message);
    /// Back to the sender.
    fn reply(&mut self, message: Message);
}

impl Pipeline {
    pub(crate) fn new(hooks: Vec<Box<dyn Hook>>, control: SessionControl) -> Self {
        let interests: Vec<Interest> = hooks.iter().map(|hook| hook.interest()).collect();
        let active = [Direction::ClientToUpstream, Direction::UpstreamToClient]
            .map(|direction| interests.iter().any(|interest| interest.any(direction)));
        Self {
            hooks,
            interests,
            active,
            control,
            injections_waiting: false,
            replies: Vec::new(),
            open_responses: None,
            farewell: None,
        }
    }

    /// Sends the upstream what `farewell` decides before the gateway's
    /// close frame.
    pub(crate) fn with_farewell(mut self, farewell: Farewell) -> Self {
        self.farewell = Some(farewell);
        self
    }

    /// The event the upstream gets before the close of a session that
    /// ended as `ending`.
    pub(crate) fn farewell(&mut self, ending: &Ending) -> Option<Utf8Bytes> {
        self.farewell.take().and_then(|farewell| farewell(ending))
    }

    /// Whether any hook wants events travelling in `direction`.
    pub(crate) fn is_active(&self, direction: Direction) -> bool {
        self.active[index(direction)]
    }

    pub(crate) fn control(&self) -> &SessionControl {
        &self.control
    }

    /// Follows `open`, the responses a hook has yet to see done: a session
    /// that ends while some run asks the upstream to cancel them and waits
    /// for their `response.done` (see `relay::run`).
    pub(crate) fn track_responses(&mut self, open: Arc<AtomicUsize>) {
        self.open_responses = Some(open);
    }

    /// Whether a response a hook waits for is still running.
    pub(crate) fn responses_open(&self) -> bool {
        self.open_responses
            .as_ref()
            .is_some_and(|open| open.load(Ordering::Acquire) > 0)
    }

    /// Takes an event read from a socket: forwards it at once when no hook
    /// wants it, refuses it when its type is ambiguous (before any hook
    /// sees it), and otherwise puts it in `flow`.
    pub(crate) fn admit(
        &mut self,
        direction: Direction,
        event: Event,
        flow: &mut Flow,
        outbox: &mut impl Outbox,
    ) {
        if event.is_ambiguous() {
            return refuse_ambiguous(direction, &event, outbox);
        }
        if self.next_hook(direction, &event, 0).is_some() {
            flow.push(event);
        } else {
            outbox.forward(event.into_message());
        }
    }

    /// Passes the events of `flow` through the hooks until they are all
    /// decided (`Ready(Ok)`), a verdict is not ready (`Pending`), or a hook
    /// ends the session.
    pub(crate) fn advance(
        &mut self,
        direction: Direction,
        flow: &mut Flow,
        outbox: &mut impl Outbox,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Close>> {
        loop {
            if let Some((position, pending)) = &mut flow.parked {
                let position = *position;
                let polled = catch_unwind(AssertUnwindSafe(|| pending.as_mut().poll(cx)));
                let verdict = match polled {
                    Ok(Poll::Ready(verdict)) => verdict,
                    Ok(Poll::Pending) => return Poll::Pending,
                    Err(_) => return Poll::Ready(Err(hook_failed())),
                };
                flow.parked = None;
                self.apply(position, verdict, flow, outbox)?;
                continue;
            }
            let Some((event, from)) = flow.work.pop_front() else {
                return Poll::Ready(Ok(()));
            };
            let Some(position) = self.next_hook(direction, &event, from) else {
                outbox.forward(event.into_message());
                continue;
            };
            let hook = self.hook_at(direction, position);
            let mut hook_cx = HookContext {
                direction,
                control: &self.control,
                replies: &mut self.replies,
            };
            let decided = catch_unwind(AssertUnwindSafe(|| {
                self.hooks[hook].on_event(event, &mut hook_cx)
            }));
            let Ok(verdict) = decided else {
                return Poll::Ready(Err(hook_failed()));
            };
            for reply in self.replies.drain(..) {
                outbox.reply(reply.into_message());
            }
            self.apply(position, verdict, flow, outbox)?;
        }
    }

    fn apply(
        &mut self,
        position: usize,
        verdict: Verdict,
        flow: &mut Flow,
        outbox: &mut impl Outbox,
    ) -> Result<(), Close> {
        match verdict {
            Verdict::Forward(events) => {
                for event in events.into_iter().rev() {
                    flow.work.push_front((event, position + 1));
                }
            }
            Verdict::Reply(events) => {
                for event in events {
                    outbox.reply(event.into_message());
                }
            }
            Verdict::End(close) => return Err(close),
            Verdict::Later(pending) => flow.parked = Some((position, pending)),
        }
        Ok(())
    }

    /// The position, from `from` on, of the next hook that wants `event`.
    fn next_hook(&self, direction: Direction, event: &Event, from: usize) -> Option<usize> {
        if !self.is_active(direction) {
            return None;
        }
        (from..self.hooks.len()).find(|&position| {
            self.interests[self.hook_at(direction, position)].wants(direction, event.event_type())
        })
    }

    /// Client events meet the hooks in order, upstream events in reverse.
    fn hook_at(&self, direction: Direction, position: usize) -> usize {
        match direction {
            Direction::ClientToUpstream => position,
            Direction::UpstreamToClient => self.hooks.len() - 1 - position,
        }
    }
}

/// How a session whose hook panicked ends: 1008, not 1011, so that clients
/// do not reconnect into the same failure.
fn hook_failed() -> Close {
    tracing::error!("a hook panicked; the session is closed");
    Close::policy("internal error").error(ErrorEvent::new(
        "server_error",
        "hook_failed",
        "The gateway failed to process an event; the session was closed.",
    ))
}

/// A client is told its event was refused; an upstream's is dropped and logged.
fn refuse_ambiguous(direction: Direction, event: &Event, outbox: &mut impl Outbox) {
    match direction {
        Direction::ClientToUpstream => {
            let error = ErrorEvent::invalid_request(
                "ambiguous_event_type",
                "The event has more than one top-level `type` member; it was not forwarded.",
            )
            .answering(event);
            outbox.reply(error.to_event().into_message());
        }
        // The client is told nothing: the upstream broke the protocol.
        Direction::UpstreamToClient => {
            tracing::warn!("dropped an upstream event with more than one top-level `type`");
        }
    }
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::ClientToUpstream => 0,
        Direction::UpstreamToClient => 1,
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("hooks", &self.hooks.len())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::task::Waker;

    use super::*;
    use crate::usage::SessionInfo;

    /// Records where messages went.
    #[derive(Default)]
    struct Recorded {
        forwarded: Vec<String>,
        replied: Vec<String>,
    }

    impl Outbox for Recorded {
        fn forward(&mut self, message: Message) {
            self.forwarded
                .push(message.into_text().unwrap().to_string());
        }
        fn reply(&mut self, message: Message) {
            self.replied.push(message.into_text().unwrap().to_string());
        }
    }

    /// Tags every event it sees with its name; injects `x` before `a`.
    struct Tagger {
        name: &'static str,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Hook for Tagger {
        fn interest(&self) -> Interest {
            Interest::new().every_client_event().every_upstream_event()
        }

        fn on_event(&mut self, event: Event, _cx: &mut HookContext<'_>) -> Verdict {
            let text = event.as_text().unwrap().to_owned();
            self.seen
                .lock()
                .unwrap()
                .push(format!("{}:{text}", self.name));
            if self.name == "outer" && text == "a" {
                return Verdict::replace([Event::text("x"), event]);
            }
            Verdict::forward(event)
        }
    }

    fn pipeline(seen: &Arc<Mutex<Vec<String>>>) -> Pipeline {
        let hooks: Vec<Box<dyn Hook>> = ["outer", "inner"]
            .into_iter()
            .map(|name| {
                Box::new(Tagger {
                    name,
                    seen: Arc::clone(seen),
                }) as Box<dyn Hook>
            })
            .collect();
        Pipeline::new(hooks, SessionControl::new(SessionInfo::example()))
    }

    fn run(pipeline: &mut Pipeline, direction: Direction, text: &str) -> Recorded {
        let mut flow = Flow::default();
        let mut out = Recorded::default();
        flow.push(Event::text(text));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            pipeline.advance(direction, &mut flow, &mut out, &mut cx),
            Poll::Ready(Ok(()))
        ));
        out
    }

    #[test]
    fn client_events_meet_hooks_in_order_upstream_events_in_reverse() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut pipeline = pipeline(&seen);
        let out = run(&mut pipeline, Direction::ClientToUpstream, "a");
        // The injected `x` goes out first, and only hooks after the injector see it.
        assert_eq!(out.forwarded, ["x", "a"]);
        assert_eq!(*seen.lock().unwrap(), ["outer:a", "inner:x", "inner:a"]);
        seen.lock().unwrap().clear();
        run(&mut pipeline, Direction::UpstreamToClient, "b");
        assert_eq!(*seen.lock().unwrap(), ["inner:b", "outer:b"]);
    }

    struct Panics;

    impl Hook for Panics {
        fn interest(&self) -> Interest {
            Interest::new().every_client_event()
        }

        fn on_event(&mut self, _event: Event, _cx: &mut HookContext<'_>) -> Verdict {
            panic!("a bug in a hook");
        }
    }

    #[test]
    fn a_hook_that_panics_ends_its_session() {
        let mut pipeline = Pipeline::new(
            vec![Box::new(Panics)],
            SessionControl::new(SessionInfo::example()),
        );
        let mut flow = Flow::default();
        flow.push(Event::text("x"));
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Recorded::default();
        match pipeline.advance(Direction::ClientToUpstream, &mut flow, &mut out, &mut cx) {
            Poll::Ready(Err(close)) => {
                assert_eq!((close.code(), close.reason()), (1008, "internal error"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// Acknowledges `later` at once, and forwards it when released.
    struct Holder {
        release: Arc<tokio::sync::Notify>,
    }

    impl Hook for Holder {
        fn interest(&self) -> Interest {
            Interest::new().client_events(["later"])
        }

        fn on_event(&mut self, event: Event, cx: &mut HookContext<'_>) -> Verdict {
            cx.reply(Event::text(r#"{"type":"ack"}"#));
            let release = Arc::clone(&self.release);
            Verdict::later(async move {
                release.notified().await;
                Verdict::replace([event, Event::text(r#"{"type":"after"}"#)])
            })
        }
    }

    #[test]
    fn a_later_verdict_parks_the_direction_until_it_is_ready() {
        let release = Arc::new(tokio::sync::Notify::new());
        let hooks: Vec<Box<dyn Hook>> = vec![Box::new(Holder {
            release: Arc::clone(&release),
        })];
        let mut pipeline = Pipeline::new(hooks, SessionControl::new(SessionInfo::example()));
        assert!(pipeline.is_active(Direction::ClientToUpstream));
        assert!(!pipeline.is_active(Direction::UpstreamToClient));
        let mut flow = Flow::default();
        let mut out = Recorded::default();
        flow.push(Event::text(r#"{"type":"later"}"#));
        flow.push(Event::text(r#"{"type":"next"}"#));
        let mut cx = Context::from_waker(Waker::noop());
        let direction = Direction::ClientToUpstream;
        assert!(
            pipeline
                .advance(direction, &mut flow, &mut out, &mut cx)
                .is_pending()
        );
        assert!(flow.is_busy());
        assert_eq!(out.replied, [r#"{"type":"ack"}"#]);
        assert!(out.forwarded.is_empty());
        release.notify_one();
        assert!(matches!(
            pipeline.advance(direction, &mut flow, &mut out, &mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(
            out.forwarded,
            [
                r#"{"type":"later"}"#,
                r#"{"type":"after"}"#,
                r#"{"type":"next"}"#
            ]
        );
        assert!(!flow.is_busy());
    }
}
