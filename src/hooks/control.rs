//! [`SessionControl`]: ending a live session, or injecting events into it,
//! from a hook, an observer or anywhere else; [`LiveSessions`]: finding one.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::event::{Direction, Event};
use super::verdict::Close;
use crate::usage::SessionInfo;

/// Injected events a session holds before its relay takes them.
const MAX_INJECTED: usize = 16;

/// The gateway's own number for a session, unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why an event could not be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InjectError {
    /// The session already holds 16 injected events its relay has not taken.
    Full,
    /// The session has ended (or is ending).
    Ended,
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InjectError::Full => "the session's injection queue is full",
            InjectError::Ended => "the session has ended",
        })
    }
}

impl std::error::Error for InjectError {}

/// A handle on one live session: end it, or send an event into it.
///
/// Hooks get it from their [`HookContext`](super::HookContext); anything
/// else finds it through [`LiveSessions`]. Cloning is cheap; a handle
/// outliving its session does nothing.
///
/// # Example
///
/// ```
/// use tower_realtime::hooks::{Close, ErrorEvent, SessionControl};
///
/// // A budget decided elsewhere ends the session.
/// fn spent(session: &SessionControl) {
///     session.close(Close::policy("budget exceeded").error(ErrorEvent::new(
///         "insufficient_quota",
///         "budget_exceeded",
///         "The budget of this key is spent.",
///     )));
/// }
/// # let _ = spent;
/// ```
#[derive(Clone)]
pub struct SessionControl {
    shared: Arc<Shared>,
}

struct Shared {
    info: SessionInfo,
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    close: Option<Close>,
    injected: VecDeque<(Direction, Event)>,
    ended: bool,
}

impl SessionControl {
    pub(crate) fn new(info: SessionInfo) -> Self {
        Self {
            shared: Arc::new(Shared {
                info,
                state: Mutex::new(State::default()),
                wake: Notify::new(),
            }),
        }
    }

    /// The session.
    pub fn info(&self) -> &SessionInfo {
        &self.shared.info
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.shared.info.id
    }

    /// Ends the session as `close` says (error event to the client, then
    /// close frames to both sides). Returns `false` when the session had
    /// already ended or was already told to.
    pub fn close(&self, close: Close) -> bool {
        let mut state = self.state();
        if state.ended || state.close.is_some() {
            return false;
        }
        state.close = Some(close);
        drop(state);
        self.shared.wake.notify_one();
        true
    }

    /// Sends `event` the way `direction` says, after what is already on
    /// its way there. Injected events pass no hook; those sent upstream
    /// are metered.
    pub fn inject(&self, direction: Direction, event: Event) -> Result<(), InjectError> {
        let mut state = self.state();
        if state.ended || state.close.is_some() {
            return Err(InjectError::Ended);
        }
        if state.injected.len() >= MAX_INJECTED {
            return Err(InjectError::Full);
        }
        state.injected.push_back((direction, event));
        drop(state);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Whether the session has ended.
    pub fn is_ended(&self) -> bool {
        self.state().ended
    }

    /// Resolves when a close or an injection is waiting.
    pub(crate) async fn requested(&self) {
        self.shared.wake.notified().await;
    }

    /// The close asked for, if any.
    pub(crate) fn take_close(&self) -> Option<Close> {
        self.state().close.take()
    }

    /// The oldest event injected to travel in `direction`, if any.
    pub(crate) fn take_injected(&self, direction: Direction) -> Option<Event> {
        let mut state = self.state();
        let at = state.injected.iter().position(|(d, _)| *d == direction)?;
        state.injected.remove(at).map(|(_, event)| event)
    }

    /// Whether injected events wait.
    pub(crate) fn has_injected(&self) -> bool {
        !self.state().injected.is_empty()
    }

    pub(crate) fn end(&self) {
        let mut state = self.state();
        state.ended = true;
        state.injected.clear();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recover the state if it did.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for SessionControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionControl")
            .field("id", &self.id())
            .field("ended", &self.is_ended())
            .finish_non_exhaustive()
    }
}

/// The live sessions of a layer and its clones, by id.
///
/// Get one from [`RealtimeLayer::live_sessions`](crate::RealtimeLayer::live_sessions).
/// A session is listed from its `101` until it has ended.
///
/// # Example
///
/// ```
/// use tower_realtime::hooks::Close;
/// use tower_realtime::{Providers, RealtimeLayer};
///
/// let layer = RealtimeLayer::new(Providers::new());
/// let live = layer.live_sessions();
/// // End every session of one provider.
/// for session in live.find(|info| info.provider() == "openai") {
///     session.close(Close::new(1000, "maintenance"));
/// }
/// assert_eq!(live.len(), 0);
/// ```
#[derive(Clone, Default)]
pub struct LiveSessions {
    sessions: Arc<Mutex<HashMap<SessionId, SessionControl>>>,
}

impl LiveSessions {
    /// The session with this id, if it is live.
    pub fn get(&self, id: SessionId) -> Option<SessionControl> {
        self.map().get(&id).cloned()
    }

    /// The live sessions `matches` picks.
    pub fn find(&self, mut matches: impl FnMut(&SessionInfo) -> bool) -> Vec<SessionControl> {
        self.map()
            .values()
            .filter(|control| matches(control.info()))
            .cloned()
            .collect()
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lists `control` until the returned guard is dropped.
    pub(crate) fn register(&self, control: &SessionControl) -> Listed {
        self.map().insert(control.id(), control.clone());
        Listed {
            sessions: self.clone(),
            control: control.clone(),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<SessionId, SessionControl>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSessions")
            .field("len", &self.len())
            .finish()
    }
}

/// A session's place in [`LiveSessions`]; dropping it ends the session's
/// control and unlists it.
pub(crate) struct Listed {
    sessions: LiveSessions,
    control: SessionControl,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.control.end();
        self.sessions.map().remove(&self.control.id());
    }
}
