//! What is known of a session when it opens.

use std::time::{Duration, Instant, SystemTime};

use crate::admission::Identity;

/// Who a session belongs to, where it goes, and when it opened: given to
/// observers as [`Observation::SessionStart`](super::Observation::SessionStart)
/// once the upstream is connected and the client's `101` is on its way.
///
/// # Example
///
/// ```
/// use tower_realtime::usage::Observation;
/// use tower_realtime::{Providers, RealtimeLayer};
///
/// let layer = RealtimeLayer::new(Providers::new()).observer(|observation: Observation<'_>| {
///     if let Observation::SessionStart(info) = observation {
///         println!("{} opened {}/{} ({})", info.identity, info.provider, info.model, info.request_id);
///     }
/// });
/// # drop(layer);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Who the session belongs to, as the admission hook decided.
    pub identity: Identity,
    /// The provider's name in the registry.
    pub provider: String,
    /// The model without the provider prefix.
    pub model: String,
    /// The request id echoed to the client (`X-Request-Id`): the client's
    /// own when it sent a usable one, so a correlation id, never an identity.
    pub request_id: String,
    /// When the session opened, on the wall clock.
    pub started_at: SystemTime,
    /// How long dialling the upstream took.
    pub connect_time: Duration,
    /// The sample rate the upstream assumes for 16-bit PCM input that names none.
    pub(crate) pcm_input_rate: u32,
    /// When the session opened, for measuring its duration.
    pub(crate) started: Instant,
}
