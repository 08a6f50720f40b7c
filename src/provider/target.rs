//! The request a provider sees and the target it returns.

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use url::Url;

use super::Protocol;
use crate::admission::Identity;
use crate::error::{ErrorType, Rejection, error_status};
use crate::secret::{Secret, redact};

/// The sample rate OpenAI assumes for 16-bit PCM input.
const OPENAI_PCM_INPUT_RATE: u32 = 24_000;

/// What a [`Provider`](super::Provider) is asked to route: the model (the
/// selector without its provider prefix), the session intent if any, the
/// client's request head, and the [`Identity`] the admission hook gave the
/// session.
///
/// # Example
///
/// ```
/// use tower_realtime::provider::TargetRequest;
///
/// let (parts, ()) = http::Request::get("/v1/realtime?model=openai/gpt-realtime")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let request = TargetRequest::new("openai", "gpt-realtime", None, &parts);
/// assert_eq!(request.model(), "gpt-realtime");
/// assert_eq!(request.provider(), "openai");
/// assert!(request.identity().is_anonymous());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TargetRequest<'a> {
    provider: &'a str,
    model: &'a str,
    intent: Option<&'a str>,
    parts: &'a Parts,
    identity: &'a Identity,
}

/// The identity of a request that names none.
static ANONYMOUS: Identity = Identity::anonymous();

impl<'a> TargetRequest<'a> {
    /// Describes one session to route. The layer builds these; tests of custom
    /// providers can too.
    pub fn new(
        provider: &'a str,
        model: &'a str,
        intent: Option<&'a str>,
        parts: &'a Parts,
    ) -> Self {
        Self {
            provider,
            model,
            intent,
            parts,
            identity: &ANONYMOUS,
        }
    }

    /// The same request, made by `identity`.
    ///
    /// ```
    /// use tower_realtime::Identity;
    /// use tower_realtime::provider::TargetRequest;
    ///
    /// let (parts, ()) = http::Request::get("/v1/realtime").body(()).unwrap().into_parts();
    /// let alice = Identity::new("alice");
    /// let request = TargetRequest::new("openai", "gpt-realtime", None, &parts).with_identity(&alice);
    /// assert_eq!(request.identity().name(), "alice");
    /// ```
    #[must_use]
    pub fn with_identity(mut self, identity: &'a Identity) -> Self {
        self.identity = identity;
        self
    }

    /// Who the session belongs to, as the admission hook decided
    /// ([`Identity::anonymous`] without one). A provider may pick a key or
    /// an account by it, or set a per-user header such as
    /// `OpenAI-Safety-Identifier` from it.
    pub fn identity(&self) -> &'a Identity {
        self.identity
    }

    /// The name the provider was registered under (the selector's prefix).
    pub fn provider(&self) -> &'a str {
        self.provider
    }

    /// The upstream model, already validated: no control characters or
    /// whitespace, at most 256 bytes. It may still contain any other
    /// character, so always percent-encode it into the URL.
    pub fn model(&self) -> &'a str {
        self.model
    }

    /// The `intent` query parameter (e.g. `transcription`), if the client sent one.
    pub fn intent(&self) -> Option<&'a str> {
        self.intent
    }

    /// The client's request head. Its credential headers are the gateway's
    /// business, never the upstream's: do not copy them into the target.
    pub fn parts(&self) -> &'a Parts {
        self.parts
    }
}

/// The upstream WebSocket a session is relayed to.
///
/// Credential headers added with [`Target::bearer`] or [`Target::api_key`] are
/// marked sensitive, and `Debug` replaces the secret values wherever they
/// appear, so a `Target` can be logged.
///
/// # Example
///
/// ```
/// use tower_realtime::provider::Target;
/// use tower_realtime::Secret;
/// use url::Url;
///
/// let key = Secret::new("sk-123");
/// let target = Target::new(Url::parse("wss://api.openai.com/v1/realtime?model=gpt-realtime").unwrap())
///     .bearer(&key);
/// assert_eq!(target.headers()["authorization"], "Bearer sk-123");
/// assert!(!format!("{target:?}").contains("sk-123"));
/// ```
#[derive(Clone)]
pub struct Target {
    url: Url,
    headers: HeaderMap,
    subprotocols: Vec<String>,
    secrets: Vec<Secret>,
    pcm_input_rate: u32,
    protocol: Protocol,
    /// Further 16-bit PCM input rates the upstream accepts.
    pcm_input_rates: Vec<u32>,
    /// The upstream serves OpenAI's WebRTC call endpoints beside its WebSocket.
    webrtc_calls: bool,
}

impl Target {
    /// A target at `url` (scheme `ws` or `wss`) with no headers yet.
    pub fn new(url: Url) -> Self {
        Self {
            url,
            headers: HeaderMap::new(),
            subprotocols: Vec::new(),
            secrets: Vec::new(),
            pcm_input_rate: OPENAI_PCM_INPUT_RATE,
            protocol: Protocol::OpenAiRealtime,
            pcm_input_rates: Vec::new(),
            webrtc_calls: false,
        }
    }

    /// Authenticates with `Authorization: Bearer KEY`.
    #[must_use]
    pub fn bearer(self, key: &Secret) -> Self {
        self.credential(AUTHORIZATION, &format!("Bearer {}", key.expose()), key)
    }

    /// Authenticates with the key as the value of `header` (e.g. Azure's `api-key`).
    #[must_use]
    pub fn api_key(self, header: HeaderName, key: &Secret) -> Self {
        self.credential(header, key.expose(), key)
    }

    fn credential(mut self, name: HeaderName, value: &str, key: &Secret) -> Self {
        match HeaderValue::from_str(value) {
            Ok(mut value) => {
                value.set_sensitive(true);
                self.headers.insert(name, value);
            }
            // A key that is not a valid header value fails upstream with 401
            // rather than leaking into an error message here.
            Err(_) => tracing::warn!(header = %name, "credential is not a valid header value"),
        }
        self.secrets.push(key.clone());
        self
    }

    /// Authenticates with the key in the URL query, as `name=KEY`, for
    /// upstreams that take it there. Like the credential headers, the key is
    /// a secret of this target: `Debug` and every error or log line about
    /// the upstream show `***` instead (in its raw and percent-encoded forms).
    ///
    /// ```
    /// use tower_realtime::provider::Target;
    /// use tower_realtime::Secret;
    /// use url::Url;
    ///
    /// let key = Secret::new("AIza-123/456");
    /// let target = Target::new(Url::parse("wss://example.com/live").unwrap()).query_secret("key", &key);
    /// assert_eq!(target.url().query(), Some("key=AIza-123%2F456"));
    /// let printed = format!("{target:?}");
    /// assert!(!printed.contains("AIza-123") && printed.contains("key=***"), "{printed}");
    /// ```
    #[must_use]
    pub fn query_secret(mut self, name: &str, key: &Secret) -> Self {
        self.url.query_pairs_mut().append_pair(name, key.expose());
        self.redact(key)
    }

    /// Treats `secret` as a secret of this target, in its raw and
    /// percent-encoded forms: `Debug` and every error or log line about the
    /// upstream show `***` instead. Credentials set with [`Target::bearer`],
    /// [`Target::api_key`] and [`Target::query_secret`] are already; use it
    /// for a secret the provider put elsewhere (a path segment, a header
    /// set with [`Target::header`]).
    ///
    /// ```
    /// use http::header::{HeaderName, HeaderValue};
    /// use tower_realtime::provider::Target;
    /// use tower_realtime::Secret;
    /// use url::Url;
    ///
    /// let token = Secret::new("tok-123");
    /// let target = Target::new(Url::parse("wss://example.com/live").unwrap())
    ///     .header(HeaderName::from_static("x-token"), HeaderValue::from_static("tok-123"))
    ///     .redact(&token);
    /// assert!(!format!("{target:?}").contains("tok-123"));
    /// ```
    #[must_use]
    pub fn redact(mut self, secret: &Secret) -> Self {
        let value = secret.expose();
        let query_encoded: String =
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        for form in [query_encoded, path_encoded(value)] {
            if form != value && !self.secrets.iter().any(|known| known.expose() == form) {
                self.secrets.push(Secret::new(form));
            }
        }
        self.secrets.push(secret.clone());
        self
    }

    /// Adds a header to the upstream request (replacing one of the same name).
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Offers a subprotocol upstream. Most providers need none.
    #[must_use]
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocols.push(protocol.into());
        self
    }

    /// The upstream URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The headers injected into the upstream handshake.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Declares the sample rate this upstream assumes for 16-bit PCM input
    /// that names none (`pcm16`, `audio/pcm` without a rate): 24 kHz, as
    /// OpenAI does, unless set. Usage accounting counts input audio seconds
    /// with it; nothing is sent upstream.
    ///
    /// ```
    /// use tower_realtime::provider::Target;
    /// use url::Url;
    ///
    /// let target = Target::new(Url::parse("wss://example.com/realtime").unwrap()).pcm_input_rate(16_000);
    /// assert_eq!(target.default_pcm_input_rate(), 16_000);
    /// ```
    #[must_use]
    pub fn pcm_input_rate(mut self, rate: u32) -> Self {
        self.pcm_input_rate = rate;
        self
    }

    /// The sample rate of 16-bit PCM input that names none; see [`Target::pcm_input_rate`].
    pub fn default_pcm_input_rate(&self) -> u32 {
        self.pcm_input_rate
    }

    /// Declares what the upstream speaks (OpenAI's schema unless set); a
    /// session to an upstream that needs translation runs a translator.
    #[must_use]
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// What the upstream speaks; see [`Target::protocol`].
    pub fn upstream_protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// Declares further sample rates this upstream accepts for 16-bit PCM
    /// input, besides the [default](Target::pcm_input_rate) one.
    ///
    /// Usage accounting learns the input format only from what the upstream
    /// confirms (`session.created`, `session.updated`), never from what the
    /// client asks for, and believes a confirmed PCM rate only when it is one
    /// of these or the default: an upstream that merely echoes a client's
    /// setting cannot bend the count either. Nothing is sent upstream.
    ///
    /// ```
    /// use tower_realtime::provider::Target;
    /// use url::Url;
    ///
    /// let target = Target::new(Url::parse("wss://example.com/realtime").unwrap())
    ///     .pcm_input_rates([16_000, 48_000]);
    /// assert!(target.supports_pcm_input_rate(24_000)); // the default
    /// assert!(target.supports_pcm_input_rate(16_000));
    /// assert!(!target.supports_pcm_input_rate(4_000_000_000));
    /// ```
    #[must_use]
    pub fn pcm_input_rates(mut self, rates: impl IntoIterator<Item = u32>) -> Self {
        self.pcm_input_rates.extend(rates);
        self
    }

    /// Whether this upstream accepts 16-bit PCM input at `rate`; see
    /// [`Target::pcm_input_rates`].
    pub fn supports_pcm_input_rate(&self, rate: u32) -> bool {
        rate == self.pcm_input_rate || self.pcm_input_rates.contains(&rate)
    }

    /// Every 16-bit PCM input rate this upstream accepts, the default first.
    pub(crate) fn supported_pcm_input_rates(&self) -> Vec<u32> {
        let mut rates = vec![self.pcm_input_rate];
        rates.extend(
            self.pcm_input_rates
                .iter()
                .filter(|rate| **rate != self.pcm_input_rate),
        );
        rates
    }

    /// Declares that this upstream also serves OpenAI's WebRTC call
    /// endpoints beside its realtime WebSocket URL (`…/realtime/calls`,
    /// `…/realtime/calls/{id}/hangup`, the sideband `…/realtime?call_id=`),
    /// with the same credential headers. [`OpenAi`](super::OpenAi) and
    /// [`Azure`](super::Azure) (GA URL shape) declare it; calls to other
    /// providers are refused with `400` (see [`webrtc`](crate::webrtc)).
    ///
    /// ```
    /// use tower_realtime::provider::Target;
    /// use url::Url;
    ///
    /// let target = Target::new(Url::parse("wss://example.com/v1/realtime?model=m").unwrap());
    /// assert!(!target.supports_webrtc_calls());
    /// assert!(target.webrtc_calls().supports_webrtc_calls());
    /// ```
    #[must_use]
    pub fn webrtc_calls(mut self) -> Self {
        self.webrtc_calls = true;
        self
    }

    /// Whether this upstream serves WebRTC calls; see [`Target::webrtc_calls`].
    pub fn supports_webrtc_calls(&self) -> bool {
        self.webrtc_calls
    }

    /// The subprotocols offered upstream.
    pub fn subprotocols(&self) -> &[String] {
        &self.subprotocols
    }

    /// The same target at another URL (a WebRTC call's sideband).
    pub(crate) fn with_url(mut self, url: Url) -> Self {
        self.url = url;
        self
    }

    /// The secrets this target carries, to scrub from what the upstream says.
    pub(crate) fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    pub(crate) fn into_parts(self) -> (Url, HeaderMap, Vec<String>, Vec<Secret>) {
        (self.url, self.headers, self.subprotocols, self.secrets)
    }
}

/// `value` percent-encoded as one URL path segment.
fn path_encoded(value: &str) -> String {
    let mut url = Url::parse("ws://host/").expect("a valid URL");
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.clear().push(value);
    }
    url.path().trim_start_matches('/').to_owned()
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = format!(
            "Target {{ url: {:?}, headers: {:?}, subprotocols: {:?} }}",
            self.url.as_str(),
            self.headers,
            self.subprotocols
        );
        f.write_str(&redact(&shown, &self.secrets))
    }
}

/// Why a provider cannot route a session; the client gets it as an HTTP
/// error with an OpenAI-shaped JSON body, and nothing is dialled.
///
/// # Example
///
/// ```
/// use http::StatusCode;
/// use tower_realtime::provider::TargetError;
///
/// let error = TargetError::bad_request("unsupported_intent", "intent `x` is not supported");
/// assert_eq!(error.status(), StatusCode::BAD_REQUEST);
///
/// let quota = TargetError::new(StatusCode::TOO_MANY_REQUESTS, "tenant_quota", "The tenant's quota is spent.")
///     .retry_after(60);
/// assert_eq!(quota.code(), "tenant_quota");
/// ```
#[derive(Debug, Clone)]
pub struct TargetError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    retry_after: Option<u64>,
}

impl TargetError {
    /// Refuses the session with `status` (any 4xx or 5xx), an error `code`
    /// and a `message` for the client. Do not put secrets in `message`.
    ///
    /// A `status` that is not an error (1xx, 2xx, 3xx) becomes `500`: a
    /// refusal must neither look like a success nor redirect.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_realtime::provider::TargetError;
    ///
    /// let forbidden = TargetError::new(StatusCode::FORBIDDEN, "model_not_allowed", "Not on your plan.");
    /// assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    /// let odd = TargetError::new(StatusCode::OK, "odd", "not an error status");
    /// assert_eq!(odd.status(), StatusCode::INTERNAL_SERVER_ERROR);
    /// ```
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status: error_status(status),
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The client asked for something this provider cannot do (400).
    pub fn bad_request(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The provider is misconfigured (500). Do not put secrets in `message`.
    pub fn misconfigured(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "provider_misconfigured",
            message,
        )
    }

    /// Tells the client when to try again (`Retry-After`, in seconds).
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The provider cannot serve sessions right now, e.g. while it fetches
    /// a credential (503).
    ///
    /// ```
    /// use tower_realtime::provider::TargetError;
    ///
    /// let error = TargetError::unavailable("token_unavailable", "no access token yet");
    /// assert_eq!(error.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    /// ```
    pub fn unavailable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// The HTTP status the client receives.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code the client receives (e.g. `unsupported_intent`).
    ///
    /// ```
    /// use tower_realtime::provider::TargetError;
    ///
    /// assert_eq!(TargetError::misconfigured("no host").code(), "provider_misconfigured");
    /// ```
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The error message the client receives.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TargetError {}

impl From<TargetError> for Rejection {
    fn from(error: TargetError) -> Self {
        let kind = ErrorType::for_status(error.status);
        let rejection = Rejection::new(error.status, kind, error.code, error.message);
        match error.retry_after {
            Some(seconds) => rejection.retry_after(seconds),
            None => rejection,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::Response;

    use super::*;

    #[test]
    fn any_error_status_reaches_the_client_with_its_code() {
        for (status, kind) in [
            (StatusCode::FORBIDDEN, "permission_error"),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            (StatusCode::NOT_FOUND, "invalid_request_error"),
            (StatusCode::SERVICE_UNAVAILABLE, "server_error"),
        ] {
            let response: Response<Bytes> =
                Rejection::from(TargetError::new(status, "my_code", "my message").retry_after(7))
                    .into_response();
            assert_eq!(response.status(), status);
            assert_eq!(response.headers()["retry-after"], "7");
            let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(body["error"]["type"], kind, "{status}");
            assert_eq!(body["error"]["code"], "my_code");
            assert_eq!(body["error"]["message"], "my message");
        }
    }

    #[test]
    fn statuses_that_are_no_errors_become_500() {
        for status in [101, 200, 204, 301, 308] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                TargetError::new(status, "c", "m").status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{status}"
            );
        }
    }

    #[test]
    fn secrets_are_hidden_in_every_encoding() {
        let key = Secret::new("k y+/SECRET?");
        let mut url = Url::parse("wss://example.com/live").unwrap();
        url.path_segments_mut().unwrap().push(key.expose());
        let target = Target::new(url).query_secret("key", &key);
        let printed = format!("{target:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(target.url().as_str().contains("SECRET"));
        assert_eq!(target.secrets().len(), 3);
    }
}
