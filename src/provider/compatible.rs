//! Any endpoint that speaks OpenAI's realtime API: self-hosted servers, other
//! gateways, a second account.

use http::HeaderValue;
use url::Url;

use super::auth::Auth;
use super::session_query::{Intents, append_session};
use super::{
    ConfigError, Keys, Provider, Target, TargetError, TargetFuture, TargetRequest, ready,
    websocket_base_url,
};

/// An OpenAI-compatible realtime endpoint: `BASE/realtime?model=M`, with a
/// Bearer key, an `api-key` header or no credential at all.
///
/// The base URL is what the endpoint's OpenAI SDK users would configure
/// (`http://127.0.0.1:8000/v1` for a local vLLM); `/realtime` is appended to
/// its path. `https`/`wss` bases are dialled over TLS, `http`/`ws` in plain.
/// Sessions with an `?intent=` are refused with 400 `unsupported_intent`.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_realtime::provider::{Compatible, Provider, TargetRequest};
/// use tower_realtime::{Providers, Secret};
///
/// let local = Compatible::new("http://127.0.0.1:8000/v1").unwrap();
/// let lab = Compatible::new("https://realtime.lab.example/v1")
///     .unwrap()
///     .bearer(Secret::new("sk-lab"));
/// let providers = Providers::new().with("local", local.clone()).with("lab", lab);
/// assert_eq!(providers.names().collect::<Vec<_>>(), ["lab", "local"]);
///
/// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
/// let target = local.target(&TargetRequest::new("local", "my-model", None, &parts)).await.unwrap();
/// assert_eq!(target.url().as_str(), "ws://127.0.0.1:8000/v1/realtime?model=my-model");
/// assert!(target.headers().is_empty());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Compatible {
    base: Url,
    path: RealtimePath,
    auth: Auth,
    intents: Intents,
    openai_beta: bool,
}

/// Where the realtime endpoint sits relative to the base URL.
#[derive(Debug, Clone, Copy)]
enum RealtimePath {
    /// `/realtime` after the base URL's path.
    Appended,
    /// This absolute path on the base URL's host, whatever the base's path.
    Pinned(&'static str),
}

impl Compatible {
    /// An endpoint at `base` that gets no credential. Fails on a base URL
    /// that is not `https`, `http`, `wss` or `ws`, or has a query.
    pub fn new(base: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            base: websocket_base_url(base)?,
            path: RealtimePath::Appended,
            auth: Auth::None,
            intents: Intents::None,
            openai_beta: false,
        })
    }

    /// Authenticates with `Authorization: Bearer KEY`, rotating through `keys`
    /// one session at a time.
    #[must_use]
    pub fn bearer(mut self, keys: impl Into<Keys>) -> Self {
        self.auth = Auth::Bearer(keys.into());
        self
    }

    /// Authenticates with an `api-key: KEY` header (as Azure does), rotating
    /// through `keys` one session at a time.
    #[must_use]
    pub fn api_key(mut self, keys: impl Into<Keys>) -> Self {
        self.auth = Auth::Header(Auth::API_KEY, keys.into());
        self
    }

    /// Sends `OpenAI-Beta: realtime=v1` upstream, for endpoints that still
    /// speak the beta protocol. OpenAI's GA endpoint rejects it, so it is
    /// never sent unless asked for.
    #[must_use]
    pub fn openai_beta(mut self) -> Self {
        self.openai_beta = true;
        self
    }

    /// A built-in provider: its default base URL, authenticated with
    /// `Authorization: Bearer` and `keys`.
    pub(crate) fn preset(default_base: &'static str, keys: impl Into<Keys>) -> Self {
        Self::new(default_base)
            .expect("default base URLs are valid")
            .bearer(keys)
    }

    /// Replaces the base URL, keeping everything else.
    pub(crate) fn with_base(mut self, base: &str) -> Result<Self, ConfigError> {
        self.base = websocket_base_url(base)?;
        Ok(self)
    }

    /// Serves the realtime endpoint at `path` on the base URL's host,
    /// ignoring the base URL's own path.
    pub(crate) fn pinned_path(mut self, path: &'static str) -> Self {
        self.path = RealtimePath::Pinned(path);
        self
    }

    /// Passes `?intent=transcription` upstream instead of the model.
    pub(crate) fn transcription(mut self) -> Self {
        self.intents = Intents::Transcription;
        self
    }
}

impl Provider for Compatible {
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        ready(self.build(request))
    }
}

impl Compatible {
    /// The target of one session; building it needs no I/O.
    pub(crate) fn build(&self, request: &TargetRequest<'_>) -> Result<Target, TargetError> {
        let mut url = self.base.clone();
        match self.path {
            RealtimePath::Appended => {
                url.path_segments_mut()
                    .map_err(|()| TargetError::misconfigured("the base URL cannot have a path"))?
                    .pop_if_empty()
                    .push("realtime");
            }
            RealtimePath::Pinned(path) => url.set_path(path),
        }
        append_session(&mut url, request, "model", self.intents)?;
        let mut target = Target::new(url);
        if self.openai_beta {
            target = target.header(
                http::HeaderName::from_static("openai-beta"),
                HeaderValue::from_static("realtime=v1"),
            );
        }
        Ok(self.auth.apply(target))
    }
}
