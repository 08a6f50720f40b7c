//! Where a session goes: the [`Provider`] trait, the upstream [`Target`] it
//! builds, and the built-in providers.
//!
//! A provider turns the model a client asked for into the upstream WebSocket
//! URL, the credential headers to inject and the subprotocols to offer. Any
//! endpoint that speaks OpenAI's realtime event schema needs nothing more.
//!
//! | provider | upstream | credential |
//! |---|---|---|
//! | [`OpenAi`] | `BASE/realtime?model=M` (`?intent=transcription` passes) | `Authorization: Bearer` |
//! | [`Azure`] | `ROOT/openai/v1/realtime?model=D`, or the preview shape with an `api-version` | `api-key` |
//! | [`Xai`] | `BASE/realtime?model=M` | `Authorization: Bearer` |
//! | [`Bailian`] | `HOST/api-ws/v1/realtime?model=M` | `Authorization: Bearer` |
//! | [`Zai`] | `HOST/api/paas/v4/realtime?model=M` | `Authorization: Bearer` |
//! | [`Compatible`] | `BASE/realtime?model=M` | Bearer, `api-key` or none |
//! | [`Gemini`] | Gemini Live, `…/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent` (translated) | `x-goog-api-key` |
//! | [`Vertex`] | Gemini Live on Vertex AI, `…/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent` (translated) | service-account token (`Bearer`) or `x-goog-api-key` |
//!
//! Each takes one key or several [`Keys`] used in turn, and
//! [`Providers::from_env`] builds them all from environment variables.
//!
//! # Example: a provider of your own
//!
//! Closures are providers, so a custom upstream is a few lines:
//!
//! ```
//! use tower_realtime::provider::{Target, TargetError, TargetRequest};
//! use tower_realtime::{Providers, Secret};
//! use url::Url;
//!
//! let key = Secret::new("sk-internal");
//! let providers = Providers::new().with("lab", move |request: &TargetRequest<'_>| {
//!     let mut url = Url::parse("wss://realtime.lab.internal/v1/realtime").unwrap();
//!     url.query_pairs_mut().append_pair("model", request.model());
//!     Ok::<_, TargetError>(Target::new(url).bearer(&key))
//! });
//! assert_eq!(providers.names().collect::<Vec<_>>(), ["lab"]);
//! ```

use std::future::Future;
use std::pin::Pin;

mod auth;
mod azure;
mod bailian;
mod base_url;
mod compatible;
mod env;
mod gemini;
mod keys;
mod map_target;
mod openai;
mod protocol;
mod registry;
mod service_account;
mod session_query;
mod target;
pub(crate) mod token_client;
mod vertex;
mod xai;
mod zai;

pub use azure::Azure;
pub use bailian::Bailian;
pub use base_url::{ConfigError, websocket_base_url};
pub use compatible::Compatible;
pub use gemini::Gemini;
pub use keys::Keys;
pub use map_target::{MapTarget, map_target};
pub use openai::OpenAi;
pub use protocol::Protocol;
pub use registry::Providers;
pub use service_account::{ServiceAccount, TokenError};
pub use target::{Target, TargetError, TargetRequest};
pub use vertex::{Vertex, VertexCredential};
pub use xai::Xai;
pub use zai::Zai;

/// What a [`Provider`] answers, possibly later.
pub type TargetFuture<'a> = Pin<Box<dyn Future<Output = Result<Target, TargetError>> + Send + 'a>>;

/// Builds the upstream target of a session.
///
/// `target` runs once per session, after admission and routing, before the
/// upstream is dialled. It may await (a short-lived token from Vertex AI or
/// Microsoft Entra, an ephemeral key minted per session); its time counts
/// against the layer's [`connect_timeout`](crate::RealtimeLayer::connect_timeout),
/// after which the client gets `504` (`provider_timeout`). It must
/// percent-encode the model into the URL (use [`url::Url::query_pairs_mut`]
/// or [`url::Url::path_segments_mut`]) so that no model string can change
/// the upstream host, path or other parameters. A [`TargetError`] refuses
/// the session with any 4xx or 5xx status, code and message; nothing is
/// dialled then.
///
/// The trait is object-safe; the layer keeps providers as `Arc<dyn Provider>`.
/// Closures `Fn(&TargetRequest<'_>) -> Result<Target, TargetError>` implement
/// it, [`async_fn`] wraps closures that return a future, and [`map_target`]
/// adjusts the target of another provider.
///
/// # Example
///
/// A provider of your own type that awaits a token:
///
/// ```
/// use tower_realtime::provider::{Provider, Target, TargetError, TargetFuture, TargetRequest};
/// use tower_realtime::{Providers, Secret};
/// use url::Url;
///
/// struct Vertex;
///
/// impl Vertex {
///     async fn access_token(&self) -> Result<Secret, TargetError> {
///         Ok(Secret::new("ya29.token")) // e.g. from a token cache that refreshes itself
///     }
/// }
///
/// impl Provider for Vertex {
///     fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
///         Box::pin(async move {
///             let token = self.access_token().await?;
///             let mut url = Url::parse("wss://vertex.example/ws").unwrap();
///             url.query_pairs_mut().append_pair("model", request.model());
///             Ok(Target::new(url).bearer(&token))
///         })
///     }
/// }
///
/// let providers = Providers::new().with("vertex", Vertex);
/// # drop(providers);
/// ```
pub trait Provider: Send + Sync + 'static {
    /// The upstream URL, credential headers and subprotocols for one session.
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a>;
}

impl<F> Provider for F
where
    F: Fn(&TargetRequest<'_>) -> Result<Target, TargetError> + Send + Sync + 'static,
{
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        ready(self(request))
    }
}

/// A provider of a closure that returns a future: it reads what it needs
/// from the request, then returns a future that owns it.
///
/// # Example
///
/// ```
/// use tower_realtime::provider::{self, Target, TargetError, TargetRequest};
/// use tower_realtime::{Providers, Secret};
/// use url::Url;
///
/// async fn mint_key(tenant: &str) -> Result<Secret, TargetError> {
///     Ok(Secret::new(format!("ek_{tenant}"))) // e.g. a call to your key service
/// }
///
/// let providers = Providers::new().with("lab", provider::async_fn(|request: &TargetRequest<'_>| {
///     let tenant = request.identity().name().to_owned();
///     let mut url = Url::parse("wss://realtime.lab.internal/v1/realtime").unwrap();
///     url.query_pairs_mut().append_pair("model", request.model());
///     async move { Ok(Target::new(url).bearer(&mint_key(&tenant).await?)) }
/// }));
/// # drop(providers);
/// ```
pub fn async_fn<F, Fut>(f: F) -> AsyncFn<F>
where
    F: Fn(&TargetRequest<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Target, TargetError>> + Send + 'static,
{
    AsyncFn(f)
}

/// The [`Provider`] made by [`async_fn`].
#[derive(Clone, Copy)]
pub struct AsyncFn<F>(F);

impl<F> std::fmt::Debug for AsyncFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AsyncFn").finish_non_exhaustive()
    }
}

impl<F, Fut> Provider for AsyncFn<F>
where
    F: Fn(&TargetRequest<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Target, TargetError>> + Send + 'static,
{
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        Box::pin((self.0)(request))
    }
}

/// The answer of a provider that needs no I/O.
pub(crate) fn ready(result: Result<Target, TargetError>) -> TargetFuture<'static> {
    Box::pin(std::future::ready(result))
}
