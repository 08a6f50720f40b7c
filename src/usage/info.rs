//! What is known of a session when it opens.

use std::time::{Duration, Instant, SystemTime};

use crate::admission::Identity;
use crate::hooks::SessionId;

/// One session as the gateway opened it: who it belongs to, its id, routing
/// and timing, from the moment its upstream was connected.
///
/// Observers get it as [`Observation::SessionStart`](super::Observation::SessionStart),
/// hooks when their session opens ([`NewHook`](crate::hooks::NewHook)), and so
/// does anything holding the session's [`SessionControl`](crate::hooks::SessionControl).
///
/// # Example
///
/// ```
/// use tower_realtime::usage::Observation;
/// use tower_realtime::{Providers, RealtimeLayer};
///
/// let layer = RealtimeLayer::new(Providers::new()).observer(|observation: Observation<'_>| {
///     if let Observation::SessionStart(info) = observation {
///         println!("{} opened {}/{} ({})", info.identity(), info.provider(), info.model(), info.request_id());
///     }
/// });
/// # drop(layer);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The gateway's id of the session.
    pub(crate) id: SessionId,
    /// Who the session belongs to, as the admission hook decided.
    pub(crate) identity: Identity,
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

impl SessionInfo {
    /// The gateway's id of the session, the key of
    /// [`LiveSessions`](crate::hooks::LiveSessions).
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Who the session belongs to, as the [admission hook](crate::admission)
    /// decided: the identity to bill and budget.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The provider's name in the registry (the prefix of `?model=`).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The model the session was routed to, without the provider prefix:
    /// the one the upstream was dialled with.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The alias deployment serving the session (`provider/model`), when
    /// the client named an alias (see [`crate::deployment`]).
    pub fn deployment(&self) -> Option<&str> {
        self.deployment.as_deref()
    }

    /// The deployments tried to open the session, in order, the serving one last.
    pub fn attempts(&self) -> &[crate::deployment::Attempt] {
        &self.attempts
    }

    /// The request id echoed to the client (`X-Request-Id`): the client's
    /// own when it sent a usable one, so a correlation id, never an identity.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// When the session opened, on the wall clock.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// How long dialling the upstream took.
    pub fn connect_time(&self) -> Duration {
        self.connect_time
    }
}

#[cfg(test)]
impl SessionInfo {
    /// A session routed to `openai/gpt-realtime`.
    pub(crate) fn example() -> Self {
        Self {
            id: SessionId::next(),
            identity: Identity::anonymous(),
            provider: "openai".into(),
            model: "gpt-realtime".into(),
            model_label: "gpt-realtime".into(),
            deployment: None,
            attempts: Vec::new(),
            request_id: "req_1".into(),
            pcm_input_rate: 24_000,
            pcm_input_rates: vec![24_000],
            connect_time: Duration::ZERO,
            started_at: SystemTime::now(),
            started: Instant::now(),
        }
    }
}
