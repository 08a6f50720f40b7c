//! [`RealtimeLayer`]: the configuration of the gateway.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use http::HeaderName;
use rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tower_layer::Layer;

use crate::admission::Admission;
use crate::budget::Budget;
use crate::hooks::{LiveSessions, NewHook, SharedNewHook};
use crate::origin::OriginPolicy;
use crate::provider::Providers;
use crate::relay::RelayConfig;
use crate::service::RealtimeService;
use crate::sessions::{Sessions, ShutdownHandle};
use crate::socket_options::SocketOptions;
use crate::upstream::headers::{DEFAULT_FORWARDED, is_forwardable};
use crate::upstream::{Dialer, Pool, PoolConfig, tls};

/// How long a pre-warmed socket waits at most by default.
const DEFAULT_PREWARM_IDLE: Duration = Duration::from_secs(20);
/// The shortest wait of a pre-warmed socket: below it the pool would
/// redial all the time.
const MIN_PREWARM_IDLE: Duration = Duration::from_secs(1);
use crate::usage::{Isolated, Observer};
use crate::webrtc::WebRtc;

/// Everything a [`RealtimeService`] needs, shared by all its clones.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) path: String,
    pub(crate) providers: Providers,
    pub(crate) dialer: Dialer,
    pub(crate) relay: RelayConfig,
    pub(crate) max_sessions: Option<usize>,
    pub(crate) origins: OriginPolicy,
    pub(crate) forward_headers: Vec<HeaderName>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) live: LiveSessions,
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) hooks: Vec<SharedNewHook>,
    pub(crate) pin_model: bool,
    pub(crate) admission: Option<Arc<dyn Admission>>,
    /// Sessions without an admission hook are intended.
    pub(crate) unauthenticated: bool,
    /// The missing admission decision has been logged.
    pub(crate) undecided_logged: Arc<AtomicBool>,
    /// WebRTC calls and client secrets, when enabled.
    pub(crate) webrtc: Option<WebRtc>,
    pub(crate) budget: Option<Budget>,
    /// The listener that ends sessions of identities out of budget.
    pub(crate) budget_listener: Arc<crate::budget::exhaustion::Listener>,
}

/// A [`Layer`] that turns WebSocket upgrades on one path into relayed
/// realtime sessions, and passes every other request to the inner service.
///
/// Cloning is cheap; clones share their sessions, so the session limit and
/// [`shutdown_handle`](Self::shutdown_handle) cover all of them.
///
/// | option | default |
/// |---|---|
/// | [`path`](Self::path) | `/v1/realtime` |
/// | [`connect_timeout`](Self::connect_timeout) | 10 s, then `504` (also bounds admission and the provider's target) |
/// | [`max_message_size`](Self::max_message_size) / [`max_frame_size`](Self::max_frame_size) | 16 MiB, then close `1009` |
/// | [`read_buffer_size`](Self::read_buffer_size) | 4 KiB per socket |
/// | [`write_buffer_size`](Self::write_buffer_size) | 16 KiB per socket |
/// | [`keepalive`](Self::keepalive) / [`keepalive_misses`](Self::keepalive_misses) | ping a peer silent for 3 s, dead after 2 unanswered pings (or 9 s of unacknowledged writes) |
/// | [`idle_timeout`](Self::idle_timeout) | none |
/// | [`max_session_duration`](Self::max_session_duration) | none |
/// | [`close_timeout`](Self::close_timeout) | 5 s |
/// | [`client_socket_buffers`](Self::client_socket_buffers) | 64 KiB receive, 64 KiB send |
/// | [`upstream_notsent_lowat`](Self::upstream_notsent_lowat) | 16 KiB |
/// | [`max_sessions`](Self::max_sessions) | unlimited |
/// | [`prewarm`](Self::prewarm) / [`prewarm_idle`](Self::prewarm_idle) | off / 20 s |
/// | [`origins`](Self::origins) | any origin |
/// | [`forward_header`](Self::forward_header) | `User-Agent`, `traceparent`, `tracestate` (and `X-Request-Id`) |
/// | [`observer`](Self::observer) | none |
/// | [`hook`](Self::hook) | none |
/// | [`pin_model`](Self::pin_model) | on |
/// | [`admission`](Self::admission) / [`allow_unauthenticated`](Self::allow_unauthenticated) | neither: every upgrade is refused (`500`, `admission_not_configured`) |
/// | [`budget`](Self::budget) | none: nothing is counted |
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use http::request::Parts;
/// use tower_realtime::admission::{Refusal, client_token};
/// use tower_realtime::provider::OpenAi;
/// use tower_realtime::{Identity, Providers, RealtimeLayer, Secret};
///
/// let providers = Providers::new().with("openai", OpenAi::new(Secret::new("sk-...")));
/// let layer = RealtimeLayer::new(providers)
///     .admission(|request: &Parts| match client_token(&request.headers) {
///         Some("gateway-key") => Ok(Identity::new("default")),
///         _ => Err(Refusal::unauthorized("Missing or incorrect API key.")),
///     })
///     .max_sessions(1_000)
///     .idle_timeout(Duration::from_secs(300));
/// // Wrap the whole router: the realtime path needs no route of its own.
/// let app = tower::Layer::layer(&layer, Router::new().route("/healthz", get(|| async { "ok" })));
/// # let _: tower_realtime::RealtimeService<Router> = app;
/// ```
#[derive(Clone)]
#[must_use]
pub struct RealtimeLayer {
    config: Arc<Config>,
}

impl RealtimeLayer {
    /// The default realtime path, the one OpenAI SDKs call.
    pub const DEFAULT_PATH: &'static str = "/v1/realtime";
    /// The default limit on one message or frame: OpenAI caps one audio append at 15 MiB.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;
    /// The default keepalive interval.
    pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(3);
    /// The default number of unanswered keepalive pings after which a peer is dead.
    pub const DEFAULT_KEEPALIVE_MISSES: u32 = 2;

    /// A layer that routes sessions to `providers`, with the defaults above.
    pub fn new(providers: Providers) -> Self {
        let websocket = WebSocketConfig::default()
            .read_buffer_size(4 << 10)
            .write_buffer_size(16 << 10)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(Self::DEFAULT_MAX_MESSAGE_SIZE))
            .max_frame_size(Some(Self::DEFAULT_MAX_MESSAGE_SIZE));
        Self {
            config: Arc::new(Config {
                path: Self::DEFAULT_PATH.to_owned(),
                providers,
                dialer: Dialer {
                    tls: tls::default_config(),
                    timeout: Duration::from_secs(10),
                    websocket,
                    pool: None,
                    prewarm: PoolConfig {
                        per_host: 0,
                        idle: DEFAULT_PREWARM_IDLE,
                    },
                    sockets: SocketOptions {
                        client_recv_buffer: Some(64 << 10),
                        client_send_buffer: Some(64 << 10),
                        upstream_notsent_lowat: Some(16 << 10),
                        user_timeout: user_timeout(
                            Some(Self::DEFAULT_KEEPALIVE),
                            Self::DEFAULT_KEEPALIVE_MISSES,
                        ),
                    },
                },
                relay: RelayConfig {
                    keepalive: Some(Self::DEFAULT_KEEPALIVE),
                    keepalive_misses: Self::DEFAULT_KEEPALIVE_MISSES,
                    idle_timeout: None,
                    max_duration: None,
                    close_timeout: Duration::from_secs(5),
                },
                max_sessions: None,
                origins: OriginPolicy::any(),
                forward_headers: DEFAULT_FORWARDED.to_vec(),
                sessions: Sessions::new(),
                live: LiveSessions::default(),
                observer: None,
                hooks: Vec::new(),
                pin_model: true,
                admission: None,
                unauthenticated: false,
                undecided_logged: Arc::new(AtomicBool::new(false)),
                webrtc: None,
                budget: None,
                budget_listener: Arc::default(),
            }),
        }
    }

    fn edit(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// The path that realtime upgrades arrive on (exact match, no query).
    ///
    /// # Panics
    ///
    /// When `path` does not start with `/`.
    pub fn path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        assert!(
            path.starts_with('/'),
            "the realtime path must start with `/`"
        );
        self.edit(|config| config.path = path)
    }

    /// How long dialling the upstream (DNS, TCP, TLS and the WebSocket
    /// handshake together) may take before the client gets `504`
    /// (`upstream_timeout`). The admission hook and the provider's
    /// [`target`](crate::provider::Provider::target) each get the same time
    /// (then `504` with `admission_timeout` or `provider_timeout`).
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        self.edit(|config| config.dialer.timeout = timeout)
    }

    /// Keeps `sockets` connected sockets (TCP, and TLS for `wss`) ready per
    /// upstream host, so that a session pays only the WebSocket upgrade's
    /// round trip instead of TCP + TLS + upgrade. A host is warmed from its
    /// first session on; each socket is used once and replaced in the
    /// background after each session, and replaced when it has waited
    /// [`prewarm_idle`](Self::prewarm_idle). A socket the upstream closed
    /// while it waited is not used (the session dials afresh). `0` (the
    /// default) turns pre-warming off.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_realtime::{Providers, RealtimeLayer};
    ///
    /// let layer = RealtimeLayer::new(Providers::new())
    ///     .prewarm(2)
    ///     .prewarm_idle(Duration::from_secs(20));
    /// # let _ = layer;
    /// ```
    pub fn prewarm(self, sockets: usize) -> Self {
        self.edit_pool(|pool| pool.per_host = sockets)
    }

    /// How long a pre-warmed socket may wait before it is replaced: well
    /// under the upstream's idle timeout (typically 60 s or more). Default
    /// 20 s, at least 1 s. Either order of this and [`prewarm`](Self::prewarm)
    /// gives the same layer.
    pub fn prewarm_idle(self, idle: Duration) -> Self {
        self.edit_pool(|pool| pool.idle = idle.max(MIN_PREWARM_IDLE))
    }

    fn edit_pool(self, change: impl FnOnce(&mut PoolConfig)) -> Self {
        self.edit(|c| {
            change(&mut c.dialer.prewarm);
            let prewarm = c.dialer.prewarm;
            c.dialer.pool = (prewarm.per_host > 0).then(|| Pool::new(prewarm));
        })
    }

    /// The largest message accepted from either side; a larger one closes the
    /// session with `1009`.
    pub fn max_message_size(self, bytes: usize) -> Self {
        self.edit(|config| {
            config.dialer.websocket.max_message_size = Some(bytes);
        })
    }

    /// The largest frame accepted from either side; a larger one closes the
    /// session with `1009`.
    pub fn max_frame_size(self, bytes: usize) -> Self {
        self.edit(|config| {
            config.dialer.websocket.max_frame_size = Some(bytes);
        })
    }

    /// The read buffer of each socket. Small buffers keep idle sessions
    /// cheap; large ones read floods in fewer system calls.
    pub fn read_buffer_size(self, bytes: usize) -> Self {
        self.edit(|config| config.dialer.websocket.read_buffer_size = bytes)
    }

    /// How many bytes of outgoing frames a socket gathers before it writes;
    /// messages that arrive together are written together either way.
    /// Values from `usize::MAX - 1` up are taken as `usize::MAX - 1`.
    pub fn write_buffer_size(self, bytes: usize) -> Self {
        // tungstenite requires the write buffer to stay below its maximum,
        // which the layer pins at `usize::MAX`.
        let bytes = bytes.min(usize::MAX - 1);
        self.edit(|config| config.dialer.websocket.write_buffer_size = bytes)
    }

    /// Pings each peer that has been silent for `interval` (checked every
    /// `interval`); a peer that answers none of
    /// [`keepalive_misses`](Self::keepalive_misses) pings is dead: at most
    /// `interval` × (misses + 2) after its last frame. Then the client gets an `error` event
    /// (`upstream_connection_lost`) and close `1011` "upstream connection
    /// lost", or the upstream gets `1011` "client connection lost".
    ///
    /// A peer is not judged while the relay's writes to it wait for room
    /// (a slow listener's pong waits behind its audio). Such writes are
    /// judged by the kernel instead: data unacknowledged for `interval` ×
    /// (misses + 1) ends the session the same way (`TCP_USER_TIMEOUT`, on
    /// Linux, on the upstream socket and on the client's when the layer can
    /// reach it; Linux also ends a connection whose peer keeps its receive
    /// window shut that long: a client that reads nothing at all). With the
    /// defaults a dead provider is found within 12 s when the session is
    /// idle, about 9 s when the client is sending. `None` turns keepalive
    /// off (and the user timeout with it).
    pub fn keepalive(self, interval: Option<Duration>) -> Self {
        self.edit(|config| {
            config.relay.keepalive = interval;
            config.dialer.sockets.user_timeout =
                user_timeout(interval, config.relay.keepalive_misses);
        })
    }

    /// How many keepalive pings in a row a peer may leave unanswered before
    /// it is dead (at least 1). Default: 2.
    pub fn keepalive_misses(self, misses: u32) -> Self {
        let misses = misses.max(1);
        self.edit(|config| {
            config.relay.keepalive_misses = misses;
            config.dialer.sockets.user_timeout = user_timeout(config.relay.keepalive, misses);
        })
    }

    /// `SO_RCVBUF` and `SO_SNDBUF` of the client's TCP socket: how much the
    /// kernel queues between the client and the relay in each direction
    /// (Linux doubles the values for its bookkeeping). Small buffers let the
    /// relay's backpressure reach a client that sends faster than its
    /// provider takes, within a fraction of a second of audio, instead of
    /// seconds queued in the gateway's kernel. `None` keeps the kernel's
    /// autotuning. Default: 64 KiB each.
    ///
    /// Set where the layer reaches the socket (see
    /// [`tune_client_socket`](Self::tune_client_socket) for `axum::serve`).
    pub fn client_socket_buffers(self, recv: Option<usize>, send: Option<usize>) -> Self {
        self.edit(|config| {
            config.dialer.sockets.client_recv_buffer = recv;
            config.dialer.sockets.client_send_buffer = send;
        })
    }

    /// Sets the client-side socket options of this layer on a connection
    /// the server accepted: `TCP_NODELAY`, the
    /// [`client_socket_buffers`](Self::client_socket_buffers) and the
    /// keepalive's `TCP_USER_TIMEOUT`.
    ///
    /// The layer sets them itself when the upgraded connection is hyper's
    /// `TokioIo<TcpStream>` (hyper's own `http1` connection
    /// builder). `axum::serve` and hyper-util's `auto::Builder` wrap the
    /// socket in a type of their own that the layer cannot reach: call this
    /// where they accept, or Nagle's algorithm adds up to 40 ms to small
    /// events (a client's first answer, audio deltas).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use axum::serve::ListenerExt;
    /// use tower_realtime::{Providers, RealtimeLayer};
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let layer = RealtimeLayer::new(Providers::new());
    /// let tuning = layer.clone();
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080")
    ///     .await?
    ///     .tap_io(move |tcp| tuning.tune_client_socket(tcp));
    /// let app = axum::Router::new().layer(layer);
    /// axum::serve(listener, app).await
    /// # }
    /// ```
    pub fn tune_client_socket(&self, tcp: &tokio::net::TcpStream) {
        self.config.dialer.sockets.tune_client(tcp);
    }

    /// `TCP_NOTSENT_LOWAT` of upstream sockets (Linux): once this many bytes
    /// wait unsent, the relay stops writing to the provider, and so stops
    /// reading the client. Keeps a slow provider link from queueing seconds
    /// of audio in the gateway's send buffer. `None` leaves the kernel's
    /// default. Default: 16 KiB.
    pub fn upstream_notsent_lowat(self, bytes: Option<usize>) -> Self {
        self.edit(|config| config.dialer.sockets.upstream_notsent_lowat = bytes)
    }

    /// Closes a session after `timeout` without a message in either
    /// direction: the client gets an `error` event (`idle_timeout`), then
    /// both sides get close `1008`.
    pub fn idle_timeout(self, timeout: Duration) -> Self {
        self.edit(|config| config.relay.idle_timeout = Some(timeout))
    }

    /// Closes a session `limit` after it opened: the client gets an `error`
    /// event (`session_expired`), then both sides get close `1008`.
    pub fn max_session_duration(self, limit: Duration) -> Self {
        self.edit(|config| config.relay.max_duration = Some(limit))
    }

    /// How long a closing session waits for its peers' close frames.
    pub fn close_timeout(self, timeout: Duration) -> Self {
        self.edit(|config| config.relay.close_timeout = timeout)
    }

    /// At most `limit` live sessions; upgrades beyond it get `503` with
    /// `Retry-After` before anything is dialled.
    pub fn max_sessions(self, limit: usize) -> Self {
        self.edit(|config| config.max_sessions = Some(limit))
    }

    /// Which `Origin`s may open sessions.
    pub fn origins(self, policy: OriginPolicy) -> Self {
        self.edit(|config| config.origins = policy)
    }

    /// Forwards one more client header upstream.
    ///
    /// A header a client sets is the client's word: forward only what it may
    /// choose. `OpenAI-Safety-Identifier`, for example, names the end user
    /// OpenAI attributes abuse to; set it from your own identity of the user
    /// in a [`Provider`](crate::provider::Provider) (with
    /// [`Target::header`](crate::provider::Target::header)) rather than
    /// forwarding it. A header the target sets replaces a forwarded one.
    ///
    /// # Panics
    ///
    /// For headers that carry client credentials or belong to the client's
    /// hop (`Authorization`, `api-key`, `x-api-key`, `Cookie`,
    /// `OpenAI-Organization`, `OpenAI-Project`, `OpenAI-Beta`, `Origin`,
    /// `Sec-WebSocket-*`, hop-by-hop headers): they never reach the upstream.
    pub fn forward_header(self, name: HeaderName) -> Self {
        assert!(
            is_forwardable(&name),
            "`{name}` carries client credentials or hop state and is never forwarded"
        );
        self.edit(|config| {
            if !config.forward_headers.contains(&name) {
                config.forward_headers.push(name);
            }
        })
    }

    /// Uses this TLS configuration for `wss` upstreams instead of the
    /// default one (see [TLS](crate#tls)). Keep ALPN at `http/1.1` (or empty).
    pub fn tls_config(self, config: Arc<ClientConfig>) -> Self {
        self.edit(|c| c.dialer.tls = Some(config))
    }

    /// Trusts only these roots for `wss` upstreams (for a private CA),
    /// instead of the default ones (see [TLS](crate#tls)).
    pub fn tls_roots(self, roots: RootCertStore) -> Self {
        let config = tls::client_config(roots).map(Arc::new);
        self.edit(|c| c.dialer.tls = config)
    }

    /// Reports the usage and the summary of every session to `observer`
    /// (see [`usage`](crate::usage)). Without an observer, and without the
    /// `metrics` feature, the relay does not look at messages at all.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_realtime::usage::Observation;
    /// use tower_realtime::{Providers, RealtimeLayer};
    ///
    /// let layer = RealtimeLayer::new(Providers::new()).observer(|observation: Observation<'_>| {
    ///     if let Observation::SessionEnd(summary) = observation {
    ///         println!("{} tokens, {:.1} s of input audio", summary.usage.total_tokens.unwrap_or(0), summary.input_audio_seconds);
    ///     }
    /// });
    /// # drop(layer);
    /// ```
    pub fn observer(self, observer: impl Observer) -> Self {
        let observer: Arc<dyn Observer> = Arc::new(Isolated(observer));
        self.edit(|config| config.observer = Some(observer))
    }

    /// Adds a hook to every session (see [`hooks`](crate::hooks)): `new_hook`
    /// makes one per session. Hooks see client events in the order they were
    /// added, and upstream events in reverse order.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_realtime::hooks::{EventPolicy, SessionLock};
    /// use tower_realtime::{Providers, RealtimeLayer};
    ///
    /// let layer = RealtimeLayer::new(Providers::new())
    ///     .hook(EventPolicy::deny(["conversation.item.delete"]))
    ///     .hook(SessionLock::new().max_output_tokens(2_048));
    /// # drop(layer);
    /// ```
    pub fn hook(self, new_hook: impl NewHook) -> Self {
        let new_hook: SharedNewHook = Arc::new(new_hook);
        self.edit(|config| config.hooks.push(new_hook))
    }

    /// Whether a client's `session.update` or `response.create` that names a
    /// model has it rewritten to the model the session was routed to (on by
    /// default): a client cannot switch to a model it was not routed, allowed
    /// or priced for. Pinning runs after every other hook, right before the
    /// upstream.
    pub fn pin_model(self, pin: bool) -> Self {
        self.edit(|config| config.pin_model = pin)
    }

    /// The live sessions of this layer and its clones: find one, end it, or
    /// inject events into it.
    pub fn live_sessions(&self) -> LiveSessions {
        self.config.live.clone()
    }

    /// Decides who may open a session, and as which [`Identity`](crate::Identity),
    /// before anything is dialled (see [`admission`](crate::admission)).
    /// Replaces an earlier hook.
    ///
    /// A layer needs either this or [`allow_unauthenticated`](Self::allow_unauthenticated):
    /// with neither, it refuses every upgrade with `500`
    /// (`admission_not_configured`).
    ///
    /// # Example
    ///
    /// ```
    /// use http::request::Parts;
    /// use tower_realtime::admission::{Refusal, client_token};
    /// use tower_realtime::{Identity, Providers, RealtimeLayer};
    ///
    /// let layer = RealtimeLayer::new(Providers::new()).admission(|request: &Parts| {
    ///     match client_token(&request.headers) {
    ///         Some("key-of-alice") => Ok(Identity::new("alice")),
    ///         Some(_) => Err(Refusal::unauthorized("Incorrect API key.")),
    ///         None => Err(Refusal::unauthorized("Send `Authorization: Bearer KEY`.")),
    ///     }
    /// });
    /// # drop(layer);
    /// ```
    pub fn admission(self, admission: impl Admission) -> Self {
        let admission: Arc<dyn Admission> = Arc::new(admission);
        self.edit(|config| config.admission = Some(admission))
    }

    /// Declares that sessions need no admission hook: without one, every
    /// upgrade that passes the other checks opens a session as
    /// [`Identity::anonymous`](crate::Identity::anonymous). Use it when the
    /// server is private, or when an auth layer *outside* this one checks
    /// every request (a layer inside it never sees upgrades). An admission
    /// hook, if one is set, still runs.
    ///
    /// ```
    /// use tower_realtime::{Providers, RealtimeLayer};
    ///
    /// // A gateway on loopback, for local development only.
    /// let layer = RealtimeLayer::new(Providers::new()).allow_unauthenticated();
    /// # drop(layer);
    /// ```
    pub fn allow_unauthenticated(self) -> Self {
        self.edit(|config| config.unauthenticated = true)
    }

    /// Serves WebRTC calls and client secrets beside the realtime path
    /// (`…/client_secrets`, `…/calls`, `…/calls/{id}/hangup`, and
    /// `?call_id=` sidebands), metered by a sideband the gateway owns (see
    /// [`webrtc`](crate::webrtc)). Off by default: those requests go to the
    /// inner service.
    ///
    /// ```
    /// use tower_realtime::webrtc::WebRtc;
    /// use tower_realtime::{Providers, RealtimeLayer};
    ///
    /// let layer = RealtimeLayer::new(Providers::new()).allow_unauthenticated().webrtc(WebRtc::new());
    /// # drop(layer);
    /// ```
    pub fn webrtc(self, webrtc: WebRtc) -> Self {
        self.edit(|config| config.webrtc = Some(webrtc))
    }

    /// Holds every session to `budget`: per-identity budgets (tokens, input
    /// audio, money) and session limits, counted in the budget's
    /// [`BudgetStore`](crate::store::BudgetStore) (in memory, or in Redis to
    /// share them across replicas). Replaces an earlier budget.
    ///
    /// - Before anything is dialled, the identity the
    ///   [`admission`](Self::admission) hook named must be within its
    ///   budgets and session limits: else `429` with code
    ///   `insufficient_quota` (a budget is spent), `concurrency_limit_exceeded`
    ///   (too many live sessions) or `rate_limit_exceeded` (too many new
    ///   sessions this minute), with `Retry-After` when a window resets. A
    ///   store that cannot answer and fails closed gives `503`
    ///   (`budget_store_unavailable`). An identity with a money budget may
    ///   not open a session on a model the price table refuses to price:
    ///   `403` (`model_not_priced`).
    /// - Each response reserves an estimate when it starts (a client's
    ///   `response.create`, or the upstream's `response.created` for
    ///   responses the provider starts itself); a `response.create` is sent
    ///   on with a lower `max_output_tokens` when little budget is left, or
    ///   answered with an `error` event (`insufficient_quota`) when none is.
    ///   Each `response.done` settles its reservation with what the
    ///   response cost (once per response id); transcription usage and
    ///   input audio time are charged as they arrive.
    /// - When a budget is spent (on this replica or, through the store, on
    ///   another), every live session of that identity gets an `error`
    ///   event (`insufficient_quota`) and close `1008` on both sides.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_realtime::budget::{Budget, Limit, Limits, Window};
    /// use tower_realtime::store::MemoryBudgetStore;
    /// use tower_realtime::{Providers, RealtimeLayer};
    ///
    /// let limits = Limits::new()
    ///     .with(Limit::tokens(Window::Day, 1_000_000))
    ///     .max_live_sessions(4);
    /// let layer = RealtimeLayer::new(Providers::new())
    ///     .allow_unauthenticated()
    ///     .budget(Budget::new(MemoryBudgetStore::new(), limits));
    /// # drop(layer);
    /// ```
    pub fn budget(self, budget: Budget) -> Self {
        self.edit(|config| {
            config.budget = Some(budget);
            config.budget_listener = Arc::default();
        })
    }

    /// Graceful shutdown and the live-session count of this layer and its clones.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle::new(Arc::clone(&self.config.sessions))
    }
}

/// How long written data may stay unacknowledged: the keepalive's budget,
/// `interval` × (misses + 1).
fn user_timeout(keepalive: Option<Duration>, misses: u32) -> Option<Duration> {
    keepalive
        .filter(|interval| !interval.is_zero())
        .map(|interval| interval.saturating_mul(misses.saturating_add(1)))
}

impl<S> Layer<S> for RealtimeLayer {
    type Service = RealtimeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        crate::webrtc::ensure_started(&self.config);
        RealtimeService::new(inner, Arc::clone(&self.config))
    }
}

impl std::fmt::Debug for RealtimeLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let config = &self.config;
        f.debug_struct("RealtimeLayer")
            .field("path", &config.path)
            .field("providers", &config.providers)
            .field("connect_timeout", &config.dialer.timeout)
            .field("websocket", &config.dialer.websocket)
            .field("relay", &config.relay)
            .field("sockets", &config.dialer.sockets)
            .field("max_sessions", &config.max_sessions)
            .field("prewarm", &config.dialer.prewarm.per_host)
            .field("prewarm_idle", &config.dialer.prewarm.idle)
            .field("origins", &config.origins)
            .field("forward_headers", &config.forward_headers)
            .field("observer", &config.observer.is_some())
            .field("hooks", &config.hooks.len())
            .field("pin_model", &config.pin_model)
            .field("webrtc", &config.webrtc)
            .field("budget", &config.budget)
            .field(
                "admission",
                &match (&config.admission, config.unauthenticated) {
                    (Some(_), _) => "hook",
                    (None, true) => "unauthenticated",
                    (None, false) => "undecided: every upgrade is refused",
                },
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prewarm_settings_hold_in_either_order_and_idle_has_a_floor() {
        let before = RealtimeLayer::new(Providers::new())
            .prewarm_idle(Duration::from_secs(5))
            .prewarm(2);
        let after = RealtimeLayer::new(Providers::new())
            .prewarm(2)
            .prewarm_idle(Duration::from_secs(5));
        for layer in [&before, &after] {
            let prewarm = layer.config.dialer.prewarm;
            assert_eq!(
                (prewarm.per_host, prewarm.idle),
                (2, Duration::from_secs(5))
            );
            assert!(layer.config.dialer.pool.is_some());
        }
        let zero = RealtimeLayer::new(Providers::new())
            .prewarm(1)
            .prewarm_idle(Duration::ZERO);
        assert_eq!(zero.config.dialer.prewarm.idle, MIN_PREWARM_IDLE);
        assert!(
            RealtimeLayer::new(Providers::new())
                .prewarm(0)
                .config
                .dialer
                .pool
                .is_none()
        );
    }
}
