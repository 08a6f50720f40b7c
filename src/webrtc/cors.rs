//! CORS for the WebRTC endpoints: browsers post offers cross-origin and
//! must be able to read `Location`.

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, HeaderValue, ORIGIN, VARY,
};
use http::request::Parts;
use http::{Response, StatusCode};

use super::caller::forbidden;
use crate::error::Rejection;
use crate::origin::OriginPolicy;

/// The request's `Origin` if the policy allows it; `403` if it does not.
pub(crate) fn allowed_origin(
    policy: &OriginPolicy,
    parts: &Parts,
) -> Result<Option<HeaderValue>, Rejection> {
    let origin = parts.headers.get(ORIGIN);
    let text = origin.and_then(|origin| origin.to_str().ok());
    if origin.is_some() && text.is_none() || !policy.allows(text) {
        return Err(forbidden(
            "origin_not_allowed",
            "Requests from this origin are not allowed.",
        ));
    }
    Ok(origin.cloned())
}

/// Adds the CORS headers of an allowed `origin` to a response.
pub(crate) fn expose(response: &mut Response<Bytes>, origin: Option<HeaderValue>) {
    let headers = response.headers_mut();
    headers.append(VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("location, x-request-id"),
        );
    }
}

/// The answer to a preflight `OPTIONS` from an allowed origin.
pub(crate) fn preflight(origin: Option<HeaderValue>) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, x-request-id"),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    expose(&mut response, origin);
    response
}
