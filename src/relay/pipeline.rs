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
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_tungstenite::tungstenite::Message;

use crate::hooks::{
    Close, Direction, ErrorEvent, Event, Hook, HookContext, Interest, SessionControl, Verdict,
};

/// A verdict that is not ready yet.
type Pending = Pin<Box<dyn Future<Output = Verdict> + Send>>;

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
        }
    }

    /// Whether any hook wants events travelling in `direction`.
    pub(crate) fn is_active(&self, direction: Direction) -> bool {
        self.active[index(direction)]
    }

    pub(crate) fn control(&self) -> &SessionControl {
        &self.control
    }

    /// Takes an event read from a socket into `flow`; refuses one whose
    /// type is ambiguous, before any hook sees it.
    pub(crate) fn admit(
        &mut self,
        direction: Direction,
        event: Event,
        flow: &mut Flow,
        outbox: &mut impl Outbox,
    ) {
        if !event.is_ambiguous() {
            flow.push(event);
            return;
        }
        match direction {
            Direction::ClientToUpstream => {
                let error = ErrorEvent::invalid_request(
                    "ambiguous_event_type",
                    "The event has more than one top-level `type` member; it was not forwarded.",
                )
                .answering(&event);
                outbox.reply(error.to_event().into_message());
            }
            // The client is told nothing: the upstream broke the protocol.
            Direction::UpstreamToClient => {
                tracing::warn!("dropped an upstream event with more than one top-level `type`");
            }
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
                let verdict = match pending.as_mut().poll(cx) {
                    Poll::Ready(verdict) => verdict,
                    Poll::Pending => return Poll::Pending,
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
            let verdict = self.hooks[hook].on_event(event, &mut hook_cx);
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
