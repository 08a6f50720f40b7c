//! Alibaba Cloud Model Studio (Bailian), the DashScope API.

use super::{Compatible, ConfigError, Keys, Provider, TargetFuture, TargetRequest, ready};

/// Alibaba Cloud Model Studio (Bailian / DashScope) realtime models such as
/// Qwen-Omni-Realtime: `wss://HOST/api-ws/v1/realtime?model=M` with
/// `Authorization: Bearer KEY`.
///
/// The base URL is the one DashScope's OpenAI-compatible mode documents
/// (`https://dashscope.aliyuncs.com/compatible-mode/v1`); only its host
/// counts, which picks the region or workspace (for example
/// `dashscope-intl.aliyuncs.com`, or `WORKSPACE.ap-southeast-1.maas.aliyuncs.com`).
/// The realtime path is always `/api-ws/v1/realtime`, never under
/// `/compatible-mode`. Sessions with an `?intent=` are refused with 400
/// `unsupported_intent`. DashScope's 16-bit PCM input (`pcm16`, `pcm`) is
/// 16 kHz, which usage accounting takes into account.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_realtime::provider::{Bailian, Provider, TargetRequest};
/// use tower_realtime::Secret;
///
/// let intl = Bailian::new(Secret::new("sk-ds")).base_url(Bailian::INTL_BASE_URL).unwrap();
/// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
/// let target = intl.target(&TargetRequest::new("bailian", "qwen-omni-turbo-realtime", None, &parts)).await.unwrap();
/// assert_eq!(
///     target.url().as_str(),
///     "wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime?model=qwen-omni-turbo-realtime"
/// );
/// assert_eq!(target.default_pcm_input_rate(), 16_000);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Bailian(Compatible);

impl Bailian {
    /// The mainland China (Beijing) base URL.
    pub const DEFAULT_BASE_URL: &'static str = "https://dashscope.aliyuncs.com/compatible-mode/v1";
    /// The international (Singapore) base URL.
    pub const INTL_BASE_URL: &'static str =
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1";
    /// The realtime path on every DashScope host.
    const REALTIME_PATH: &'static str = "/api-ws/v1/realtime";
    /// DashScope's 16-bit PCM input is sampled at 16 kHz.
    const PCM_INPUT_RATE: u32 = 16_000;

    /// Bailian in mainland China, authenticated with `keys`.
    pub fn new(keys: impl Into<Keys>) -> Self {
        Self(Compatible::preset(Self::DEFAULT_BASE_URL, keys).pinned_path(Self::REALTIME_PATH))
    }

    /// Uses another host (region or workspace); the base URL's path is ignored.
    pub fn base_url(self, base: &str) -> Result<Self, ConfigError> {
        Ok(Self(self.0.with_base(base)?))
    }

    /// Allows the key to travel in clear text, over a plain (`http`/`ws`)
    /// base URL to a host other than loopback; without it, such a base URL
    /// is refused. Call it before [`Bailian::base_url`].
    #[must_use]
    pub fn allow_insecure_transport(self) -> Self {
        Self(self.0.allow_insecure_transport())
    }
}

impl Provider for Bailian {
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        ready(
            self.0
                .build(request)
                .map(|target| target.pcm_input_rate(Self::PCM_INPUT_RATE)),
        )
    }
}
