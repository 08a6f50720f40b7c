//! Z.ai (Zhipu AI, BigModel) GLM-Realtime.

use super::{Compatible, ConfigError, Keys, Provider, TargetFuture, TargetRequest, ready};

/// Z.ai / Zhipu GLM-Realtime: `wss://HOST/api/paas/v4/realtime?model=M` with
/// `Authorization: Bearer KEY`.
///
/// Only the base URL's host counts (`api.z.ai`, or `open.bigmodel.cn` for
/// mainland China): the realtime path is always `/api/paas/v4/realtime`, so
/// the Coding Plan base (`/api/coding/paas/v4`) maps to it too. Sessions with
/// an `?intent=` are refused with 400 `unsupported_intent`.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_realtime::provider::{Provider, TargetRequest, Zai};
/// use tower_realtime::Secret;
///
/// let zai = Zai::new(Secret::new("zai-key")).base_url("https://api.z.ai/api/coding/paas/v4").unwrap();
/// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
/// let target = zai.target(&TargetRequest::new("zai", "glm-realtime", None, &parts)).await.unwrap();
/// assert_eq!(target.url().as_str(), "wss://api.z.ai/api/paas/v4/realtime?model=glm-realtime");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Zai(Compatible);

impl Zai {
    /// Z.ai's international base URL.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.z.ai/api/paas/v4";
    /// Zhipu's BigModel base URL for mainland China.
    pub const CHINA_BASE_URL: &'static str = "https://open.bigmodel.cn/api/paas/v4";
    /// The realtime path on every host.
    const REALTIME_PATH: &'static str = "/api/paas/v4/realtime";

    /// Z.ai at its international base URL, authenticated with `keys`.
    pub fn new(keys: impl Into<Keys>) -> Self {
        Self(Compatible::preset(Self::DEFAULT_BASE_URL, keys).pinned_path(Self::REALTIME_PATH))
    }

    /// Uses another host; the base URL's path is ignored.
    pub fn base_url(self, base: &str) -> Result<Self, ConfigError> {
        Ok(Self(self.0.with_base(base)?))
    }

    /// Allows the key to travel in clear text, over a plain (`http`/`ws`)
    /// base URL to a host other than loopback; without it, such a base URL
    /// is refused. Call it before [`Zai::base_url`].
    #[must_use]
    pub fn allow_insecure_transport(self) -> Self {
        Self(self.0.allow_insecure_transport())
    }
}

impl Provider for Zai {
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        ready(self.0.build(request))
    }
}
