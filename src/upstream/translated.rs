//! The upstream of a session, as the relay sees it: the provider's socket
//! itself, or a translating wrapper of it.

use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, Request};

use super::{Dialer, UpstreamSocket};
use crate::accept::provider_timeout;
use crate::admission::Identity;
use crate::provider::{Provider, TargetRequest};
use crate::translate::gemini::{GeminiConfig, GeminiTranslator};
use crate::translate::{Dialling, GeminiSocket};

/// The upstream of one session.
pub(crate) enum Upstream {
    /// Speaks OpenAI's realtime schema: relayed as it is.
    ///
    /// Boxed: the socket (rustls variant inline) would otherwise be kept
    /// both in the session and in the local it is moved to, in every idle
    /// session's task.
    Plain(Box<UpstreamSocket>),
    /// Gemini Live, behind a translator.
    Gemini(Box<GeminiSocket<UpstreamSocket>>),
}

/// What a resumption needs to open a fresh connection to the same upstream:
/// a fresh target from the provider (credentials may have been refreshed
/// meanwhile), dialled like the first.
pub(crate) struct Redial {
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) provider_name: String,
    pub(crate) model: String,
    pub(crate) intent: Option<String>,
    /// The client's request, without its extensions.
    pub(crate) parts: Parts,
    pub(crate) dialer: Dialer,
    pub(crate) forwarded: HeaderMap,
    pub(crate) identity: Identity,
}

impl Redial {
    /// Keeps what a later dial needs of the client's request.
    pub(crate) fn request_parts(parts: &Parts) -> Parts {
        let mut request = Request::new(());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        request.into_parts().0
    }

    fn dial(self: &Arc<Self>) -> Dialling<UpstreamSocket> {
        let redial = Arc::clone(self);
        Box::pin(async move {
            let request = TargetRequest::new(
                &redial.provider_name,
                &redial.model,
                redial.intent.as_deref(),
                &redial.parts,
            )
            .with_identity(&redial.identity);
            let building = redial.provider.target(&request);
            let target = match tokio::time::timeout(redial.dialer.timeout, building).await {
                Ok(built) => built.map_err(|error| error.message().to_owned())?,
                Err(_elapsed) => return Err(provider_timeout(redial.dialer.timeout).message),
            };
            redial
                .dialer
                .dial(target, redial.forwarded.clone(), redial.dialer.timeout)
                .await
                .map_err(|rejection| rejection.message)
        })
    }
}

impl Upstream {
    /// Wraps a dialled Gemini Live socket in its translator, resuming on
    /// connections `redial` opens.
    pub(crate) fn gemini(socket: UpstreamSocket, config: GeminiConfig, redial: Redial) -> Self {
        let redial = Arc::new(redial);
        let socket =
            GeminiSocket::new(socket, GeminiTranslator::new(config)).redial(move || redial.dial());
        Upstream::Gemini(Box::new(socket))
    }
}
