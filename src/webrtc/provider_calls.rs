//! The provider's side of a call: its WebRTC endpoints, reached with the
//! gateway's credential, derived from the realtime target.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};
use rustls::ClientConfig;
use serde_json::Value;
use url::Url;

use super::multipart;
use crate::error::{ErrorType, Rejection};
use crate::provider::Target;
use crate::provider::token_client::{PostError, post};
use crate::secret::{Secret, redact};
use crate::upstream::from_answer;

/// Where a provider's WebRTC endpoints are, and how to authenticate there.
#[derive(Clone)]
pub(crate) struct ProviderCalls {
    /// The realtime target, whose URL is `…/realtime?…`.
    target: Target,
    /// `http(s)://…/realtime`.
    base: Url,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
}

impl ProviderCalls {
    /// The endpoints beside `target`'s realtime URL; `400` when the
    /// provider has none.
    pub(crate) fn new(
        target: Target,
        tls: Option<Arc<ClientConfig>>,
        timeout: Duration,
    ) -> Result<Self, Rejection> {
        if !target.supports_webrtc_calls() {
            return Err(Rejection::bad_request(
                "webrtc_not_supported",
                "this provider does not serve WebRTC calls; use a WebSocket session, or an OpenAI or Azure OpenAI model",
            )
            .with_param("model"));
        }
        let mut base = target.url().clone();
        base.set_query(None);
        let scheme = match base.scheme() {
            "wss" | "https" => "https",
            _ => "http",
        };
        base.set_scheme(scheme)
            .map_err(|()| Rejection::bad_request("webrtc_not_supported", "bad upstream URL"))?;
        Ok(Self {
            target,
            base,
            tls,
            timeout,
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn headers(&self) -> HeaderMap {
        self.target.headers().clone()
    }

    pub(crate) fn secrets(&self) -> &[Secret] {
        self.target.secrets()
    }

    /// Sends the offer with the session (and the query parameters in
    /// `query`); returns the SDP answer and the provider's call id.
    pub(crate) async fn create(
        &self,
        sdp: &str,
        session: &Value,
        query: &[(String, String)],
        forwarded: HeaderMap,
    ) -> Result<(Bytes, String), Rejection> {
        let boundary = format!("gw-{}", &super::token::new_call_id()[8..24]);
        let session = serde_json::to_vec(session).expect("JSON serializes");
        let body = multipart::build(
            &boundary,
            &[
                ("sdp", "application/sdp", sdp.as_bytes()),
                ("session", "application/json", &session),
            ],
        );
        let mut headers = forwarded;
        headers.extend(self.headers());
        headers.insert(ACCEPT, HeaderValue::from_static("application/sdp"));
        let content_type = format!("multipart/form-data; boundary={boundary}");
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(&content_type).expect("a valid header"),
        );
        let mut url = self.url(&["calls"]);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let (status, answer_headers, answer) = self.post(&url, headers, Bytes::from(body)).await?;
        if !status.is_success() {
            return Err(from_answer(
                status,
                &answer_headers,
                &answer,
                self.secrets(),
            ));
        }
        let call_id = answer_headers
            .get(LOCATION)
            .and_then(|location| location.to_str().ok())
            .and_then(provider_call_id)
            .ok_or_else(|| {
                tracing::warn!(%status, "the provider answered the offer without a call id");
                Rejection::new(
                    StatusCode::BAD_GATEWAY,
                    ErrorType::Upstream,
                    "upstream_no_call_id",
                    "the provider answered the offer without a call id, so the call cannot be supervised",
                )
            })?;
        Ok((answer, call_id))
    }

    /// `POST …/calls/{call_id}/{action}` with an optional JSON body.
    pub(crate) async fn action(
        &self,
        call_id: &str,
        action: &str,
        body: Option<&Value>,
    ) -> Result<(), Rejection> {
        let mut headers = self.headers();
        let body = match body {
            Some(body) => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Bytes::from(serde_json::to_vec(body).expect("JSON serializes"))
            }
            None => Bytes::new(),
        };
        let (status, answer_headers, answer) = self
            .post(&self.url(&["calls", call_id, action]), headers, body)
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(from_answer(
                status,
                &answer_headers,
                &answer,
                self.secrets(),
            ))
        }
    }

    /// The target of the sideband WebSocket of `call_id`: the realtime URL
    /// with `?call_id=` instead of the model.
    pub(crate) fn sideband(&self, call_id: &str) -> Target {
        let mut url = self.target.url().clone();
        url.set_query(None);
        url.query_pairs_mut().append_pair("call_id", call_id);
        self.target.clone().with_url(url)
    }

    async fn post(
        &self,
        url: &Url,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Rejection> {
        post(url, headers, body, self.tls.as_ref(), self.timeout)
            .await
            .map_err(|PostError(error)| {
                let error = redact(&error, self.secrets());
                tracing::warn!(%error, "the provider's call endpoint failed");
                let (status, code) = if error.starts_with("no answer within") {
                    (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")
                } else {
                    (StatusCode::BAD_GATEWAY, "upstream_unreachable")
                };
                Rejection::new(
                    status,
                    ErrorType::Upstream,
                    code,
                    format!("the provider's call endpoint failed: {error}"),
                )
            })
    }
}

/// The provider's call id in a `Location`: the last path segment that
/// starts with `rtc_`, without a query.
pub(crate) fn provider_call_id(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next()?;
    path.rsplit('/')
        .find(|segment| segment.starts_with("rtc_") && segment.len() > 4)
        .filter(|id| {
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_come_from_the_location() {
        assert_eq!(
            provider_call_id("/v1/realtime/calls/rtc_u1_9c65").as_deref(),
            Some("rtc_u1_9c65")
        );
        assert_eq!(
            provider_call_id("https://x/v1/realtime/calls/calls/rtc_b?x=1").as_deref(),
            Some("rtc_b")
        );
        assert_eq!(provider_call_id("/v1/realtime/calls/"), None);
        assert_eq!(provider_call_id("/v1/realtime/calls/rtc_a%2F"), None);
    }

    #[test]
    fn endpoints_sit_beside_the_realtime_url() {
        let target =
            Target::new(Url::parse("wss://res.example/openai/v1/realtime?model=d").unwrap())
                .webrtc_calls();
        let calls = ProviderCalls::new(target, None, Duration::from_secs(1)).unwrap();
        assert_eq!(
            calls.url(&["calls", "rtc_1", "hangup"]).as_str(),
            "https://res.example/openai/v1/realtime/calls/rtc_1/hangup"
        );
        assert_eq!(
            calls.sideband("rtc_1").url().as_str(),
            "wss://res.example/openai/v1/realtime?call_id=rtc_1"
        );
        let plain = Target::new(Url::parse("ws://127.0.0.1:9/v1/realtime?model=m").unwrap());
        assert_eq!(
            ProviderCalls::new(plain, None, Duration::from_secs(1))
                .err()
                .unwrap()
                .status,
            StatusCode::BAD_REQUEST
        );
    }
}
