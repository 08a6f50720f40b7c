//! Azure OpenAI (Microsoft Foundry) realtime deployments.

use url::Url;

use super::auth::Auth;
use super::base_url::refuse_clear_text_key;
use super::session_query::{Intents, append_session};
use super::{
    ConfigError, Keys, Provider, Target, TargetError, TargetFuture, TargetRequest, ready,
    websocket_base_url,
};

/// Azure OpenAI realtime deployments, authenticated with an `api-key` header.
///
/// The model a client asks for (`?model=azure/DEPLOYMENT`) is the deployment
/// name. Two URL shapes exist:
///
/// - GA (the default): `wss://RES.openai.azure.com/openai/v1/realtime?model=DEPLOYMENT`,
///   without `api-version`;
/// - preview, chosen by [`api_version`](Self::api_version):
///   `wss://RES.openai.azure.com/openai/realtime?api-version=V&deployment=DEPLOYMENT`.
///
/// The base URL is the resource root (`https://RES.openai.azure.com`, or a
/// `cognitiveservices.azure.com` / `services.ai.azure.com` host); the SDK
/// spellings with `/openai`, `/openai/v1` or `/openai/deployments/NAME`
/// appended are accepted too and mean the same root. Any other path is kept
/// as a prefix, for a resource behind a reverse proxy.
///
/// `?intent=transcription` sessions are passed upstream as
/// `?intent=transcription` without the deployment, which then only routes
/// inside the gateway. Several keys rotate one session at a time.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_realtime::provider::{Azure, Provider, TargetRequest};
/// use tower_realtime::Secret;
///
/// let azure = Azure::new("https://my-res.openai.azure.com/openai/v1/", Secret::new("az-key")).unwrap();
/// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
/// let request = TargetRequest::new("azure", "my-realtime", None, &parts);
/// let target = azure.target(&request).await.unwrap();
/// assert_eq!(target.url().as_str(), "wss://my-res.openai.azure.com/openai/v1/realtime?model=my-realtime");
/// assert_eq!(target.headers()["api-key"], "az-key");
///
/// let preview = azure.api_version("2025-04-01-preview");
/// assert_eq!(
///     preview.target(&request).await.unwrap().url().as_str(),
///     "wss://my-res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=my-realtime"
/// );
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Azure {
    root: Url,
    auth: Auth,
    api_version: Option<String>,
}

impl Azure {
    /// The resource at `base`, authenticated with `keys` in an `api-key` header.
    /// Fails on a base URL that is not `https`, `http`, `wss` or `ws`, or has a query.
    pub fn new(base: &str, keys: impl Into<Keys>) -> Result<Self, ConfigError> {
        let root = resource_root(base)?;
        // Azure is reached over TLS; a plain URL is a typo or a local mock.
        refuse_clear_text_key(&root, None)?;
        Ok(Self {
            root,
            auth: Auth::Header(Auth::API_KEY, keys.into()),
            api_version: None,
        })
    }

    /// Uses the preview URL shape with this `api-version` (e.g.
    /// `2025-04-01-preview`) instead of the GA one.
    #[must_use]
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }
}

impl Provider for Azure {
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        ready(self.build(request))
    }
}

impl Azure {
    /// The target of one session; building it needs no I/O.
    pub(crate) fn build(&self, request: &TargetRequest<'_>) -> Result<Target, TargetError> {
        let mut url = self.root.clone();
        let path: &[&str] = match self.api_version {
            None => &["openai", "v1", "realtime"],
            Some(_) => &["openai", "realtime"],
        };
        url.path_segments_mut()
            .map_err(|()| TargetError::misconfigured("the base URL cannot have a path"))?
            .pop_if_empty()
            .extend(path);
        let model_param = match &self.api_version {
            None => "model",
            Some(version) => {
                url.query_pairs_mut().append_pair("api-version", version);
                "deployment"
            }
        };
        append_session(&mut url, request, model_param, Intents::Transcription)?;
        let target = self.auth.apply(Target::new(url));
        // The preview shape has WebRTC endpoints of another form.
        Ok(match self.api_version {
            None => target.webrtc_calls(),
            Some(_) => target,
        })
    }
}

/// The resource root of an Azure OpenAI base URL: the URL without a trailing
/// `/openai`, `/openai/v1` or `/openai/deployments/NAME`.
fn resource_root(base: &str) -> Result<Url, ConfigError> {
    let mut url = websocket_base_url(base)?;
    let segments: Vec<&str> = url
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|segment| !segment.is_empty())
        .collect();
    let is = |segment: &str, name: &str| segment.eq_ignore_ascii_case(name);
    let root_len = match segments.as_slice() {
        [root @ .., openai] if is(openai, "openai") => root.len(),
        [root @ .., openai, v1] if is(openai, "openai") && is(v1, "v1") => root.len(),
        [root @ .., openai, deployments, _]
            if is(openai, "openai") && is(deployments, "deployments") =>
        {
            root.len()
        }
        all => all.len(),
    };
    let root = segments[..root_len].join("/");
    url.set_path(&root);
    Ok(url)
}
