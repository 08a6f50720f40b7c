//! [`Verdict`]: what a hook decides about an event, and [`Close`]: how a session ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::error_event::ErrorEvent;
use super::event::Event;

/// What happens to the event a hook was given.
///
/// Events a verdict sends on pass through the hooks after this one, in
/// order; replies go straight to the sender. The constructors are the usual
/// way to build one.
///
/// # Example
///
/// ```
/// use tower_realtime::hooks::{Close, ErrorEvent, Event, Verdict};
///
/// fn decide(event: Event) -> Verdict {
///     match event.event_type() {
///         // Refused, the session goes on.
///         Some("conversation.item.delete") => Verdict::reply(
///             ErrorEvent::invalid_request("event_not_allowed", "items cannot be deleted here")
///                 .answering(&event)
///                 .to_event(),
///         ),
///         // Refused, and the session ends with 1008.
///         Some("session.delete") => Verdict::end(Close::policy("not allowed")),
///         // Injected before the event.
///         Some("response.create") => Verdict::replace([Event::text(r#"{"type":"input_audio_buffer.commit"}"#), event]),
///         _ => Verdict::forward(event),
///     }
/// }
/// # let _ = decide;
/// ```
#[non_exhaustive]
pub enum Verdict {
    /// Send these events on, in order, to where the event was going: the
    /// event itself (forward), none (drop), others (replace), or the event
    /// with others before or after it (inject).
    Forward(Vec<Event>),
    /// Send nothing on; send these events back to the sender instead.
    Reply(Vec<Event>),
    /// End the session.
    End(Close),
    /// Decide later. Until the future resolves, this direction holds the
    /// event and reads nothing more from its source (the other direction
    /// keeps flowing); then the verdict it resolves to applies.
    Later(Pin<Box<dyn Future<Output = Verdict> + Send>>),
}

impl Verdict {
    /// Send the event on.
    pub fn forward(event: Event) -> Self {
        Verdict::Forward(vec![event])
    }

    /// Send nothing on, tell nobody.
    pub fn discard() -> Self {
        Verdict::Forward(Vec::new())
    }

    /// Send these events on instead (zero or more, to the same destination).
    pub fn replace(events: impl IntoIterator<Item = Event>) -> Self {
        Verdict::Forward(events.into_iter().collect())
    }

    /// Send nothing on; answer the sender with `event` (e.g. an `error` event).
    pub fn reply(event: Event) -> Self {
        Verdict::Reply(vec![event])
    }

    /// End the session: see [`Close`].
    pub fn end(close: Close) -> Self {
        Verdict::End(close)
    }

    /// Decide when `decision` resolves.
    pub fn later(decision: impl Future<Output = Verdict> + Send + 'static) -> Self {
        Verdict::Later(Box::pin(decision))
    }
}

impl fmt::Debug for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Forward(events) => f.debug_tuple("Forward").field(events).finish(),
            Verdict::Reply(events) => f.debug_tuple("Reply").field(events).finish(),
            Verdict::End(close) => f.debug_tuple("End").field(close).finish(),
            Verdict::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// How a hook or a [`SessionControl`](super::SessionControl) ends a session:
/// the client gets the error event, if any, then both sides get a close
/// frame with this code and reason. The session summary reports
/// [`ClosedBy::Hook`](crate::ClosedBy::Hook).
///
/// # Example
///
/// ```
/// use tower_realtime::hooks::{Close, ErrorEvent};
///
/// let close = Close::policy("budget exceeded")
///     .error(ErrorEvent::new("insufficient_quota", "budget_exceeded", "The budget of this key is spent."));
/// assert_eq!(close.code(), 1008);
/// // Codes no endpoint may send become 1008.
/// assert_eq!(tower_realtime::hooks::Close::new(1006, "x").code(), 1008);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub(crate) code: u16,
    pub(crate) reason: String,
    pub(crate) error: Option<Box<ErrorEvent>>,
}

impl Close {
    /// Close with `code` and `reason` (cut to 123 bytes). Codes an endpoint
    /// may not send (1004-1006, 1015, and outside 1000-4999) become 1008.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        Self {
            code: if sendable { code } else { 1008 },
            reason: reason.into(),
            error: None,
        }
    }

    /// Close with 1008 (policy violation), which clients do not retry.
    pub fn policy(reason: impl Into<String>) -> Self {
        Self::new(1008, reason)
    }

    /// Sends `error` to the client before the close frame.
    pub fn error(mut self, error: ErrorEvent) -> Self {
        self.error = Some(Box::new(error));
        self
    }

    /// The close code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The close reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
