//! WebRTC calls and client secrets through the gateway, metered by a
//! sideband the gateway owns.
//!
//! Browsers reach realtime models over WebRTC: they post an SDP offer to
//! `/v1/realtime/calls` and the media then flows to the provider directly.
//! With [`RealtimeLayer::webrtc`](crate::RealtimeLayer::webrtc) the gateway
//! stays on the signalling path, so that no provider credential reaches the
//! browser and every call is still metered, budgeted and locked:
//!
//! | endpoint (under the realtime path) | who | what |
//! |---|---|---|
//! | `POST /v1/realtime/client_secrets` | a client the [admission](crate::admission) hook admits (your server) | mints a **gateway client secret** (`gw_ek_…`) in OpenAI's response shape |
//! | `POST /v1/realtime/calls` | a gateway client secret, or an admitted client | forwards the offer with the provider's key and the call's locked session; `201`, the SDP answer, `Location: /v1/realtime/calls/gw_call_…` |
//! | `POST /v1/realtime/calls/{id}/hangup` (`accept`, `reject`, `refer`) | the call's owner (its client secret, or its identity) | the same action on the provider's call |
//! | `GET /v1/realtime?call_id=gw_call_…` (WebSocket) | the call's owner | the client's own sideband, relayed like any session |
//! | `OPTIONS` on the endpoints above | browsers | CORS preflight; `Location` is exposed |
//!
//! **Minting.** The request is OpenAI's (`{"expires_after":{"anchor":"created_at","seconds":N},"session":{"model":"openai/gpt-realtime",…}}`)
//! plus two optional members of the gateway's: `"origin"` (the only
//! `Origin` the secret may be used from) and `"max_uses"` (how many calls
//! it may create, a call that fails spending none; unlimited until it
//! expires otherwise, as OpenAI's). The
//! answer is `{"value":"gw_ek_…","expires_at":…,"session":{…}}`: the
//! secret is 192 random bits, lives `expires_after.seconds` clamped to 10 s
//! to 2 h ([`WebRtc::secret_ttl`] when not given), and is bound to the
//! caller's identity, the routed model and the session as sent (its
//! `model` rewritten to the upstream model). The provider's key and its own
//! `ek_` secrets never leave the gateway (the gateway mints none: it calls
//! the provider with its key).
//!
//! **Calls.** The offer may be raw `application/sdp` (browsers; with an
//! admitted client the model comes from `?model=`), `multipart/form-data`
//! with `sdp` and `session` parts (openai-node, Azure), or JSON
//! `{"sdp","session"}` (openai-python). With a client secret, the secret's
//! session is the call's session and a session sent with the offer is
//! ignored. The gateway posts the offer upstream as `multipart/form-data`
//! with the session (and Azure's `?webrtcfilter=` if the client sent it), then **attaches its own sideband**
//! (`wss://…/v1/realtime?call_id=rtc_…`, retried for
//! [`WebRtc::sideband_attach_timeout`]) before it answers. When the
//! sideband cannot attach, the call is hung up and the client gets `502`
//! (`sideband_unavailable`), unless [`WebRtc::unsupervised_calls`] allows
//! it. The provider's call id (`rtc_…`) is never shown.
//!
//! **The sideband** is a session of the layer without a client: usage
//! reaches the [observer](crate::RealtimeLayer::observer) and the
//! metrics, the layer's [hooks](crate::RealtimeLayer::hook) run (so a
//! [`SessionControl`](crate::hooks::SessionControl) can end it), the
//! layer's [budget](crate::RealtimeLayer::budget) admits the call before
//! the provider hears of it (`429` otherwise) and is charged what the
//! sideband's `response.done` events report, and a `session.updated` that
//! departs from the call's locked session (a browser may send
//! `session.update` on its data channel) is answered with a
//! `session.update` that restores it. When anything but the provider ends
//! the sideband (a spent budget, a hook, a limit, a lost connection), the
//! gateway sends `response.cancel` on it (while it is still up) and hangs
//! the call up: a sideband alone cannot stop media. A
//! client's own sideband is relayed with the usual hooks, but neither
//! metered nor budgeted: the gateway's sideband already counts the call.
//!
//! **Refusals** are OpenAI-shaped JSON: `401` for a client secret that is
//! unknown (`invalid_client_secret`), expired (`client_secret_expired`) or
//! used up (`client_secret_used_up`); `403` for a wrong origin
//! (`origin_not_allowed`) or another identity's call (`not_call_owner`);
//! `400 webrtc_not_supported` for providers without WebRTC (all but
//! [`OpenAi`](crate::provider::OpenAi) and GA [`Azure`](crate::provider::Azure),
//! see [`Target::webrtc_calls`](crate::provider::Target::webrtc_calls));
//! `413` for an offer over [`WebRtc::max_sdp_bytes`] or a body over
//! [`WebRtc::max_body_bytes`]; `404 call_not_found`; provider refusals
//! mapped as for WebSocket sessions (`502 upstream_auth_failed`, `429`, …).
//! SDP bodies and secrets are never logged.
//!
//! **State.** Client secrets, calls and sideband leases live in a
//! [`CallStore`] ([`MemoryCallStore`] by default; `RedisCallStore` with
//! the cargo feature `redis`), so replicas sharing one serve each other's
//! calls. The replica that attached a call's sideband renews a lease on it
//! ([`WebRtc::sideband_lease`]); when it stops (a graceful shutdown leaves
//! its calls running if the store is shared, [`CallStore::is_shared`], and
//! hangs them up otherwise), another replica finds the lapsed lease and
//! attaches a sideband of its own. Usage between the two attachments is
//! not seen.
//!
//! **Testing.** `testing::WebRtcUpstream` (feature `test-util`) is a
//! scripted provider of these endpoints and of the sideband, recording
//! everything it receives.
//!
//! # Example
//!
//! The server mints a secret for its user; the browser calls with it.
//!
//! ```no_run
//! use http::request::Parts;
//! use tower_realtime::admission::{Refusal, client_token};
//! use tower_realtime::provider::OpenAi;
//! use tower_realtime::webrtc::WebRtc;
//! use tower_realtime::{Identity, OriginPolicy, Providers, RealtimeLayer, Secret};
//!
//! # async fn run() -> std::io::Result<()> {
//! let providers = Providers::new().with("openai", OpenAi::new(Secret::new("sk-...")));
//! let layer = RealtimeLayer::new(providers)
//!     .admission(|request: &Parts| match client_token(&request.headers) {
//!         Some("app-server-key") => Ok(Identity::new("team-a")),
//!         _ => Err(Refusal::unauthorized("Missing or incorrect API key.")),
//!     })
//!     .origins(OriginPolicy::allow(["https://app.example"]))
//!     .webrtc(WebRtc::new());
//! let app = axum::Router::new().layer(layer);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! // Server:  POST /v1/realtime/client_secrets  (Authorization: Bearer app-server-key)
//! //          {"session":{"model":"openai/gpt-realtime"},"origin":"https://app.example"}
//! //          -> {"value":"gw_ek_…","expires_at":…,"session":{…}}
//! // Browser: POST /v1/realtime/calls  (Authorization: Bearer gw_ek_…, Content-Type: application/sdp)
//! //          -> 201, SDP answer, Location: /v1/realtime/calls/gw_call_…
//! ```

mod attach;
mod caller;
mod calls;
mod config;
mod control;
mod cors;
mod lock;
mod multipart;
pub(crate) mod offer;
mod provider_calls;
#[cfg(feature = "redis")]
mod redis_store;
mod resolve;
pub(crate) mod routes;
mod secrets;
mod sideband;
mod store;
mod takeover;
mod token;

pub(crate) use attach::{connect as attach_sideband, find_call, requested_call};
pub(crate) use caller::call_owner;
pub use config::WebRtc;
#[cfg(feature = "redis")]
pub use redis_store::{RedisCallStore, RedisCallStoreBuilder};
pub use store::{CallRecord, CallStore, MemoryCallStore, SecretRecord, SecretUse};
pub(crate) use takeover::ensure_started;
