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

mod auth;
mod azure;
mod bailian;
mod base_url;
mod compatible;
mod env;
mod gemini;
mod keys;
mod openai;
mod protocol;
mod registry;
mod service_account;
mod session_query;
mod target;
mod token_client;
mod vertex;
mod xai;
mod zai;

pub use azure::Azure;
pub use bailian::Bailian;
pub use base_url::{ConfigError, websocket_base_url};
pub use compatible::Compatible;
pub use gemini::Gemini;
pub use keys::Keys;
pub use openai::OpenAi;
pub use protocol::Protocol;
pub use registry::Providers;
pub use service_account::{ServiceAccount, TokenError};
pub use target::{Target, TargetError, TargetRequest};
pub use vertex::{Vertex, VertexCredential};
pub use xai::Xai;
pub use zai::Zai;

/// Builds the upstream target of a session.
///
/// Implementations must be cheap: `target` runs once per session, before the
/// upstream is dialled. It must percent-encode the model into the URL (use
/// [`url::Url::query_pairs_mut`] or [`url::Url::path_segments_mut`]) so that
/// no model string can change the upstream host, path or other parameters.
///
/// The trait is object-safe; the layer keeps providers as `Arc<dyn Provider>`.
/// Closures `Fn(&TargetRequest<'_>) -> Result<Target, TargetError>` implement it.
pub trait Provider: Send + Sync + 'static {
    /// The upstream URL, credential headers and subprotocols for one session.
    fn target(&self, request: &TargetRequest<'_>) -> Result<Target, TargetError>;
}

impl<F> Provider for F
where
    F: Fn(&TargetRequest<'_>) -> Result<Target, TargetError> + Send + Sync + 'static,
{
    fn target(&self, request: &TargetRequest<'_>) -> Result<Target, TargetError> {
        self(request)
    }
}
