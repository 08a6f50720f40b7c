//! OpenAI and any endpoint that copies its realtime API.

use super::{Compatible, ConfigError, Keys, Provider, Target, TargetFuture, TargetRequest, ready};

/// OpenAI's realtime API: `wss://api.openai.com/v1/realtime?model=M` with
/// `Authorization: Bearer KEY`.
///
/// The base URL is configurable, so the same provider serves any
/// OpenAI-compatible endpoint, including plain `ws`/`http` ones on a local
/// network. `?intent=transcription` sessions are passed upstream as
/// `?intent=transcription` without the model, which then only routes inside
/// the gateway (OpenAI refuses a transcription model as the session model).
/// Several keys rotate one session at a time (see [`Keys`]).
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_realtime::provider::{OpenAi, Provider, TargetRequest};
/// use tower_realtime::Secret;
///
/// let openai = OpenAi::new(Secret::new("sk-123"));
/// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
/// let target = openai.target(&TargetRequest::new("openai", "gpt-realtime", None, &parts)).await.unwrap();
/// assert_eq!(target.url().as_str(), "wss://api.openai.com/v1/realtime?model=gpt-realtime");
/// assert!(target.headers().get("openai-beta").is_none());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct OpenAi(Compatible);

impl OpenAi {
    /// OpenAI's public API base URL.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com/v1";

    /// OpenAI at its public base URL, authenticated with `keys` (one
    /// [`Secret`](crate::Secret), or several [`Keys`] in rotation).
    pub fn new(keys: impl Into<Keys>) -> Self {
        Self(Compatible::preset(Self::DEFAULT_BASE_URL, keys).transcription())
    }

    /// Uses another base URL (`https://…/v1`, or `http://127.0.0.1:PORT/v1`
    /// for a local upstream); `/realtime` is appended to its path.
    pub fn base_url(self, base: &str) -> Result<Self, ConfigError> {
        Ok(Self(self.0.with_base(base)?))
    }

    /// Allows the key to travel in clear text, over a plain (`http`/`ws`)
    /// base URL to a host other than loopback; without it, such a base URL
    /// is refused. Call it before [`OpenAi::base_url`].
    #[must_use]
    pub fn allow_insecure_transport(self) -> Self {
        Self(self.0.allow_insecure_transport())
    }

    /// Sends `OpenAI-Beta: realtime=v1`, for an endpoint that still speaks
    /// the beta protocol. OpenAI's GA endpoint rejects it: leave it off there.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_realtime::provider::{OpenAi, Provider, TargetRequest};
    /// use tower_realtime::Secret;
    ///
    /// let beta = OpenAi::new(Secret::new("sk-123")).openai_beta();
    /// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
    /// let target = beta.target(&TargetRequest::new("openai", "m", None, &parts)).await.unwrap();
    /// assert_eq!(target.headers()["openai-beta"], "realtime=v1");
    /// # }
    /// ```
    #[must_use]
    pub fn openai_beta(self) -> Self {
        Self(self.0.openai_beta())
    }
}

impl Provider for OpenAi {
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        ready(self.0.build(request).map(Target::webrtc_calls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::TargetError;
    use crate::secret::Secret;

    fn target(provider: &OpenAi, model: &str, intent: Option<&str>) -> Result<Target, TargetError> {
        let (parts, ()) = http::Request::get("/v1/realtime")
            .body(())
            .unwrap()
            .into_parts();
        provider
            .0
            .build(&TargetRequest::new("openai", model, intent, &parts))
    }

    #[test]
    fn encodes_the_model_into_the_query_only() {
        let openai = OpenAi::new(Secret::new("k"));
        let url = target(&openai, "a&b=c/../#x?y", None)
            .unwrap()
            .url()
            .clone();
        assert_eq!(url.host_str(), Some("api.openai.com"));
        assert_eq!(url.path(), "/v1/realtime");
        let pairs: Vec<_> = url.query_pairs().collect();
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].1, "a&b=c/../#x?y");
    }

    #[test]
    fn local_base_and_transcription_intent() {
        let local = OpenAi::new(Secret::new("k"))
            .base_url("http://127.0.0.1:9/v1/")
            .unwrap();
        let url = target(&local, "whisper-1", Some("transcription"))
            .unwrap()
            .url()
            .clone();
        assert_eq!(
            url.as_str(),
            "ws://127.0.0.1:9/v1/realtime?intent=transcription"
        );
        assert_eq!(
            target(&local, "m", Some("other")).unwrap_err().status(),
            http::StatusCode::BAD_REQUEST
        );
    }
}
