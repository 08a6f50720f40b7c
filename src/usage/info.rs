//! What is known of a session when it opens.

use std::time::{Duration, Instant, SystemTime};

/// The identity and timing of one session, from the moment its upstream
/// was connected.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    /// The provider's name in the registry.
    pub(crate) provider: String,
    /// The model without the provider prefix.
    pub(crate) model: String,
    /// The `model` label of metrics (bounded: see `Route::model_label`).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) model_label: String,
    /// The alias deployment that serves the session (`provider/model`).
    pub(crate) deployment: Option<String>,
    /// The targets tried, the serving one last.
    pub(crate) attempts: Vec<crate::deployment::Attempt>,
    /// The request id echoed to the client.
    pub(crate) request_id: String,
    /// The sample rate the upstream assumes for 16-bit PCM input that names none.
    pub(crate) pcm_input_rate: u32,
    /// Every 16-bit PCM input rate the upstream accepts (the default among them).
    pub(crate) pcm_input_rates: Vec<u32>,
    /// How long dialling the upstream took.
    pub(crate) connect_time: Duration,
    /// When the session opened, on the wall clock.
    pub(crate) started_at: SystemTime,
    /// When the session opened, for measuring its duration.
    pub(crate) started: Instant,
}
