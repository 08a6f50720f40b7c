//! [`WebRtc`]: the configuration of WebRTC calls and client secrets.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::store::{CallStore, MemoryCallStore};
use crate::hooks::SessionControl;

/// The shortest and longest lifetime of a client secret, as OpenAI allows.
pub(crate) const SECRET_TTL_RANGE: (u64, u64) = (10, 7200);

/// WebRTC calls and client secrets through the gateway, enabled with
/// [`RealtimeLayer::webrtc`](crate::RealtimeLayer::webrtc) (see the
/// [module docs](super)).
///
/// | option | default |
/// |---|---|
/// | [`store`](Self::store) | [`MemoryCallStore`] (one replica) |
/// | [`secret_ttl`](Self::secret_ttl) | 600 s (requests may ask for 10 s to 7200 s) |
/// | [`max_sdp_bytes`](Self::max_sdp_bytes) | 64 KiB, then `413` |
/// | [`max_body_bytes`](Self::max_body_bytes) | 256 KiB, then `413` |
/// | [`sideband_attach_timeout`](Self::sideband_attach_timeout) | 10 s (retried), then the call is hung up |
/// | [`unsupervised_calls`](Self::unsupervised_calls) | off: a call without a sideband fails |
/// | [`call_ttl`](Self::call_ttl) | 2 h |
/// | [`sideband_lease`](Self::sideband_lease) | 30 s |
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_realtime::webrtc::{MemoryCallStore, WebRtc};
/// use tower_realtime::{Providers, RealtimeLayer};
///
/// let layer = RealtimeLayer::new(Providers::new())
///     .allow_unauthenticated()
///     .webrtc(WebRtc::new().store(MemoryCallStore::new()).secret_ttl(Duration::from_secs(120)));
/// # drop(layer);
/// ```
#[derive(Clone)]
#[must_use]
pub struct WebRtc {
    pub(crate) store: Arc<dyn CallStore>,
    pub(crate) secret_ttl: Duration,
    pub(crate) max_sdp_bytes: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) attach_timeout: Duration,
    pub(crate) unsupervised: bool,
    pub(crate) call_ttl: Duration,
    pub(crate) lease: Duration,
    pub(crate) replica: String,
    /// The sidebands this replica supervises, by gateway call id.
    pub(crate) supervised: Arc<Mutex<HashMap<String, SessionControl>>>,
    /// Set once the search for orphaned calls runs.
    pub(crate) takeover: Arc<OnceLock<()>>,
}

impl Default for WebRtc {
    fn default() -> Self {
        Self::new()
    }
}

impl WebRtc {
    /// WebRTC calls with the defaults above.
    pub fn new() -> Self {
        Self {
            store: Arc::new(MemoryCallStore::new()),
            secret_ttl: Duration::from_secs(600),
            max_sdp_bytes: 64 << 10,
            max_body_bytes: 256 << 10,
            attach_timeout: Duration::from_secs(10),
            unsupervised: false,
            call_ttl: Duration::from_secs(2 * 3600),
            lease: Duration::from_secs(30),
            replica: super::token::new_call_id().replace("gw_call_", "replica_"),
            supervised: Arc::default(),
            takeover: Arc::default(),
        }
    }

    /// Where client secrets, calls and sideband leases live. Replicas that
    /// share a store (e.g. `RedisCallStore`) serve each other's calls.
    pub fn store(mut self, store: impl CallStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// The lifetime of a client secret whose request names none; clamped
    /// to OpenAI's range, 10 s to 2 h. Requests may ask for any lifetime in
    /// that range with `expires_after.seconds`.
    pub fn secret_ttl(mut self, ttl: Duration) -> Self {
        self.secret_ttl = clamp_ttl(ttl.as_secs());
        self
    }

    /// The largest SDP offer accepted; larger ones get `413`.
    pub fn max_sdp_bytes(mut self, bytes: usize) -> Self {
        self.max_sdp_bytes = bytes;
        self
    }

    /// The largest request body accepted on the WebRTC endpoints; larger
    /// ones get `413`.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// How long the gateway keeps trying to attach its sideband to a new
    /// call (a provider may not know the call for a moment after it
    /// answered the offer) before it hangs the call up.
    pub fn sideband_attach_timeout(mut self, timeout: Duration) -> Self {
        self.attach_timeout = timeout;
        self
    }

    /// Whether a call whose sideband cannot attach goes on unsupervised
    /// (unmetered, no budgets, no locks) instead of being hung up and
    /// failed with `502` (`sideband_unavailable`). Off by default: calls fail closed.
    pub fn unsupervised_calls(mut self, allow: bool) -> Self {
        self.unsupervised = allow;
        self
    }

    /// How long a call is remembered (its hang-up and sideband routes work)
    /// when nothing ends it sooner. OpenAI ends sessions after 60 minutes.
    pub fn call_ttl(mut self, ttl: Duration) -> Self {
        self.call_ttl = ttl;
        self
    }

    /// How long a replica's claim on a call's sideband lasts without
    /// renewal (renewed every third of it): after a replica stops, another
    /// one sharing the store re-attaches the sideband within about this long.
    pub fn sideband_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The name of this replica in sideband leases (random by default).
    pub fn replica_id(mut self, id: impl Into<String>) -> Self {
        self.replica = id.into();
        self
    }
}

/// `seconds` within OpenAI's range of client secret lifetimes.
pub(crate) fn clamp_ttl(seconds: u64) -> Duration {
    Duration::from_secs(seconds.clamp(SECRET_TTL_RANGE.0, SECRET_TTL_RANGE.1))
}

impl fmt::Debug for WebRtc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRtc")
            .field("secret_ttl", &self.secret_ttl)
            .field("max_sdp_bytes", &self.max_sdp_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("sideband_attach_timeout", &self.attach_timeout)
            .field("unsupervised_calls", &self.unsupervised)
            .field("call_ttl", &self.call_ttl)
            .field("sideband_lease", &self.lease)
            .field("replica_id", &self.replica)
            .finish_non_exhaustive()
    }
}
