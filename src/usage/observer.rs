//! The [`Observer`] trait and what it is told.

use super::info::SessionInfo;
use super::summary::SessionSummary;
use super::tokens::Usage;
use super::transcription::TranscriptionUsage;
use crate::admission::Identity;

/// Receives the usage and the summary of every session, registered with
/// [`RealtimeLayer::observer`](crate::RealtimeLayer::observer).
///
/// It is called on the session's own task, in the order things happen: the
/// [`SessionInfo`] when the session opens, a [`UsageRecord`] for each
/// `response.done`, a [`TranscriptionRecord`] for
/// each transcription that reports usage, and one [`SessionSummary`] when
/// the session has ended, however it ended (exactly one for every
/// `SessionStart`). Every record carries the session's [`Identity`], the
/// one to bill. Keep it quick and never block:
/// hand the data to a channel or an atomic counter for anything slow.
///
/// A panic in `observe` is caught and logged (ERROR); the session goes on,
/// and its summary is still reported.
///
/// Closures `Fn(Observation<'_>)` are observers.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use tower_realtime::usage::Observation;
/// use tower_realtime::{Providers, RealtimeLayer};
///
/// let output_tokens = Arc::new(AtomicU64::new(0));
/// let counter = Arc::clone(&output_tokens);
/// let layer = RealtimeLayer::new(Providers::new()).observer(move |observation: Observation<'_>| {
///     match observation {
///         Observation::Usage(record) => {
///             counter.fetch_add(record.usage.output_tokens.unwrap_or(0), Ordering::Relaxed);
///         }
///         Observation::SessionEnd(summary) => {
///             println!("{} {} ended after {:?}: {}", summary.provider, summary.model, summary.duration, summary.end);
///         }
///         _ => {}
///     }
/// });
/// # drop(layer);
/// ```
pub trait Observer: Send + Sync + 'static {
    /// Called with each record and with the session summary.
    fn observe(&self, observation: Observation<'_>);
}

impl<F> Observer for F
where
    F: Fn(Observation<'_>) + Send + Sync + 'static,
{
    fn observe(&self, observation: Observation<'_>) {
        self(observation)
    }
}

/// An observer whose panics are caught and logged instead of unwinding
/// through the session's task.
pub(crate) struct Isolated<O>(pub(crate) O);

impl<O: Observer> Observer for Isolated<O> {
    fn observe(&self, observation: Observation<'_>) {
        let observed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.0.observe(observation);
        }));
        if let Err(panic) = observed {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic without a message");
            tracing::error!(panic = message, "the usage observer panicked");
        }
    }
}

/// What an [`Observer`] is told.
///
/// # Example
///
/// ```
/// use tower_realtime::usage::Observation;
///
/// fn describe(observation: Observation<'_>) -> &'static str {
///     match observation {
///         Observation::SessionStart(_) => "a new session",
///         Observation::Usage(_) => "a response",
///         Observation::Transcription(_) => "a transcription",
///         Observation::SessionEnd(_) => "the end of a session",
///         _ => "something new",
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Observation<'a> {
    /// The session opened: its upstream is connected and the client's `101`
    /// is on its way. A [`SessionEnd`](Self::SessionEnd) follows, however
    /// the session ends.
    SessionStart(&'a SessionInfo),
    /// The usage of one response.
    Usage(&'a UsageRecord),
    /// The usage of one transcription.
    Transcription(&'a TranscriptionRecord),
    /// The session ended; nothing more comes for it.
    SessionEnd(&'a SessionSummary),
}

/// The usage of one response, from a `response.done` event.
///
/// # Example
///
/// ```
/// use tower_realtime::Identity;
/// use tower_realtime::usage::{Usage, UsageRecord};
///
/// let mut record = UsageRecord::new("openai", "gpt-realtime", "req_1", Usage::default().with_total_tokens(253));
/// record.response_id = Some("resp_1".into());
/// record.identity = Identity::new("alice");
/// assert_eq!(record.usage.total_tokens, Some(253));
/// assert_eq!(record.session_id, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageRecord {
    /// Who the session belongs to: the identity to bill.
    pub identity: Identity,
    /// The provider the session was routed to (its name in [`Providers`](crate::Providers)).
    pub provider: String,
    /// The model, without the provider prefix.
    pub model: String,
    /// The session's request id (echoed to the client as `X-Request-Id`):
    /// a correlation id the client may choose, never an identity.
    pub request_id: String,
    /// The upstream's session id, once `session.created` announced it.
    pub session_id: Option<String>,
    /// `response.id`, if the provider sent one.
    pub response_id: Option<String>,
    /// `response.usage`; an empty `usage` object gives [`Usage::default()`].
    pub usage: Usage,
}

/// The usage of one transcription, from a
/// `conversation.item.input_audio_transcription.completed` event that
/// carries a `usage` object.
///
/// # Example
///
/// ```
/// use tower_realtime::Identity;
/// use tower_realtime::usage::{TranscriptionRecord, TranscriptionUsage};
///
/// let mut record = TranscriptionRecord::new(
///     "azure",
///     "gpt-realtime",
///     "req_1",
///     TranscriptionUsage::Duration { seconds: 2.4 },
/// );
/// record.item_id = Some("item_1".into());
/// record.identity = Identity::new("alice");
/// assert!(matches!(record.usage, TranscriptionUsage::Duration { .. }));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TranscriptionRecord {
    /// Who the session belongs to: the identity to bill.
    pub identity: Identity,
    /// The provider the session was routed to.
    pub provider: String,
    /// The model of the session, without the provider prefix.
    pub model: String,
    /// The session's request id: a correlation id, never an identity.
    pub request_id: String,
    /// The upstream's session id, once `session.created` announced it.
    pub session_id: Option<String>,
    /// The conversation item whose audio was transcribed.
    pub item_id: Option<String>,
    /// What the transcription cost.
    pub usage: TranscriptionUsage,
}

impl UsageRecord {
    /// The usage of a response in the session `request_id` of `provider`
    /// and `model`, without session or response id, of an
    /// [anonymous](Identity::anonymous) session.
    pub fn new(
        provider: impl Into<String>,
        model: impl Into<String>,
        request_id: impl Into<String>,
        usage: Usage,
    ) -> Self {
        Self {
            identity: Identity::anonymous(),
            provider: provider.into(),
            model: model.into(),
            request_id: request_id.into(),
            session_id: None,
            response_id: None,
            usage,
        }
    }
}

impl TranscriptionRecord {
    /// The usage of a transcription in the session `request_id` of
    /// `provider` and `model`, without session or item id, of an
    /// [anonymous](Identity::anonymous) session.
    pub fn new(
        provider: impl Into<String>,
        model: impl Into<String>,
        request_id: impl Into<String>,
        usage: TranscriptionUsage,
    ) -> Self {
        Self {
            identity: Identity::anonymous(),
            provider: provider.into(),
            model: model.into(),
            request_id: request_id.into(),
            session_id: None,
            item_id: None,
            usage,
        }
    }
}
