//! Which WebRTC endpoint a request is for, and the answer to it.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::calls::{create, too_large};
use super::control::{Action, act};
use super::cors::{allowed_origin, expose, preflight};
use super::secrets::mint;
use super::token::CALL_PREFIX;
use crate::error::Rejection;
use crate::layer::Config;
use crate::request_id::request_id;
use crate::upstream::headers::X_REQUEST_ID;

/// A WebRTC endpoint under the realtime path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    ClientSecrets,
    Calls,
    Call(String, Action),
}

impl Endpoint {
    /// The endpoint `path` names under the realtime path `base`, if any.
    pub(crate) fn of(base: &str, path: &str) -> Option<Self> {
        let rest = path.strip_prefix(base)?.strip_prefix('/')?;
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            ["client_secrets"] => Some(Self::ClientSecrets),
            ["calls"] => Some(Self::Calls),
            ["calls", id, action] if id.starts_with(CALL_PREFIX) => {
                Some(Self::Call((*id).to_owned(), Action::parse(action)?))
            }
            _ => None,
        }
    }
}

/// Answers a request to `endpoint`: every failure is a response with an
/// OpenAI-shaped JSON body.
pub(crate) async fn handle<B>(
    config: Arc<Config>,
    endpoint: Endpoint,
    request: Request<B>,
) -> Response<Bytes>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let webrtc = config.webrtc.clone().expect("routed only when enabled");
    super::ensure_started(&config);
    let (parts, body) = request.into_parts();
    let request_id = request_id(&parts.headers);
    let origin = match allowed_origin(&config.origins, &parts) {
        Ok(origin) => origin,
        Err(refusal) => return refusal.into_response(),
    };
    let answer = async {
        match parts.method {
            Method::OPTIONS => return Ok(preflight(origin.clone())),
            Method::POST => {}
            _ => {
                return Err(Rejection::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    crate::error::ErrorType::InvalidRequest,
                    "method_not_allowed",
                    "use POST",
                )
                .with_header(ALLOW, HeaderValue::from_static("POST, OPTIONS")));
            }
        }
        let limit = webrtc.max_body_bytes;
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large(limit));
        }
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<LengthLimitError>() {
                    too_large(limit)
                } else {
                    Rejection::bad_request("unreadable_body", "the request body could not be read")
                }
            })?
            .to_bytes();
        match &endpoint {
            Endpoint::ClientSecrets => mint(&config, &webrtc, &parts, &body).await,
            Endpoint::Calls => create(&config, &webrtc, &parts, &body).await,
            Endpoint::Call(id, action) => act(&config, &webrtc, &parts, id, *action, &body).await,
        }
    };
    let mut response = answer.await.unwrap_or_else(|refusal| {
        tracing::info!(code = %refusal.code, status = refusal.status.as_u16(), "WebRTC request refused");
        refusal.into_response()
    });
    expose(&mut response, origin);
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_under_the_realtime_path() {
        let of = |path| Endpoint::of("/v1/realtime", path);
        assert_eq!(of("/v1/realtime/calls"), Some(Endpoint::Calls));
        assert_eq!(
            of("/v1/realtime/client_secrets"),
            Some(Endpoint::ClientSecrets)
        );
        assert_eq!(
            of("/v1/realtime/calls/gw_call_x/hangup"),
            Some(Endpoint::Call("gw_call_x".into(), Action::Hangup))
        );
        assert_eq!(of("/v1/realtime/calls/rtc_x/hangup"), None);
        assert_eq!(of("/v1/realtime/calls/gw_call_x/explode"), None);
        assert_eq!(of("/v1/realtime"), None);
        assert_eq!(of("/v1/realtimecalls"), None);
    }
}
