//! The gateway's own API key, required on the realtime path only.

use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use http::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use tower_http::validate_request::ValidateRequest;

use crate::refusal::refusal;

/// Requires `Authorization: Bearer KEY` on `path`, for
/// `ValidateRequestHeaderLayer::custom`; other paths (the console,
/// `/healthz`) stay public.
///
/// tower-http's `ValidateRequestHeaderLayer::bearer` would do for an API
/// that is private as a whole, but it is deprecated, guards every path it
/// wraps and refuses with an empty body. This one answers like the rest of
/// the gateway and compares keys without an early exit.
/// `SubprotocolTokenLayer` in front of it turns a browser's
/// `openai-insecure-api-key.KEY` subprotocol into the same header.
#[derive(Clone)]
pub struct GatewayKey {
    path: Arc<str>,
    key: Arc<[u8]>,
}

impl GatewayKey {
    pub fn new(path: &str, key: &str) -> Self {
        Self {
            path: path.into(),
            key: key.as_bytes().into(),
        }
    }

    fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((scheme, token)) = authorization
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer") && same(token.trim().as_bytes(), &self.key)
    }
}

impl fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayKey")
            .field("path", &self.path)
            .field("key", &"***")
            .finish()
    }
}

impl<B> ValidateRequest<B> for GatewayKey {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<Body>> {
        if request.uri().path() != &*self.path || self.accepts(request.headers().get(AUTHORIZATION))
        {
            return Ok(());
        }
        let mut response = refusal(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "Missing or incorrect gateway API key. Send it as `Authorization: Bearer KEY` or, \
             from a browser, as the subprotocol `openai-insecure-api-key.KEY`.",
        );
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Err(response)
    }
}

/// Compares two keys in time that depends on their lengths only.
fn same(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}
