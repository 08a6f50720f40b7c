//! Which client headers reach the upstream: an allow-list.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Client headers forwarded upstream unless configured otherwise. Not
/// `OpenAI-Safety-Identifier`: whom abuse reports point at is the
/// application's to say, from its own identity of the user, not the client's.
pub(crate) const DEFAULT_FORWARDED: [HeaderName; 3] = [
    header::USER_AGENT,
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];

/// The request id header, forwarded upstream and echoed to the client.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers that carry client credentials or belong to the client's own hop:
/// they can never be added to the allow-list.
const NEVER_FORWARDED: [&str; 17] = [
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "cookie",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "origin",
    "host",
    "connection",
    "upgrade",
    "content-length",
    "transfer-encoding",
    "te",
    "keep-alive",
    "x-request-id",
];

/// Whether `name` may be forwarded upstream at all.
pub(crate) fn is_forwardable(name: &HeaderName) -> bool {
    let name = name.as_str();
    !NEVER_FORWARDED.contains(&name) && !name.starts_with("sec-websocket-")
}

/// The headers of the upstream handshake taken from the client: those on the
/// allow-list, and the request id.
pub(crate) fn forwarded(
    client: &HeaderMap,
    allowed: &[HeaderName],
    request_id: &HeaderValue,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(allowed.len() + 1);
    for name in allowed {
        for value in client.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if !headers.contains_key(header::USER_AGENT) {
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("tower-realtime/", env!("CARGO_PKG_VERSION"))),
        );
    }
    headers.insert(X_REQUEST_ID, request_id.clone());
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_headers_pass() {
        let mut client = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer client"),
            ("cookie", "a=b"),
            ("openai-safety-identifier", "user-1"),
            ("x-custom", "1"),
            ("sec-websocket-extensions", "permessage-deflate"),
        ] {
            client.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let id = HeaderValue::from_static("req-1");
        let headers = forwarded(&client, &DEFAULT_FORWARDED, &id);
        let mut names: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        // Not the client's safety identifier: it comes from the identity.
        assert_eq!(names, ["user-agent", "x-request-id"]);
    }

    #[test]
    fn credentials_are_never_forwardable() {
        for name in [
            "authorization",
            "cookie",
            "sec-websocket-protocol",
            "openai-beta",
            "origin",
        ] {
            assert!(!is_forwardable(&HeaderName::from_static(name)), "{name}");
        }
        assert!(is_forwardable(&HeaderName::from_static("x-custom")));
    }
}
