//! Refusals before the upgrade, as HTTP responses with an OpenAI-shaped body.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{HeaderName, Response, StatusCode};
use serde::Serialize;

/// The `type` field of an OpenAI-shaped error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorType {
    /// The client's request is wrong (400, 404, 405, 426).
    InvalidRequest,
    /// The client is not allowed (403).
    Permission,
    /// Too many sessions or requests (429, 503 with `Retry-After`).
    RateLimit,
    /// A budget is spent (429).
    InsufficientQuota,
    /// The upstream could not be reached or misbehaved (502, 504).
    Upstream,
    /// The gateway itself is misconfigured or shutting down (500, 503).
    Server,
}

impl ErrorType {
    /// The type of an error answered with `status`.
    pub(crate) fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::FORBIDDEN => Self::Permission,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimit,
            status if status.is_server_error() => Self::Server,
            _ => Self::InvalidRequest,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Permission => "permission_error",
            Self::RateLimit => "rate_limit_error",
            Self::InsufficientQuota => "insufficient_quota",
            Self::Upstream => "upstream_error",
            Self::Server => "server_error",
        }
    }
}

/// Why the gateway refused to open a session.
///
/// Every refusal becomes an HTTP response with a JSON body of the shape
/// `{"error":{"message","type","code","param"}}`; it is never a service error.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub(crate) status: StatusCode,
    pub(crate) kind: ErrorType,
    pub(crate) code: Cow<'static, str>,
    pub(crate) param: Option<&'static str>,
    pub(crate) message: String,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// A body rendered elsewhere (a user's refusal), instead of this one's
    /// OpenAI-shaped body. Boxed: refusals travel in `Result`s.
    pub(crate) body: Option<Box<Bytes>>,
}

/// `status` when it is an error (4xx, 5xx), otherwise `500`: a refusal must
/// neither look like success nor redirect.
pub(crate) fn error_status(status: StatusCode) -> StatusCode {
    if status.is_client_error() || status.is_server_error() {
        status
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// `{"error":{...}}`. serde writes struct fields in declaration order, so the
/// body reads the same whatever `serde_json` features the binary enables.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: &'a str,
    param: Option<&'a str>,
}

/// The OpenAI-shaped body `{"error":{"message","type","code","param"}}`,
/// its fields always in that order.
pub(crate) fn error_body(message: &str, kind: &str, code: &str, param: Option<&str>) -> Bytes {
    let body = ErrorBody {
        error: ErrorObject {
            message,
            kind,
            code,
            param,
        },
    };
    Bytes::from(serde_json::to_vec(&body).expect("strings always serialize"))
}

impl Rejection {
    pub(crate) fn new(
        status: StatusCode,
        kind: ErrorType,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code: code.into(),
            param: None,
            message: message.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A 400 `invalid_request_error`.
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequest,
            code,
            message,
        )
    }

    pub(crate) fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(crate) fn retry_after(self, seconds: u64) -> Self {
        self.with_header(RETRY_AFTER, HeaderValue::from(seconds))
    }

    /// The JSON body, without a trailing newline, its fields always in the
    /// order `message`, `type`, `code`, `param`.
    pub(crate) fn body(&self) -> Bytes {
        if let Some(body) = &self.body {
            return Bytes::clone(body);
        }
        error_body(&self.message, self.kind.as_str(), &self.code, self.param)
    }

    /// The value of one extra header, if set.
    pub(crate) fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub(crate) fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let body = self.body();
        let mut response = Response::new(B::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_openai_shaped_in_a_fixed_order() {
        let rejection =
            Rejection::bad_request("missing_model", "say \"which\" model").with_param("model");
        assert_eq!(
            rejection.body(),
            r#"{"error":{"message":"say \"which\" model","type":"invalid_request_error","code":"missing_model","param":"model"}}"#
        );
        let rejection = Rejection::new(
            StatusCode::BAD_GATEWAY,
            ErrorType::Upstream,
            "upstream_unreachable",
            "no route",
        );
        assert_eq!(
            rejection.body(),
            r#"{"error":{"message":"no route","type":"upstream_error","code":"upstream_unreachable","param":null}}"#
        );
    }

    #[test]
    fn response_keeps_status_and_headers() {
        let response: Response<Bytes> = Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::RateLimit,
            "too_many_sessions",
            "busy",
        )
        .retry_after(2)
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }
}
