//! [`Hook`]: one session's stage of the event pipeline, and [`NewHook`]:
//! what makes one per session.

use std::fmt;
use std::sync::Arc;

use super::control::SessionControl;
use super::event::{Direction, Event};
use super::interest::Interest;
use super::verdict::Verdict;
use crate::usage::SessionInfo;

/// One session's stage of the event pipeline: it sees the events it is
/// interested in and decides what becomes of each.
///
/// Hooks of a session run in the order they were added to the layer for
/// client events, and in reverse order for upstream events (the first hook
/// added is the one nearest the client). A hook sees the events earlier
/// hooks sent on, including ones they injected. It runs on the session's
/// task: keep [`on_event`](Self::on_event) quick, and return
/// [`Verdict::later`] for anything that waits (a moderation call).
///
/// # Example
///
/// ```
/// use tower_realtime::hooks::{Event, Hook, HookContext, Interest, Verdict};
///
/// /// Counts the responses of one session; after ten, refuses more.
/// #[derive(Default)]
/// struct TenResponses(u32);
///
/// impl Hook for TenResponses {
///     fn interest(&self) -> Interest {
///         Interest::new().client_events(["response.create"])
///     }
///
///     fn on_event(&mut self, event: Event, _cx: &mut HookContext<'_>) -> Verdict {
///         self.0 += 1;
///         if self.0 <= 10 {
///             return Verdict::forward(event);
///         }
///         let error = tower_realtime::hooks::ErrorEvent::invalid_request(
///             "response_limit",
///             "This session has had its ten responses.",
///         );
///         Verdict::reply(error.answering(&event).to_event())
///     }
/// }
///
/// // One per session, through a closure.
/// let layer = tower_realtime::RealtimeLayer::new(tower_realtime::Providers::new())
///     .hook(|_: &tower_realtime::SessionInfo| TenResponses::default());
/// # drop(layer);
/// ```
pub trait Hook: Send + 'static {
    /// The events this hook is called for. Read once, when the session opens.
    fn interest(&self) -> Interest;

    /// Decides what becomes of `event`.
    fn on_event(&mut self, event: Event, cx: &mut HookContext<'_>) -> Verdict;
}

/// Makes a session's [`Hook`] when the session opens, so that hooks can keep
/// per-session state without locks.
///
/// Closures `Fn(&SessionInfo) -> impl Hook` are factories; so are the
/// built-in hooks, which are cloned for each session.
pub trait NewHook: Send + Sync + 'static {
    /// The hook.
    type Hook: Hook;

    /// The hook of the session `session`.
    fn new_session(&self, session: &SessionInfo) -> Self::Hook;
}

impl<F, H> NewHook for F
where
    F: Fn(&SessionInfo) -> H + Send + Sync + 'static,
    H: Hook,
{
    type Hook = H;

    fn new_session(&self, session: &SessionInfo) -> H {
        self(session)
    }
}

/// A [`NewHook`] of any type, as the layer keeps it.
pub(crate) type SharedNewHook = Arc<dyn MakeHook>;

/// [`NewHook`] without its associated type.
pub(crate) trait MakeHook: Send + Sync {
    fn make(&self, session: &SessionInfo) -> Box<dyn Hook>;
}

impl<N: NewHook> MakeHook for N {
    fn make(&self, session: &SessionInfo) -> Box<dyn Hook> {
        Box::new(self.new_session(session))
    }
}

/// What a hook may use while it decides: the session's control, and the
/// sender of the event, to answer it.
pub struct HookContext<'a> {
    pub(crate) direction: Direction,
    pub(crate) control: &'a SessionControl,
    pub(crate) replies: &'a mut Vec<Event>,
}

impl HookContext<'_> {
    /// Which way the event travels.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The session: its routing, and a handle to end it or inject events.
    pub fn control(&self) -> &SessionControl {
        self.control
    }

    /// Sends `event` back to the sender of the event in hand, whatever the
    /// verdict (it goes out before the verdict's events of that direction;
    /// no hook sees it).
    pub fn reply(&mut self, event: Event) {
        self.replies.push(event);
    }
}

impl fmt::Debug for HookContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookContext")
            .field("direction", &self.direction)
            .field("session", &self.control.id())
            .finish_non_exhaustive()
    }
}
