//! The event pipeline: per-session hooks that observe, rewrite, drop,
//! inject and refuse events, and end sessions.
//!
//! After the `101`, every text and binary message of a session is an
//! [`Event`]. Events pass through the session's [`Hook`]s, made per
//! session by the [`NewHook`]s added with
//! [`RealtimeLayer::hook`](crate::RealtimeLayer::hook):
//!
//! ```text
//! client ─▶ hook 1 ─▶ hook 2 … ─▶ model pinning ─▶ meter ─▶ upstream
//! client ◀─ hook 1 ◀─ hook 2 … ◀───────────────── meter ◀─ upstream
//! ```
//!
//! - **Interest.** A hook names the event types it wants per direction
//!   ([`Interest`]); it is called for those only. A direction no hook wants
//!   anything from is relayed as before: its events are not even
//!   classified. Audio appends and deltas, most of the traffic, are
//!   classified (their `type` found without parsing the base64) but never
//!   parsed unless a hook asks for them.
//! - **Verdicts.** Each call returns a [`Verdict`]: forward, replace with
//!   zero or more events (drop, rewrite, inject before or after), reply to
//!   the sender, end the session ([`Close`]), or decide later. Events a hook
//!   sends on pass through the hooks after it; replies go straight back.
//! - **Failures.** A hook that panics (deciding, or in a later verdict)
//!   ends its session: the client gets an `error` event (`hook_failed`),
//!   both sides close 1008.
//! - **Async.** [`Verdict::later`] holds only its own direction: it reads
//!   nothing more from its source until the verdict is ready (backpressure
//!   stays bounded), while the other direction keeps flowing.
//! - **Classification.** The `type` is read as the provider's JSON parser
//!   reads it: escapes decoded (`"session\u002eupdate"` is
//!   `session.update`, and so is a key spelled `"t\u0079pe"`). An event
//!   with two top-level `type` members is refused before any hook sees it:
//!   a client gets an `error` event (`ambiguous_event_type`) and the session
//!   goes on; one from the upstream is dropped and logged.
//! - **The meter** (the usage observer) is the innermost stage: it counts
//!   what crossed the upstream hop, i.e. client events after every hook
//!   (events hooks injected or replied upstream included, refused ones not)
//!   and upstream events as the upstream sent them, before any hook.
//! - **Control.** A [`SessionControl`] ends a session or injects events
//!   into it from anywhere: hooks get it in their [`HookContext`], and
//!   [`LiveSessions`] finds a session by id (or by anything in its
//!   [`SessionInfo`](crate::SessionInfo)), so that a budget decided
//!   elsewhere can end a live session.
//!
//! Built in: model pinning (on by default, see
//! [`RealtimeLayer::pin_model`](crate::RealtimeLayer::pin_model)),
//! [`EventPolicy`] (allow or deny client event types) and [`SessionLock`]
//! (defaults and locks the client cannot override).
//!
//! # Example
//!
//! A hook that refuses `response.create` while a moderation service looks
//! at the last text the user typed, without holding up the audio coming
//! back:
//!
//! ```
//! use tower_realtime::hooks::{ErrorEvent, Event, Hook, HookContext, Interest, Verdict};
//! use tower_realtime::{Providers, RealtimeLayer, SessionInfo};
//!
//! struct Moderated;
//!
//! impl Hook for Moderated {
//!     fn interest(&self) -> Interest {
//!         Interest::new().client_events(["conversation.item.create"])
//!     }
//!
//!     fn on_event(&mut self, event: Event, _cx: &mut HookContext<'_>) -> Verdict {
//!         Verdict::later(async move {
//!             if looks_fine(&event).await {
//!                 Verdict::forward(event)
//!             } else {
//!                 let error = ErrorEvent::invalid_request("content_policy_violation", "Refused.");
//!                 Verdict::reply(error.answering(&event).to_event())
//!             }
//!         })
//!     }
//! }
//!
//! async fn looks_fine(event: &Event) -> bool {
//!     !event.as_text().unwrap_or_default().contains("forbidden")
//! }
//!
//! let layer = RealtimeLayer::new(Providers::new()).hook(|_: &SessionInfo| Moderated);
//! # drop(layer);
//! ```

mod control;
mod error_event;
mod event;
mod event_policy;
mod hook;
mod interest;
mod pin_model;
mod session_lock;
#[cfg(test)]
mod testing;
mod verdict;

pub use control::{InjectError, LiveSessions, SessionControl, SessionId};
pub use error_event::ErrorEvent;
pub use event::{Direction, Event};
pub use event_policy::EventPolicy;
pub(crate) use hook::SharedNewHook;
pub use hook::{Hook, HookContext, NewHook};
pub use interest::Interest;
pub(crate) use pin_model::PinModel;
pub use session_lock::SessionLock;
pub use verdict::{Close, Verdict};
