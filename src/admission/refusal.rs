//! [`Refusal`]: the answer to a session the admission hook turned away.

use std::borrow::Cow;

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};

use crate::error::{ErrorType, Rejection, error_body, error_status};

/// The response to an upgrade that the [admission hook](super::Admission)
/// refused; nothing is dialled for it.
///
/// By default its body is shaped like OpenAI's errors, as every refusal of
/// the layer is: `{"error":{"message","type","code","param":null}}`, with
/// `Content-Type: application/json`. [`Refusal::json`] replaces the body
/// with any JSON value. The `code` also labels the refusal in the logs and
/// in `realtime_refusals_total`.
///
/// # Example
///
/// ```
/// use http::StatusCode;
/// use tower_realtime::admission::Refusal;
///
/// let over_quota = Refusal::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", "Your plan's quota is spent.")
///     .error_type("insufficient_quota")
///     .retry_after(3600);
/// assert_eq!(over_quota.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(over_quota.code(), "insufficient_quota");
/// ```
#[derive(Debug, Clone)]
pub struct Refusal(Box<Inner>);

/// Boxed, so that a `Result<Identity, Refusal>` stays small.
#[derive(Debug, Clone)]
struct Inner {
    status: StatusCode,
    kind: Cow<'static, str>,
    code: Cow<'static, str>,
    message: String,
    headers: HeaderMap,
    body: Option<Bytes>,
}

impl Refusal {
    /// A refusal with `status`, an error `code` and a `message` for the
    /// client. The error `type` follows the status (`permission_error` for
    /// 403, `rate_limit_error` for 429, `server_error` for 5xx, otherwise
    /// `invalid_request_error`); [`Refusal::error_type`] changes it.
    ///
    /// A `status` that is not an error (1xx, 2xx, 3xx) would open nothing and
    /// explain nothing: it becomes `500`.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        let status = error_status(status);
        Self(Box::new(Inner {
            status,
            kind: Cow::Borrowed(ErrorType::for_status(status).as_str()),
            code: code.into(),
            message: message.into(),
            headers: HeaderMap::new(),
            body: None,
        }))
    }

    /// `401` with `WWW-Authenticate: Bearer` and the code `invalid_api_key`,
    /// as OpenAI answers a missing or wrong key.
    ///
    /// ```
    /// use tower_realtime::admission::Refusal;
    ///
    /// let refusal = Refusal::unauthorized("Missing or incorrect API key.");
    /// assert_eq!(refusal.status(), http::StatusCode::UNAUTHORIZED);
    /// assert_eq!(refusal.code(), "invalid_api_key");
    /// ```
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_api_key", message)
            .header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// `403` (`permission_error`) with `code`.
    pub fn forbidden(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// Sets the error `type` of the body (e.g. `insufficient_quota`).
    #[must_use]
    pub fn error_type(mut self, kind: impl Into<Cow<'static, str>>) -> Self {
        self.0.kind = kind.into();
        self
    }

    /// Adds a header to the response (replacing one of the same name).
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.insert(name, value);
        self
    }

    /// Adds `Retry-After: seconds`.
    #[must_use]
    pub fn retry_after(self, seconds: u64) -> Self {
        self.header(http::header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    /// Replaces the body with `body`, for another error schema. The code
    /// given to [`Refusal::new`] still labels logs and metrics.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_realtime::admission::Refusal;
    ///
    /// let refusal = Refusal::new(StatusCode::FORBIDDEN, "tenant_suspended", "suspended")
    ///     .json(serde_json::json!({"detail": "tenant suspended", "support": "help@example.com"}));
    /// assert_eq!(refusal.code(), "tenant_suspended");
    /// ```
    #[must_use]
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.0.body = Some(Bytes::from(body.to_string()));
        self
    }

    /// The HTTP status the client receives.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The error code (in the body, the logs and the metrics).
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// The error message of the default body.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl From<Refusal> for Rejection {
    fn from(refusal: Refusal) -> Self {
        let refusal = *refusal.0;
        let mut rejection = Rejection::new(
            refusal.status,
            ErrorType::for_status(refusal.status),
            refusal.code,
            refusal.message,
        );
        let body = refusal.body.unwrap_or_else(|| {
            error_body(&rejection.message, &refusal.kind, &rejection.code, None)
        });
        rejection.body = Some(Box::new(body));
        let mut last = None;
        for (name, value) in refusal.headers {
            // `HeaderMap` iteration names only the first of repeated values.
            let name = name
                .or_else(|| last.clone())
                .expect("the first entry is named");
            last = Some(name.clone());
            rejection.headers.push((name, value));
        }
        rejection
    }
}

#[cfg(test)]
mod tests {
    use http::Response;
    use http::header::{CONTENT_TYPE, RETRY_AFTER};

    use super::*;

    fn response(refusal: Refusal) -> (Response<Bytes>, serde_json::Value) {
        let response: Response<Bytes> = Rejection::from(refusal).into_response();
        let body = serde_json::from_slice(response.body()).unwrap();
        (response, body)
    }

    #[test]
    fn the_default_body_is_openai_shaped() {
        let (response, body) = response(
            Refusal::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", "spent")
                .error_type("insufficient_quota")
                .retry_after(60),
        );
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "60");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "message": "spent",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
                "param": null,
            }})
        );
    }

    #[test]
    fn the_type_follows_the_status() {
        for (status, kind) in [
            (StatusCode::UNAUTHORIZED, "invalid_request_error"),
            (StatusCode::FORBIDDEN, "permission_error"),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            (StatusCode::SERVICE_UNAVAILABLE, "server_error"),
        ] {
            let (_, body) = response(Refusal::new(status, "c", "m"));
            assert_eq!(body["error"]["type"], kind, "{status}");
        }
    }

    #[test]
    fn a_status_that_is_no_error_becomes_500() {
        for status in [StatusCode::CONTINUE, StatusCode::OK, StatusCode::FOUND] {
            assert_eq!(
                Refusal::new(status, "c", "m").status(),
                StatusCode::INTERNAL_SERVER_ERROR
            );
        }
    }

    #[test]
    fn a_custom_body_replaces_the_default_one() {
        let (response, body) = response(
            Refusal::unauthorized("no").json(serde_json::json!({"detail": "log in first"})),
        );
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(body, serde_json::json!({"detail": "log in first"}));
    }
}
