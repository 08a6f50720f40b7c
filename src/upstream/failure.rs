//! Upstream failures as HTTP responses for the client.

use http::StatusCode;
use http::header::RETRY_AFTER;
use tokio_tungstenite::tungstenite::handshake::client::Response as UpstreamResponse;

use crate::error::{ErrorType, Rejection};
use crate::secret::{Secret, redact};

/// How much of the upstream's error text is passed on.
const MAX_UPSTREAM_MESSAGE: usize = 512;

/// Maps an upstream that answered the handshake with something other than
/// `101` to the response the client gets.
pub(crate) fn from_status(response: &UpstreamResponse, secrets: &[Secret]) -> Rejection {
    from_answer(
        response.status(),
        response.headers(),
        response.body().as_deref().unwrap_or_default(),
        secrets,
    )
}

/// Maps an upstream's refusal (its status, headers and body) to the
/// response the client gets: the same mapping for a WebSocket handshake
/// and for an HTTP request (a WebRTC call).
pub(crate) fn from_answer(
    status: StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
    secrets: &[Secret],
) -> Rejection {
    let detail = upstream_message(body, secrets);
    let said = |prefix: String| match &detail {
        Some(detail) => format!("{prefix}: {detail}"),
        None => prefix,
    };
    let rejection = match status.as_u16() {
        // What the upstream says about the gateway's key is for the
        // operator (it is logged below), not for clients.
        401 | 403 => Rejection::new(
            StatusCode::BAD_GATEWAY,
            ErrorType::Upstream,
            "upstream_auth_failed",
            format!("the upstream provider rejected the gateway's credentials ({status})"),
        ),
        404 => Rejection::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequest,
            "upstream_not_found",
            said("the upstream provider does not know this model or endpoint".to_owned()),
        ),
        429 => {
            let mut rejection = Rejection::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorType::RateLimit,
                "upstream_rate_limited",
                said("the upstream provider is rate limiting the gateway".to_owned()),
            );
            if let Some(retry_after) = headers.get(RETRY_AFTER) {
                rejection = rejection.with_header(RETRY_AFTER, retry_after.clone());
            }
            rejection
        }
        400..=499 => Rejection::new(
            status,
            ErrorType::InvalidRequest,
            "upstream_rejected",
            said(format!(
                "the upstream provider refused the session ({status})"
            )),
        ),
        500..=599 => {
            let mut rejection = Rejection::new(
                StatusCode::BAD_GATEWAY,
                ErrorType::Upstream,
                "upstream_unavailable",
                said(format!("the upstream provider failed ({status})")),
            );
            if let Some(retry_after) = headers.get(RETRY_AFTER) {
                rejection = rejection.with_header(RETRY_AFTER, retry_after.clone());
            }
            rejection
        }
        _ => Rejection::new(
            StatusCode::BAD_GATEWAY,
            ErrorType::Upstream,
            "upstream_bad_handshake",
            format!("the upstream answered the WebSocket handshake with {status}"),
        ),
    };
    tracing::warn!(
        status = status.as_u16(),
        code = &*rejection.code,
        detail = detail.as_deref().unwrap_or_default(),
        "upstream refused the session"
    );
    rejection
}

/// Whether another deployment may open the session that this refusal
/// ended: yes for failures of the deployment (unreachable, timed out,
/// credentials refused, rate limited, 408, 5xx), no for faults of the
/// request itself (400, 404, 422 and other 4xx).
pub(crate) fn fails_over(rejection: &Rejection) -> bool {
    let status = rejection.status;
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// A failure to reach the upstream at all: DNS, TCP, TLS or a broken handshake.
pub(crate) fn unreachable(
    code: &'static str,
    what: &str,
    error: &dyn std::fmt::Display,
    secrets: &[Secret],
) -> Rejection {
    let detail = redact(&error.to_string(), secrets);
    tracing::warn!(code, error = %detail, "upstream unreachable");
    Rejection::new(
        StatusCode::BAD_GATEWAY,
        ErrorType::Upstream,
        code,
        format!("{what}: {}", truncate(&detail)),
    )
}

/// The upstream did not complete the handshake within the connect timeout.
pub(crate) fn timed_out(timeout: std::time::Duration) -> Rejection {
    tracing::warn!(?timeout, "upstream connect timed out");
    Rejection::new(
        StatusCode::GATEWAY_TIMEOUT,
        ErrorType::Upstream,
        "upstream_timeout",
        format!("the upstream provider did not accept the session within {timeout:?}"),
    )
}

/// The error text in an upstream body: `error.message`, `message` or
/// `error` of a JSON body, else the body as text; scrubbed of secrets and
/// control characters, and truncated.
fn upstream_message(body: &[u8], secrets: &[Secret]) -> Option<String> {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => [
            json.pointer("/error/message"),
            json.get("message"),
            json.get("error"),
        ]
        .into_iter()
        .flatten()
        .find_map(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| json.to_string()),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cleaned = mask_partial_keys(&redact(cleaned.trim(), secrets));
    (!cleaned.is_empty()).then(|| truncate(&cleaned))
}

/// Replaces words that look like a partly masked key (`sk-abc****wxyz`, as
/// providers print a refused key) with `***`: what is left of it is not
/// anyone's business either.
fn mask_partial_keys(text: &str) -> String {
    text.split(' ')
        .map(|word| if word.contains("***") { "***" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_UPSTREAM_MESSAGE {
        return text.to_owned();
    }
    let mut end = MAX_UPSTREAM_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str, headers: &[(&str, &str)]) -> UpstreamResponse {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Some(body.as_bytes().to_vec())).unwrap()
    }

    #[test]
    fn statuses_map_as_documented() {
        let secrets = [Secret::new("sk-secret")];
        let cases = [
            (401, StatusCode::BAD_GATEWAY, "upstream_auth_failed"),
            (403, StatusCode::BAD_GATEWAY, "upstream_auth_failed"),
            (404, StatusCode::NOT_FOUND, "upstream_not_found"),
            (429, StatusCode::TOO_MANY_REQUESTS, "upstream_rate_limited"),
            (400, StatusCode::BAD_REQUEST, "upstream_rejected"),
            (500, StatusCode::BAD_GATEWAY, "upstream_unavailable"),
            (503, StatusCode::BAD_GATEWAY, "upstream_unavailable"),
            (302, StatusCode::BAD_GATEWAY, "upstream_bad_handshake"),
        ];
        for (upstream, status, code) in cases {
            let rejection = from_status(&response(upstream, "", &[]), &secrets);
            assert_eq!(
                (rejection.status, rejection.code.as_ref()),
                (status, code),
                "{upstream}"
            );
        }
    }

    #[test]
    fn deployment_failures_fail_over_and_request_faults_do_not() {
        for status in [401, 403, 408, 429, 500, 502, 503, 504] {
            assert!(
                fails_over(&from_status(&response(status, "", &[]), &[])),
                "{status}"
            );
        }
        for status in [400, 404, 409, 422] {
            assert!(
                !fails_over(&from_status(&response(status, "", &[]), &[])),
                "{status}"
            );
        }
        assert!(fails_over(&timed_out(std::time::Duration::from_secs(1))));
    }

    #[test]
    fn passes_on_the_message_without_secrets() {
        let body = r#"{"error":{"message":"Bad request for sk-secret.\nCheck it","type":"invalid_request_error"}}"#;
        let rejection = from_status(
            &response(400, body, &[("retry-after", "3")]),
            &[Secret::new("sk-secret")],
        );
        assert!(
            rejection.message.contains("Bad request for *** Check it"),
            "{}",
            rejection.message
        );
        assert!(!rejection.message.contains("sk-secret"));

        let limited = from_status(&response(429, "slow down", &[("retry-after", "7")]), &[]);
        assert_eq!(limited.header("retry-after").unwrap(), "7");
        assert!(limited.message.ends_with(": slow down"));

        let long = "x".repeat(5000);
        let truncated = from_status(&response(500, &long, &[]), &[]);
        assert!(truncated.message.len() < 700);
    }

    #[test]
    fn credential_refusals_get_a_fixed_message() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-proj-****************wxyz. You can find your API key at https://platform.openai.com/account/api-keys.","code":"invalid_api_key"}}"#;
        for status in [401, 403] {
            let rejection = from_status(&response(status, body, &[]), &[]);
            assert_eq!(
                rejection.message,
                format!(
                    "the upstream provider rejected the gateway's credentials ({})",
                    StatusCode::from_u16(status).unwrap()
                )
            );
        }
    }

    #[test]
    fn partly_masked_keys_are_masked_whole() {
        let detail = upstream_message(
            br#"{"error":{"message":"Incorrect API key provided: sk-proj-****wxyz. See docs."}}"#,
            &[],
        );
        assert_eq!(
            detail.as_deref(),
            Some("Incorrect API key provided: *** See docs.")
        );
    }
}
