//! The summary of a session, given to observers when it ends.

use std::time::{Duration, SystemTime};

use super::tokens::Usage;
use super::transcription::TranscriptionTotals;
use crate::admission::Identity;
use crate::budget::Spend;
use crate::deployment::Attempt;
use crate::outcome::SessionEnd;

/// Everything a session did, reported once when it ends, whether it closed
/// cleanly, was cut off by either side, or was ended by the gateway.
///
/// # Example
///
/// ```
/// use tower_realtime::usage::SessionSummary;
///
/// // Per-minute billing from the input audio, for providers without tokens.
/// fn billable_minutes(summary: &SessionSummary) -> f64 {
///     summary.input_audio_seconds / 60.0
/// }
/// # let _ = billable_minutes;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionSummary {
    /// Who the session belonged to, as the admission hook decided.
    pub identity: Identity,
    /// The provider the session was routed to.
    pub provider: String,
    /// The model, without the provider prefix.
    pub model: String,
    /// The alias deployment that served the session (`provider/model`),
    /// when the client named an alias.
    pub deployment: Option<String>,
    /// Every deployment tried to open the session, in order, the one that
    /// served it last (one attempt when the first accepted).
    pub attempts: Vec<Attempt>,
    /// The session's request id (echoed to the client as `X-Request-Id`):
    /// a correlation id the client may choose, never an identity.
    pub request_id: String,
    /// The upstream's session id, from `session.created` (or the first
    /// `session.updated` when there was none).
    pub session_id: Option<String>,
    /// When the session opened: the upstream was connected and the client
    /// got its `101`.
    pub started_at: SystemTime,
    /// From `started_at` until both sides were closed.
    pub duration: Duration,
    /// How long connecting to the upstream took, before the session opened.
    pub upstream_connect_time: Duration,
    /// What the client sent.
    pub client_to_upstream: Traffic,
    /// What the upstream sent.
    pub upstream_to_client: Traffic,
    /// How many `response.done` events the upstream sent.
    pub responses: u64,
    /// The sum of the usage of every response.
    pub usage: Usage,
    /// The sum of the usage of every transcription.
    pub transcription: TranscriptionTotals,
    /// Seconds of audio the client appended with `input_audio_buffer.append`,
    /// counted from payload sizes and the session's input format (pcm16 at
    /// the provider's rate, 24 kHz or DashScope's 16 kHz, unless the upstream
    /// confirms another rate it accepts; G.711 at 8 kHz). Only the upstream's
    /// `session.created`/`session.updated` change the format, never the
    /// client's `session.update`. Audio in a format of unknown rate is not
    /// counted here (see `input_audio_bytes`).
    pub input_audio_seconds: f64,
    /// Decoded bytes of audio the client appended, in any format.
    pub input_audio_bytes: u64,
    /// What the session charged its identity's budget (tokens, input audio,
    /// money), when the layer has a [budget](crate::RealtimeLayer::budget).
    pub spend: Option<Spend>,
    /// Who closed the session, with which code, and the error if any.
    pub end: SessionEnd,
}

/// Messages and payload bytes in one direction.
///
/// # Example
///
/// ```
/// use tower_realtime::usage::Traffic;
///
/// let traffic = Traffic::new(2, 1_024);
/// assert_eq!((traffic.messages, traffic.bytes), (2, 1_024));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traffic {
    /// Text and binary messages relayed.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
}

impl Traffic {
    /// `messages` messages of `bytes` payload bytes in all.
    pub const fn new(messages: u64, bytes: u64) -> Self {
        Self { messages, bytes }
    }
}

impl SessionSummary {
    /// A summary of a session of `provider` and `model` that ended with
    /// `end`, with nothing counted, opened at the Unix epoch and lasting no
    /// time: a start for the summaries an observer's tests feed it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_realtime::usage::SessionSummary;
    /// use tower_realtime::{ClosedBy, SessionEnd};
    ///
    /// let mut summary = SessionSummary::new("xai", "grok-voice", "req_1", SessionEnd::new(ClosedBy::Client, 1000));
    /// summary.duration = Duration::from_secs(90);
    /// summary.input_audio_seconds = 42.0;
    /// assert_eq!(summary.usage.total_tokens, None);
    /// ```
    pub fn new(
        provider: impl Into<String>,
        model: impl Into<String>,
        request_id: impl Into<String>,
        end: SessionEnd,
    ) -> Self {
        Self {
            identity: Identity::anonymous(),
            provider: provider.into(),
            model: model.into(),
            deployment: None,
            attempts: Vec::new(),
            request_id: request_id.into(),
            session_id: None,
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            upstream_connect_time: Duration::ZERO,
            client_to_upstream: Traffic::default(),
            upstream_to_client: Traffic::default(),
            responses: 0,
            usage: Usage::default(),
            transcription: TranscriptionTotals::default(),
            input_audio_seconds: 0.0,
            input_audio_bytes: 0,
            spend: None,
            end,
        }
    }
}
