//! Detecting and validating WebSocket upgrades (RFC 6455 §4.2.1, RFC 8441).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, StatusCode, Version};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::error::{ErrorType, Rejection};

/// How the client asked for a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Upgrade {
    /// HTTP/1.1 `GET` with `Upgrade: websocket`: answer `101` with this accept key.
    Http1 { accept: HeaderValue },
    /// HTTP/2 extended `CONNECT` with `:protocol websocket`: answer `200`.
    Http2,
}

/// Whether a request asks to become a WebSocket. A request that does not is
/// none of our business and goes to the inner service; one that does may
/// still be malformed, which [`validate`] reports.
pub(crate) fn is_websocket_request<B>(request: &Request<B>) -> bool {
    if request.version() >= Version::HTTP_2 {
        is_extended_connect(request)
    } else {
        has_token(request.headers(), &header::UPGRADE, "websocket")
    }
}

/// An HTTP/2 extended `CONNECT` with `:protocol websocket` (RFC 8441).
#[cfg(feature = "http2")]
fn is_extended_connect<B>(request: &Request<B>) -> bool {
    request.method() == Method::CONNECT
        && request
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|protocol| protocol.as_str().eq_ignore_ascii_case("websocket"))
}

/// Without the `http2` feature, HTTP/2 requests go to the inner service.
#[cfg(not(feature = "http2"))]
fn is_extended_connect<B>(_request: &Request<B>) -> bool {
    false
}

/// Checks an upgrade request against RFC 6455 §4.2.1 (HTTP/1.1) or RFC 8441 §5 (HTTP/2).
pub(crate) fn validate(parts: &Parts) -> Result<Upgrade, Rejection> {
    if parts.version >= Version::HTTP_2 {
        check_version(&parts.headers, StatusCode::BAD_REQUEST)?;
        return Ok(Upgrade::Http2);
    }
    if parts.method != Method::GET {
        return Err(Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::InvalidRequest,
            "method_not_allowed",
            "a WebSocket upgrade must use GET",
        )
        .with_header(header::ALLOW, HeaderValue::from_static("GET")));
    }
    if parts.version < Version::HTTP_11 {
        return Err(upgrade_required("a WebSocket upgrade needs HTTP/1.1"));
    }
    if !has_token(&parts.headers, &header::CONNECTION, "upgrade") {
        return Err(Rejection::bad_request(
            "invalid_handshake",
            "the Connection header must include the `upgrade` token",
        ));
    }
    check_version(&parts.headers, StatusCode::UPGRADE_REQUIRED)?;
    // RFC 6455 §4.1: the key MUST NOT appear more than once.
    let mut keys = parts.headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key.as_bytes()) => key,
        _ => {
            return Err(Rejection::bad_request(
                "invalid_handshake",
                "Sec-WebSocket-Key must appear once, as the base64 encoding of 16 bytes",
            ));
        }
    };
    let accept = derive_accept_key(key.as_bytes());
    let accept = HeaderValue::try_from(accept).expect("base64 is a valid header value");
    Ok(Upgrade::Http1 { accept })
}

/// `426 Upgrade Required` for a connection that cannot switch protocols.
pub(crate) fn upgrade_required(message: &str) -> Rejection {
    Rejection::new(
        StatusCode::UPGRADE_REQUIRED,
        ErrorType::InvalidRequest,
        "upgrade_required",
        message,
    )
    .with_header(header::UPGRADE, HeaderValue::from_static("websocket"))
}

fn check_version(headers: &HeaderMap, status: StatusCode) -> Result<(), Rejection> {
    let mut versions = headers.get_all(header::SEC_WEBSOCKET_VERSION).iter();
    let ok = versions.next().is_some_and(|v| v == "13") && versions.next().is_none();
    if ok {
        return Ok(());
    }
    Err(Rejection::new(
        status,
        ErrorType::InvalidRequest,
        "unsupported_websocket_version",
        "Sec-WebSocket-Version must be 13",
    )
    .with_header(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    ))
}

/// A key is valid when it is base64 for exactly 16 bytes: 22 alphabet
/// characters followed by `==`.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Whether a comma-separated header (any of its occurrences) holds `token`,
/// compared without regard to ASCII case.
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| candidate.trim().eq_ignore_ascii_case(token))
}

/// The subprotocol tokens the client offered, in order.
pub(crate) fn offered_subprotocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Subprotocol tokens that carry credentials or select the beta protocol:
/// never sent upstream, never echoed to the client.
pub(crate) fn is_reserved_subprotocol(token: &str) -> bool {
    const CREDENTIAL_PREFIXES: [&str; 3] = [
        "openai-insecure-api-key.",
        "openai-organization.",
        "openai-project.",
    ];
    let lower = token.to_ascii_lowercase();
    lower == "openai-beta.realtime-v1"
        || CREDENTIAL_PREFIXES
            .iter()
            .any(|prefix| lower.starts_with(prefix))
}

/// The subprotocol to echo: `realtime` when offered, otherwise the first
/// offered token that is not reserved, otherwise none.
pub(crate) fn choose_subprotocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut first = None;
    for token in offered_subprotocols(headers) {
        if token.eq_ignore_ascii_case("realtime") {
            return HeaderValue::from_str(token).ok();
        }
        if first.is_none() && !is_reserved_subprotocol(token) {
            first = Some(token);
        }
    }
    first.and_then(|token| HeaderValue::from_str(token).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(build: http::request::Builder) -> Parts {
        build.body(()).unwrap().into_parts().0
    }

    fn upgrade() -> http::request::Builder {
        Request::get("/v1/realtime")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "WebSocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    #[test]
    fn accepts_rfc_example_and_derives_accept_key() {
        let upgrade = validate(&parts(upgrade())).unwrap();
        assert_eq!(
            upgrade,
            Upgrade::Http1 {
                accept: HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            }
        );
    }

    #[test]
    fn refusals_carry_the_right_status() {
        let cases = [
            (upgrade().method("POST"), StatusCode::METHOD_NOT_ALLOWED),
            (
                upgrade().version(Version::HTTP_10),
                StatusCode::UPGRADE_REQUIRED,
            ),
            (
                upgrade().header("sec-websocket-version", "8"),
                StatusCode::UPGRADE_REQUIRED,
            ),
        ];
        for (build, status) in cases {
            assert_eq!(validate(&parts(build)).unwrap_err().status, status);
        }
        let mut no_connection = parts(upgrade());
        no_connection.headers.remove(header::CONNECTION);
        assert_eq!(
            validate(&no_connection).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        let mut two_keys = parts(upgrade());
        two_keys.headers.append(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAA=="),
        );
        assert_eq!(
            validate(&two_keys).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        for key in [
            "",
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=!",
            "dGhlIHNhbXBsZSBub25j",
        ] {
            let mut bad = parts(upgrade());
            bad.headers.insert(
                header::SEC_WEBSOCKET_KEY,
                HeaderValue::from_str(key).unwrap(),
            );
            assert_eq!(
                validate(&bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{key}"
            );
        }
    }

    #[test]
    fn picks_realtime_then_first_safe_token() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("openai-insecure-api-key.sk-1, custom"),
        );
        assert_eq!(choose_subprotocol(&headers).unwrap(), "custom");
        headers.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("realtime"),
        );
        assert_eq!(choose_subprotocol(&headers).unwrap(), "realtime");

        let mut only_reserved = HeaderMap::new();
        only_reserved.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("openai-beta.realtime-v1, OpenAI-Project.p"),
        );
        assert_eq!(choose_subprotocol(&only_reserved), None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// The outcome RFC 6455 §4.2.1 asks for, in the order the README
        /// lists the checks: `Ok(())` or the refusal's status.
        fn expected(
            method: &Method,
            version: Version,
            connection: &[&str],
            versions: &[&str],
            keys: &[String],
        ) -> Result<(), u16> {
            let tokens = |values: &[&str]| -> Vec<String> {
                values
                    .iter()
                    .flat_map(|v| v.split(','))
                    .map(|t| t.trim().to_ascii_lowercase())
                    .collect()
            };
            if method != Method::GET {
                return Err(405);
            }
            if version == Version::HTTP_10 {
                return Err(426);
            }
            if !tokens(connection).contains(&"upgrade".to_owned()) {
                return Err(400);
            }
            if versions != ["13"] {
                return Err(426);
            }
            let valid_key = |key: &str| {
                key.len() == 24
                    && key.ends_with("==")
                    && key[..22]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
            };
            match keys {
                [key] if valid_key(key) => Ok(()),
                _ => Err(400),
            }
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
                // Canonical base64 of 16 bytes: the last character holds 2 bits.
                "[A-Za-z0-9+/]{21}[AQgw]==",
                "[A-Za-z0-9+/=!. -]{0,30}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            /// Any combination of method, version and handshake headers is
            /// either a valid upgrade, answered with the key's accept value,
            /// or refused with the documented status; it never panics.
            #[test]
            fn any_handshake_is_accepted_or_refused_as_specified(
                method in prop_oneof![
                    4 => Just(Method::GET),
                    1 => Just(Method::POST),
                    1 => Just(Method::CONNECT),
                    1 => Just(Method::HEAD),
                ],
                version in prop_oneof![4 => Just(Version::HTTP_11), 1 => Just(Version::HTTP_10)],
                connection in prop::collection::vec(
                    prop_oneof![
                        Just("Upgrade"),
                        Just("keep-alive, UPGRADE"),
                        Just("close"),
                        Just("upgrade2"),
                        Just(""),
                    ],
                    0..3,
                ),
                versions in prop::collection::vec(
                    prop_oneof![4 => Just("13"), 1 => Just("8"), 1 => Just("13, 8"), 1 => Just("")],
                    0..3,
                ),
                keys in prop::collection::vec(key(), 0..3),
            ) {
                let mut request = Request::builder().method(method.clone()).uri("/v1/realtime").version(version);
                for value in &connection {
                    request = request.header(header::CONNECTION, *value);
                }
                request = request.header(header::UPGRADE, "websocket");
                for value in &versions {
                    request = request.header(header::SEC_WEBSOCKET_VERSION, *value);
                }
                for value in &keys {
                    request = request.header(header::SEC_WEBSOCKET_KEY, value.as_str());
                }
                let parts = request.body(()).unwrap().into_parts().0;
                match (expected(&method, version, &connection, &versions, &keys), validate(&parts)) {
                    (Ok(()), Ok(Upgrade::Http1 { accept })) => {
                        prop_assert_eq!(accept.to_str().unwrap(), derive_accept_key(keys[0].as_bytes()));
                    }
                    (Err(status), Err(rejection)) => prop_assert_eq!(rejection.status.as_u16(), status),
                    (expected, outcome) => prop_assert!(
                        false,
                        "expected {:?}, got {:?}",
                        expected,
                        outcome.map_err(|r| r.status)
                    ),
                }
            }
        }
    }
}
