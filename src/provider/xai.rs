//! xAI's Grok voice agent.

use super::{Compatible, ConfigError, Keys, Provider, TargetFuture, TargetRequest, ready};

/// xAI's realtime (voice agent) API: `wss://api.x.ai/v1/realtime?model=M`
/// with `Authorization: Bearer KEY`.
///
/// Like OpenAI's, the endpoint is `/realtime` under the base URL. Sessions
/// with an `?intent=` are refused with 400 `unsupported_intent`. Its 16-bit
/// PCM input is 24 kHz unless the session picks another of the rates xAI
/// accepts (8 to 48 kHz), which usage accounting believes once xAI confirms it.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_realtime::provider::{Provider, TargetRequest, Xai};
/// use tower_realtime::Secret;
///
/// let xai = Xai::new(Secret::new("xai-123"));
/// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
/// let target = xai.target(&TargetRequest::new("xai", "grok-voice", None, &parts)).await.unwrap();
/// assert_eq!(target.url().as_str(), "wss://api.x.ai/v1/realtime?model=grok-voice");
/// assert_eq!(target.headers()["authorization"], "Bearer xai-123");
/// assert!(target.supports_pcm_input_rate(16_000));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Xai(Compatible);

impl Xai {
    /// xAI's public API base URL.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.x.ai/v1";
    /// The 16-bit PCM input rates xAI accepts besides its default (24 kHz).
    const PCM_INPUT_RATES: [u32; 6] = [8_000, 16_000, 22_050, 32_000, 44_100, 48_000];

    /// xAI at its public base URL, authenticated with `keys`.
    pub fn new(keys: impl Into<Keys>) -> Self {
        Self(Compatible::preset(Self::DEFAULT_BASE_URL, keys))
    }

    /// Uses another base URL; `/realtime` is appended to its path.
    pub fn base_url(self, base: &str) -> Result<Self, ConfigError> {
        Ok(Self(self.0.with_base(base)?))
    }

    /// Allows the key to travel in clear text, over a plain (`http`/`ws`)
    /// base URL to a host other than loopback; without it, such a base URL
    /// is refused. Call it before [`Xai::base_url`].
    #[must_use]
    pub fn allow_insecure_transport(self) -> Self {
        Self(self.0.allow_insecure_transport())
    }
}

impl Provider for Xai {
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        ready(
            self.0
                .build(request)
                .map(|target| target.pcm_input_rates(Self::PCM_INPUT_RATES)),
        )
    }
}
