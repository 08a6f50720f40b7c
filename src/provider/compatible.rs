//! Any endpoint that speaks OpenAI's realtime API: self-hosted servers, other
//! gateways, a second account.

use http::HeaderValue;
use url::Url;

use super::auth::Auth;
use super::base_url::refuse_clear_text_key;
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
/// A key is refused on a plain base to a host other than loopback (it would
/// travel in clear text) unless [`Compatible::allow_insecure_transport`]
/// came first. Sessions with an `?intent=` are refused with 400
/// `unsupported_intent`.
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
///     .bearer(Secret::new("sk-lab"))
///     .unwrap();
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
    /// Keys may travel in clear text to a host other than loopback.
    insecure_transport: bool,
    /// 16-bit PCM input rates the endpoint accepts besides 24 kHz.
    pcm_input_rates: Vec<u32>,
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
            insecure_transport: false,
            pcm_input_rates: Vec::new(),
        })
    }

    /// Authenticates with `Authorization: Bearer KEY`, rotating through `keys`
    /// one session at a time. Fails on a plain (`http`/`ws`) base URL to a
    /// host other than loopback, unless [`Compatible::allow_insecure_transport`]
    /// came first.
    pub fn bearer(mut self, keys: impl Into<Keys>) -> Result<Self, ConfigError> {
        self.auth = Auth::Bearer(keys.into());
        self.check_transport()
    }

    /// Authenticates with an `api-key: KEY` header (as Azure does), rotating
    /// through `keys` one session at a time. Fails like [`Compatible::bearer`].
    pub fn api_key(mut self, keys: impl Into<Keys>) -> Result<Self, ConfigError> {
        self.auth = Auth::Header(Auth::API_KEY, keys.into());
        self.check_transport()
    }

    /// Allows keys to travel in clear text: over a plain (`http`/`ws`) base
    /// URL to a host other than loopback, such as a self-hosted upstream on
    /// a private network. Call it before the key or base URL is set.
    ///
    /// ```
    /// use tower_realtime::provider::Compatible;
    /// use tower_realtime::Secret;
    ///
    /// let lan = Compatible::new("http://10.0.0.5:8000/v1").unwrap();
    /// let error = lan.clone().bearer(Secret::new("sk-lan")).unwrap_err();
    /// assert!(error.to_string().contains("clear text"));
    /// assert!(!error.to_string().contains("sk-lan"));
    /// let allowed = lan.allow_insecure_transport().bearer(Secret::new("sk-lan"));
    /// assert!(allowed.is_ok());
    /// ```
    #[must_use]
    pub fn allow_insecure_transport(mut self) -> Self {
        self.insecure_transport = true;
        self
    }

    /// Refuses a key that would travel in clear text, unless allowed.
    fn check_transport(self) -> Result<Self, ConfigError> {
        if !self.insecure_transport && !matches!(self.auth, Auth::None) {
            refuse_clear_text_key(&self.base, Some("`allow_insecure_transport()`"))?;
        }
        Ok(self)
    }

    /// Sends `OpenAI-Beta: realtime=v1` upstream, for endpoints that still
    /// speak the beta protocol. OpenAI's GA endpoint rejects it, so it is
    /// never sent unless asked for.
    #[must_use]
    pub fn openai_beta(mut self) -> Self {
        self.openai_beta = true;
        self
    }

    /// Declares the 16-bit PCM input rates the endpoint accepts besides
    /// 24 kHz, for usage accounting: a rate the endpoint confirms in
    /// `session.updated` counts only when it is one of these (see
    /// [`Target::pcm_input_rates`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_realtime::provider::{Compatible, Provider, TargetRequest};
    ///
    /// let local = Compatible::new("http://127.0.0.1:8000/v1").unwrap().pcm_input_rates([16_000]);
    /// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
    /// let target = local.target(&TargetRequest::new("local", "m", None, &parts)).await.unwrap();
    /// assert!(target.supports_pcm_input_rate(16_000));
    /// # }
    /// ```
    #[must_use]
    pub fn pcm_input_rates(mut self, rates: impl IntoIterator<Item = u32>) -> Self {
        self.pcm_input_rates.extend(rates);
        self
    }

    /// A built-in provider: its default base URL, authenticated with
    /// `Authorization: Bearer` and `keys`.
    pub(crate) fn preset(default_base: &'static str, keys: impl Into<Keys>) -> Self {
        Self::new(default_base)
            .and_then(|preset| preset.bearer(keys))
            .expect("default base URLs are valid and secure")
    }

    /// Replaces the base URL, keeping everything else; fails like
    /// [`Compatible::bearer`].
    pub(crate) fn with_base(mut self, base: &str) -> Result<Self, ConfigError> {
        self.base = websocket_base_url(base)?;
        self.check_transport()
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
        let mut target = Target::new(url).pcm_input_rates(self.pcm_input_rates.iter().copied());
        if self.openai_beta {
            target = target.header(
                http::HeaderName::from_static("openai-beta"),
                HeaderValue::from_static("realtime=v1"),
            );
        }
        Ok(self.auth.apply(target))
    }
}
