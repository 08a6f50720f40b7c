//! Google's Gemini Live on the Gemini Developer API.

use http::HeaderName;
use url::Url;

use super::base_url::keyed_base_url;
use super::{
    ConfigError, Keys, Protocol, Provider, Target, TargetError, TargetFuture, TargetRequest, ready,
    websocket_base_url,
};
use crate::translate::gemini::{Backend, GeminiConfig};

/// The header the Gemini API reads its key from.
const API_KEY_HEADER: &str = "x-goog-api-key";

/// Gemini Live on the Gemini Developer API:
/// `wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent`,
/// the key in the `x-goog-api-key` header (never in the URL).
///
/// Gemini does not speak OpenAI's realtime schema: its targets are marked
/// [`Protocol::GeminiLive`], so sessions run a
/// [`GeminiTranslator`](crate::translate::gemini::GeminiTranslator) with the
/// model `models/M`.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_realtime::provider::{Gemini, Protocol, Provider, TargetRequest};
/// use tower_realtime::Secret;
///
/// let gemini = Gemini::new(Secret::new("AIza-test"));
/// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
/// let target = gemini.target(&TargetRequest::new("gemini", "gemini-live-2.5-flash-preview", None, &parts)).await.unwrap();
/// assert_eq!(
///     target.url().as_str(),
///     "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent"
/// );
/// assert_eq!(target.headers()["x-goog-api-key"], "AIza-test");
/// let Protocol::GeminiLive(config) = target.upstream_protocol() else { panic!() };
/// assert_eq!(config.model(), "models/gemini-live-2.5-flash-preview");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Gemini {
    base: Url,
    version: String,
    keys: Keys,
    insecure_transport: bool,
    reconfigure_by_resuming: bool,
}

impl Gemini {
    /// The Gemini API's public base URL.
    pub const DEFAULT_BASE_URL: &'static str = "https://generativelanguage.googleapis.com";
    /// The API version in the path; `v1beta` and `v1alpha` exist too.
    pub const DEFAULT_API_VERSION: &'static str = "v1";

    /// The Gemini API at its public base URL, authenticated with `keys`.
    pub fn new(keys: impl Into<Keys>) -> Self {
        Self {
            base: websocket_base_url(Self::DEFAULT_BASE_URL).expect("a valid default base URL"),
            version: Self::DEFAULT_API_VERSION.to_owned(),
            keys: keys.into(),
            insecure_transport: false,
            reconfigure_by_resuming: true,
        }
    }

    /// Uses another host (`https://…`, or `http://127.0.0.1:PORT` for a
    /// local upstream); the Live path is appended to its path. A plain
    /// (`http`/`ws`) host other than loopback is refused, unless
    /// [`Gemini::allow_insecure_transport`] was called first: the key would
    /// travel in clear text.
    ///
    /// ```
    /// use tower_realtime::provider::Gemini;
    /// use tower_realtime::Secret;
    ///
    /// assert!(Gemini::new(Secret::new("k")).base_url("http://gemini.lan").is_err());
    /// assert!(Gemini::new(Secret::new("k")).allow_insecure_transport().base_url("http://gemini.lan").is_ok());
    /// ```
    pub fn base_url(mut self, base: &str) -> Result<Self, ConfigError> {
        self.base = keyed_base_url(base, self.insecure_transport)?;
        Ok(self)
    }

    /// Allows the key to travel in clear text, over a plain base URL to a
    /// host other than loopback. Call it before [`Gemini::base_url`].
    #[must_use]
    pub fn allow_insecure_transport(mut self) -> Self {
        self.insecure_transport = true;
        self
    }

    /// Uses another API version (`v1beta`, `v1alpha`).
    ///
    /// ```
    /// use tower_realtime::provider::Gemini;
    /// use tower_realtime::Secret;
    ///
    /// assert!(Gemini::new(Secret::new("k")).api_version("v1beta").is_ok());
    /// assert!(Gemini::new(Secret::new("k")).api_version("v1/../x").is_err());
    /// ```
    pub fn api_version(mut self, version: &str) -> Result<Self, ConfigError> {
        self.version = checked_version(version)?;
        Ok(self)
    }

    /// Whether a `session.update` that Gemini cannot apply in place
    /// (instructions, voice, tools, turn detection after the setup) is
    /// applied by resuming the session on a fresh connection (on by
    /// default), or refused with an `error` event
    /// (`unsupported_session_update`); see
    /// [`GeminiConfig::reconfigure_by_resuming`].
    ///
    /// ```
    /// use tower_realtime::provider::Gemini;
    /// use tower_realtime::Secret;
    ///
    /// let gemini = Gemini::new(Secret::new("k")).reconfigure_by_resuming(false);
    /// # drop(gemini);
    /// ```
    #[must_use]
    pub fn reconfigure_by_resuming(mut self, on: bool) -> Self {
        self.reconfigure_by_resuming = on;
        self
    }
}

impl Provider for Gemini {
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        ready(self.build(request))
    }
}

impl Gemini {
    /// The target of one session; building it needs no I/O.
    fn build(&self, request: &TargetRequest<'_>) -> Result<Target, TargetError> {
        let mut url = self.base.clone();
        let path = format!(
            "{}/ws/google.ai.generativelanguage.{}.GenerativeService.BidiGenerateContent",
            url.path().trim_end_matches('/'),
            self.version
        );
        url.set_path(&path);
        let model = request.model();
        let model = if model.starts_with("models/") {
            model.to_owned()
        } else {
            format!("models/{model}")
        };
        Ok(Target::new(url)
            .api_key(HeaderName::from_static(API_KEY_HEADER), self.keys.pick())
            .protocol(Protocol::GeminiLive(
                GeminiConfig::new(Backend::GeminiApi, model)
                    .reconfigure_by_resuming(self.reconfigure_by_resuming),
            )))
    }
}

/// An API version: ASCII letters and digits only (it goes into the path).
pub(super) fn checked_version(version: &str) -> Result<String, ConfigError> {
    let version = version.trim();
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ConfigError::new(format!(
            "API version `{version}` must be letters and digits, e.g. v1"
        )));
    }
    Ok(version.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn local_base_version_and_no_key_in_the_url() {
        let gemini = Gemini::new(Secret::new("AIza-secret"))
            .base_url("http://127.0.0.1:9/prefix/")
            .unwrap()
            .api_version("v1beta")
            .unwrap();
        let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        let target = gemini
            .build(&TargetRequest::new("gemini", "models/x", None, &parts))
            .unwrap();
        assert_eq!(
            target.url().as_str(),
            "ws://127.0.0.1:9/prefix/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
        );
        assert!(target.headers()["x-goog-api-key"].is_sensitive());
        let Protocol::GeminiLive(config) = target.upstream_protocol() else {
            panic!("translated")
        };
        assert_eq!(config.model(), "models/x");
        assert!(!format!("{target:?} {gemini:?}").contains("AIza-secret"));
    }

    #[test]
    fn session_updates_are_applied_by_resuming_unless_turned_off() {
        let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        let config = |gemini: Gemini| {
            let target = gemini
                .build(&TargetRequest::new("gemini", "m", None, &parts))
                .unwrap();
            let Protocol::GeminiLive(config) = target.upstream_protocol().clone() else {
                panic!("translated")
            };
            config
        };
        let default = GeminiConfig::new(Backend::GeminiApi, "models/m");
        assert_eq!(config(Gemini::new(Secret::new("k"))), default);
        assert_eq!(
            config(Gemini::new(Secret::new("k")).reconfigure_by_resuming(false)),
            default.reconfigure_by_resuming(false)
        );
    }
}
