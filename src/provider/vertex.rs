//! Google's Gemini Live on Vertex AI.

use http::{HeaderName, HeaderValue};
use url::Url;

use super::base_url::keyed_base_url;
use super::gemini::checked_version;
use super::{
    ConfigError, Keys, Protocol, Provider, ServiceAccount, Target, TargetError, TargetFuture,
    TargetRequest, ready, websocket_base_url,
};
use crate::secret::Secret;
use crate::translate::gemini::{Backend, GeminiConfig};

/// How Vertex AI sessions authenticate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum VertexCredential {
    /// OAuth access tokens of a service account (`Authorization: Bearer`).
    ServiceAccount(ServiceAccount),
    /// An express-mode API key (`x-goog-api-key`).
    ApiKey(Keys),
}

/// Gemini Live on Vertex AI:
/// `wss://{LOCATION}-aiplatform.googleapis.com/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent`
/// (`aiplatform.googleapis.com` for `global`, `aiplatform.{us|eu}.rep.googleapis.com`
/// for the multi-regions), with the model
/// `projects/P/locations/L/publishers/google/models/M`.
///
/// Service-account tokens come from a [`ServiceAccount`], cached and
/// refreshed before expiry, so every connection (a new session, or a
/// resumption after Gemini's `goAway`) gets a valid one. Targets are marked
/// [`Protocol::GeminiLive`]: input audio is resampled to 16 kHz (Vertex
/// documents 16 kHz input only) and function responses carry no `id`.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_realtime::provider::{Protocol, Provider, TargetRequest, Vertex};
/// use tower_realtime::Secret;
///
/// let vertex = Vertex::express(Secret::new("vertex-key"));
/// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
/// let target = vertex.target(&TargetRequest::new("vertex", "gemini-live-2.5-flash", None, &parts)).await.unwrap();
/// assert_eq!(
///     target.url().as_str(),
///     "wss://aiplatform.googleapis.com/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent"
/// );
/// let Protocol::GeminiLive(config) = target.upstream_protocol() else { panic!() };
/// assert_eq!(config.model(), "publishers/google/models/gemini-live-2.5-flash");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Vertex {
    base: Url,
    version: String,
    /// `projects/P/locations/L/`, or empty in express mode without a project.
    scope: Option<(String, String)>,
    credential: VertexCredential,
    insecure_transport: bool,
    reconfigure_by_resuming: bool,
}

impl Vertex {
    /// The API version in the path (`v1beta1` exists too).
    pub const DEFAULT_API_VERSION: &'static str = "v1";

    /// Vertex AI in `project` and `location` (`us-central1`, `europe-west4`,
    /// `global`, `us`, `eu`, …).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_realtime::provider::{Provider, TargetRequest, Vertex, VertexCredential};
    /// use tower_realtime::Secret;
    ///
    /// let key = VertexCredential::ApiKey(Secret::new("k").into());
    /// let vertex = Vertex::new("my-project", "eu", key).unwrap();
    /// let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    /// let target = vertex.target(&TargetRequest::new("vertex", "m", None, &parts)).await.unwrap();
    /// assert_eq!(target.url().host_str(), Some("aiplatform.eu.rep.googleapis.com"));
    /// assert!(Vertex::new("my project", "eu", VertexCredential::ApiKey(Secret::new("k").into())).is_err());
    /// # }
    /// ```
    pub fn new(
        project: &str,
        location: &str,
        credential: VertexCredential,
    ) -> Result<Self, ConfigError> {
        let project = checked_name("project", project)?;
        let location = checked_name("location", location)?;
        let host = match location.as_str() {
            "global" => "aiplatform.googleapis.com".to_owned(),
            "us" | "eu" => format!("aiplatform.{location}.rep.googleapis.com"),
            regional => format!("{regional}-aiplatform.googleapis.com"),
        };
        Ok(Self {
            base: websocket_base_url(&format!("https://{host}"))?,
            version: Self::DEFAULT_API_VERSION.to_owned(),
            scope: Some((project, location)),
            credential,
            insecure_transport: false,
            reconfigure_by_resuming: true,
        })
    }

    /// Express mode: an API key, no project, the global host.
    pub fn express(keys: impl Into<Keys>) -> Self {
        Self {
            base: websocket_base_url("https://aiplatform.googleapis.com").expect("a valid host"),
            version: Self::DEFAULT_API_VERSION.to_owned(),
            scope: None,
            credential: VertexCredential::ApiKey(keys.into()),
            insecure_transport: false,
            reconfigure_by_resuming: true,
        }
    }

    /// Uses another host (`https://…`, or `http://127.0.0.1:PORT` locally).
    /// A plain (`http`/`ws`) host other than loopback is refused, unless
    /// [`Vertex::allow_insecure_transport`] was called first.
    pub fn base_url(mut self, base: &str) -> Result<Self, ConfigError> {
        self.base = keyed_base_url(base, self.insecure_transport)?;
        Ok(self)
    }

    /// Allows credentials to travel in clear text, over a plain base URL to
    /// a host other than loopback. Call it before [`Vertex::base_url`].
    #[must_use]
    pub fn allow_insecure_transport(mut self) -> Self {
        self.insecure_transport = true;
        self
    }

    /// Uses another API version (`v1beta1`).
    pub fn api_version(mut self, version: &str) -> Result<Self, ConfigError> {
        self.version = checked_version(version)?;
        Ok(self)
    }

    /// Whether a `session.update` that Gemini cannot apply in place is
    /// applied by resuming the session on a fresh connection (on by
    /// default), or refused with an `error` event
    /// (`unsupported_session_update`); see
    /// [`GeminiConfig::reconfigure_by_resuming`].
    #[must_use]
    pub fn reconfigure_by_resuming(mut self, on: bool) -> Self {
        self.reconfigure_by_resuming = on;
        self
    }

    /// The target with a valid access token, fetching one if needed.
    ///
    /// [`Provider::target`] uses the cached token while it is valid
    /// (refreshing it in the background when it nears expiry) and waits for
    /// this only when there is none; a grant the token endpoint refuses is
    /// 503 `token_unavailable`.
    pub async fn target_with_fresh_token(
        &self,
        request: &TargetRequest<'_>,
    ) -> Result<Target, TargetError> {
        let token = match &self.credential {
            VertexCredential::ServiceAccount(account) => {
                Some(account.token().await.map_err(|error| {
                    TargetError::unavailable("token_unavailable", error.to_string())
                })?)
            }
            VertexCredential::ApiKey(_) => None,
        };
        Ok(self.build(request, token))
    }

    fn build(&self, request: &TargetRequest<'_>, token: Option<Secret>) -> Target {
        let mut url = self.base.clone();
        let path = format!(
            "{}/ws/google.cloud.aiplatform.{}.LlmBidiService/BidiGenerateContent",
            url.path().trim_end_matches('/'),
            self.version
        );
        url.set_path(&path);
        let model = request.model();
        let model = if model.starts_with("projects/") {
            model.to_owned()
        } else {
            let model = model
                .strip_prefix("publishers/google/models/")
                .unwrap_or(model);
            match &self.scope {
                Some((project, location)) => {
                    format!(
                        "projects/{project}/locations/{location}/publishers/google/models/{model}"
                    )
                }
                None => format!("publishers/google/models/{model}"),
            }
        };
        let mut target = Target::new(url);
        target = match (&self.credential, token) {
            (VertexCredential::ApiKey(keys), _) => {
                target.api_key(HeaderName::from_static("x-goog-api-key"), keys.pick())
            }
            (VertexCredential::ServiceAccount(_), Some(token)) => target.bearer(&token),
            (VertexCredential::ServiceAccount(_), None) => target,
        };
        if let (Some((project, _)), VertexCredential::ServiceAccount(_)) =
            (&self.scope, &self.credential)
            && let Ok(value) = HeaderValue::from_str(project)
        {
            target = target.header(HeaderName::from_static("x-goog-user-project"), value);
        }
        target.protocol(Protocol::GeminiLive(
            GeminiConfig::new(Backend::Vertex, model)
                .reconfigure_by_resuming(self.reconfigure_by_resuming),
        ))
    }
}

impl Provider for Vertex {
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        // No valid token (the first session, or none dialled while the last
        // one neared expiry): wait for one rather than refuse, so a
        // resumption after Gemini's `goAway` does not fail on an old token.
        if let VertexCredential::ServiceAccount(account) = &self.credential
            && account.cached_token().is_none()
        {
            return Box::pin(self.target_with_fresh_token(request));
        }
        ready(self.cached_target(request))
    }
}

impl Vertex {
    /// The target with the cached access token (refreshed in the background
    /// when it nears expiry), or 503 `token_unavailable` while there is none.
    fn cached_target(&self, request: &TargetRequest<'_>) -> Result<Target, TargetError> {
        let token = match &self.credential {
            VertexCredential::ServiceAccount(account) => {
                if account.needs_refresh() {
                    refresh_in_background(account);
                }
                Some(account.cached_token().ok_or_else(|| {
                    TargetError::unavailable(
                        "token_unavailable",
                        "the Vertex AI access token is being fetched; retry shortly",
                    )
                })?)
            }
            VertexCredential::ApiKey(_) => None,
        };
        Ok(self.build(request, token))
    }
}

/// Starts a token fetch on the current runtime, if there is one.
fn refresh_in_background(account: &ServiceAccount) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let account = account.clone();
    runtime.spawn(async move {
        if let Err(error) = account.token().await {
            tracing::warn!(%error, "Vertex AI access token refresh failed");
        }
    });
}

/// A project id or location: lowercase letters, digits and `-`.
fn checked_name(what: &str, value: &str) -> Result<String, ConfigError> {
    let value = value.trim();
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ConfigError::new(format!(
            "Vertex AI {what} `{value}` must be lowercase letters, digits and `-`"
        )));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(vertex: &Vertex, model: &str) -> Result<Target, TargetError> {
        let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        vertex.cached_target(&TargetRequest::new("vertex", model, None, &parts))
    }

    #[test]
    fn hosts_by_location() {
        let key = || VertexCredential::ApiKey(Secret::new("k").into());
        let host = |location| {
            let vertex = Vertex::new("p", location, key()).unwrap();
            target(&vertex, "m")
                .unwrap()
                .url()
                .host_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(host("us-central1"), "us-central1-aiplatform.googleapis.com");
        assert_eq!(host("global"), "aiplatform.googleapis.com");
        assert_eq!(host("us"), "aiplatform.us.rep.googleapis.com");
        let vertex = Vertex::new("p", "us-central1", key()).unwrap();
        let Protocol::GeminiLive(config) = target(&vertex, "gemini-live-2.5-flash")
            .unwrap()
            .upstream_protocol()
            .clone()
        else {
            panic!()
        };
        assert_eq!(
            config.model(),
            "projects/p/locations/us-central1/publishers/google/models/gemini-live-2.5-flash"
        );
        assert_eq!(config.input_rate(), Some(16_000));
        let vertex = vertex.reconfigure_by_resuming(false);
        let Protocol::GeminiLive(fixed) = target(&vertex, "gemini-live-2.5-flash")
            .unwrap()
            .upstream_protocol()
            .clone()
        else {
            panic!()
        };
        assert_eq!(fixed, config.reconfigure_by_resuming(false));
    }

    #[test]
    fn without_a_token_the_cache_alone_answers_503() {
        let account =
            ServiceAccount::from_json(include_str!("../../tests/fixtures/service-account.json"))
                .unwrap();
        let vertex = Vertex::new("p", "global", VertexCredential::ServiceAccount(account)).unwrap();
        let error = target(&vertex, "m").unwrap_err();
        assert_eq!(error.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code(), "token_unavailable");
    }
}
