//! A scripted provider of WebRTC calls: OpenAI's client secret, call and
//! call-action endpoints over HTTP, and the call's sideband WebSocket.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::log::{Log, RecordedRequest};
use super::script::{DynScript, Handshake, Script};
use super::session::UpstreamSession;
use super::sessions::Sessions;
use crate::webrtc::offer::Offer;

/// The SDP answer of every call: an audio and a data channel section.
pub const SDP_ANSWER: &str = "v=0\r\no=- 4227147428 1719357865 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 3478 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\na=ice-ufrag:mock\r\na=ice-pwd:mockmockmockmockmockmock\r\na=setup:active\r\na=rtpmap:111 opus/48000/2\r\nm=application 3478 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 127.0.0.1\r\na=mid:1\r\na=sctp-port:5000\r\n";

/// One HTTP request the provider received.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `POST`, usually.
    pub method: Method,
    /// The path, e.g. `/v1/realtime/calls`.
    pub path: String,
    /// The raw query, if any.
    pub query: Option<String>,
    /// Every header, as sent.
    pub headers: HeaderMap,
    /// The body, as sent.
    pub body: Bytes,
}

impl HttpRequest {
    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The SDP offer and the session of a `…/calls` request, read from
    /// whichever encoding it came in (raw SDP, multipart or JSON).
    pub fn offer(&self) -> Option<(String, Option<Value>)> {
        let offer = Offer::parse(self.header("content-type"), &self.body).ok()?;
        Some((offer.sdp, offer.session))
    }
}

/// How the provider answers offers.
#[derive(Debug, Clone)]
enum CallAnswer {
    Created { location: bool },
    Refuse { status: StatusCode, body: String },
}

#[derive(Debug)]
struct State {
    answer: CallAnswer,
    /// How the first offers are refused, and how many are left to refuse.
    first_refusal: Option<(StatusCode, String)>,
    refusals_left: AtomicUsize,
    http: Mutex<Vec<HttpRequest>>,
    calls: Mutex<Vec<String>>,
    /// Each call action with how many sideband messages had arrived before it.
    actions: Mutex<Vec<((String, String), usize)>>,
    next: AtomicUsize,
}

/// Configures a [`WebRtcUpstream`] before it starts.
#[must_use]
pub struct WebRtcUpstreamBuilder {
    answer: CallAnswer,
    first_refusals: Option<(usize, StatusCode, String)>,
    handshake: Handshake,
    script: Arc<dyn DynScript>,
    unknown_at_first: usize,
}

impl std::fmt::Debug for WebRtcUpstreamBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcUpstreamBuilder")
            .field("answer", &self.answer)
            .field("handshake", &self.handshake)
            .finish_non_exhaustive()
    }
}

impl WebRtcUpstreamBuilder {
    /// How sideband handshakes are answered (default: accepted).
    pub fn sideband_handshake(mut self, handshake: Handshake) -> Self {
        self.handshake = handshake;
        self
    }

    /// Refuses the first `count` sideband handshakes with `404` (the call
    /// is not known yet), as a provider may right after it answered an offer.
    pub fn sidebands_not_found_at_first(mut self, count: usize) -> Self {
        self.unknown_at_first = count;
        self
    }

    /// What every sideband does (default: receive and record until closed).
    pub fn sideband(mut self, script: impl Script) -> Self {
        self.script = Arc::new(script);
        self
    }

    /// Refuses every offer with `status` and a JSON `body`.
    ///
    /// # Panics
    ///
    /// When `status` is not a valid status code.
    pub fn refuse_calls(mut self, status: u16, body: impl Into<String>) -> Self {
        self.answer = CallAnswer::Refuse {
            status: StatusCode::from_u16(status).expect("a valid status code"),
            body: body.into(),
        };
        self
    }

    /// Refuses the first `count` offers with `status` and a JSON `body`
    /// (a passing failure), then answers as configured.
    ///
    /// # Panics
    ///
    /// When `status` is not a valid status code.
    pub fn refuse_first_calls(
        mut self,
        count: usize,
        status: u16,
        body: impl Into<String>,
    ) -> Self {
        let status = StatusCode::from_u16(status).expect("a valid status code");
        self.first_refusals = Some((count, status, body.into()));
        self
    }

    /// Answers offers with `201` but no `Location` (no call id).
    pub fn without_location(mut self) -> Self {
        self.answer = CallAnswer::Created { location: false };
        self
    }

    /// Listens on `127.0.0.1` at a free port.
    pub async fn start(self) -> io::Result<WebRtcUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (refusals, first_refusal) = match self.first_refusals {
            Some((count, status, body)) => (count, Some((status, body))),
            None => (0, None),
        };
        let state = Arc::new(State {
            answer: self.answer,
            first_refusal,
            refusals_left: AtomicUsize::new(refusals),
            http: Mutex::default(),
            calls: Mutex::default(),
            actions: Mutex::default(),
            next: AtomicUsize::new(1),
        });
        let log = Arc::new(Log::default());
        let sidebands = Arc::new(Sessions::default());
        let accept_loop = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&state),
            self.handshake,
            self.unknown_at_first,
            self.script,
            Arc::clone(&log),
            Arc::clone(&sidebands),
        ));
        Ok(WebRtcUpstream {
            addr,
            state,
            log,
            sidebands,
            accept_loop,
        })
    }
}

/// A scripted provider of WebRTC calls on `127.0.0.1`, with OpenAI's
/// endpoints under `/v1/realtime` (and Azure's under `/openai/v1/realtime`):
///
/// - `POST …/client_secrets` answers `{"value":"ek_mock…","expires_at","session"}`;
/// - `POST …/calls` takes an offer as raw SDP, multipart or JSON and answers
///   `201` with [`SDP_ANSWER`] and `Location: /v1/realtime/calls/rtc_mock…`
///   (or a scripted refusal);
/// - `POST …/calls/{id}/hangup` (`accept`, `reject`, `refer`) answers `200`
///   for a call it created, `404` otherwise;
/// - a WebSocket to `…/realtime?call_id=…` is the call's sideband, run by a
///   [`Script`] like a [`MockUpstream`](super::MockUpstream) session.
///
/// Everything it received is recorded.
///
/// # Example
///
/// ```
/// use tower_realtime::testing::WebRtcUpstream;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let provider = WebRtcUpstream::start().await?;
/// assert!(provider.base_url().ends_with("/v1"));
/// assert!(provider.calls().is_empty());
/// # Ok(())
/// # }
/// ```
pub struct WebRtcUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    log: Arc<Log>,
    sidebands: Arc<Sessions>,
    accept_loop: JoinHandle<()>,
}

impl std::fmt::Debug for WebRtcUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The default sideband: records what it receives until the gateway closes.
async fn listen(mut session: UpstreamSession) {
    while session.recv().await.is_some() {}
}

impl WebRtcUpstream {
    /// Starts configuring a provider.
    pub fn builder() -> WebRtcUpstreamBuilder {
        WebRtcUpstreamBuilder {
            answer: CallAnswer::Created { location: true },
            first_refusals: None,
            handshake: Handshake::Accept,
            script: Arc::new(listen),
            unknown_at_first: 0,
        }
    }

    /// A provider that answers every offer and accepts every sideband.
    pub async fn start() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// `http://127.0.0.1:PORT/v1`: the base URL for [`OpenAi`](crate::provider::OpenAi).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT`: the resource root for [`Azure`](crate::provider::Azure).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every HTTP request received so far.
    pub fn http_requests(&self) -> Vec<HttpRequest> {
        self.state.http.lock().expect("lock").clone()
    }

    /// The ids of the calls created so far (`rtc_mock…`).
    pub fn calls(&self) -> Vec<String> {
        self.state.calls.lock().expect("lock").clone()
    }

    /// Every call action received so far: (call id, `hangup`/`accept`/…).
    pub fn actions(&self) -> Vec<(String, String)> {
        let actions = self.state.actions.lock().expect("lock");
        actions.iter().map(|(action, _)| action.clone()).collect()
    }

    /// For each of [`actions`](Self::actions), how many messages the
    /// sidebands had received when it arrived (an index into
    /// [`sideband_received`](Self::sideband_received)): what came before it.
    pub fn sideband_received_before_actions(&self) -> Vec<usize> {
        let actions = self.state.actions.lock().expect("lock");
        actions.iter().map(|(_, before)| *before).collect()
    }

    /// Every sideband handshake received so far.
    pub fn sideband_requests(&self) -> Vec<RecordedRequest> {
        self.log.requests()
    }

    /// Every text and binary message received on sidebands.
    pub fn sideband_received(&self) -> Vec<Message> {
        self.log.messages()
    }

    /// Every close frame received on sidebands.
    pub fn sideband_closes(&self) -> Vec<Option<CloseFrame>> {
        self.log.closes()
    }

    /// Sidebands whose script has finished.
    pub fn sidebands_ended(&self) -> usize {
        self.log.ended()
    }

    /// Cuts every live sideband without a close frame.
    pub fn abort_sidebands(&self) {
        self.sidebands.abort();
    }

    /// Waits until `condition` holds, up to `timeout`; returns whether it did.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        condition: impl Fn(&WebRtcUpstream) -> bool,
    ) -> bool {
        self.log
            .wait_until(timeout, Duration::from_millis(20), || condition(self))
            .await
    }
}

impl Drop for WebRtcUpstream {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.abort_sidebands();
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    handshake: Handshake,
    unknown_at_first: usize,
    script: Arc<dyn DynScript>,
    log: Arc<Log>,
    sidebands: Arc<Sessions>,
) {
    let upgrades = Arc::new(AtomicUsize::new(0));
    while let Ok((stream, _)) = listener.accept().await {
        log.connection();
        // Each connection is told apart in a task of its own: a client may
        // open a connection and send nothing for a while (a pre-warmed one).
        let (state, handshake, script, log, sidebands, upgrades) = (
            Arc::clone(&state),
            handshake.clone(),
            Arc::clone(&script),
            Arc::clone(&log),
            Arc::clone(&sidebands),
            Arc::clone(&upgrades),
        );
        tokio::spawn(async move {
            if is_upgrade(&stream).await {
                let number = upgrades.fetch_add(1, Ordering::SeqCst) + 1;
                let handshake = if number <= unknown_at_first {
                    Handshake::reject(
                        404,
                        r#"{"error":{"message":"call not found","code":"call_not_found"}}"#,
                    )
                } else {
                    handshake
                };
                sidebands.spawn(stream, handshake, &script, &log, number);
            } else {
                let service = hyper::service::service_fn(move |request| {
                    let state = Arc::clone(&state);
                    let log = Arc::clone(&log);
                    async move {
                        let response = answer(&state, &log, request).await;
                        log.changed();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        });
    }
}

/// Whether the request head waiting on `stream` asks for a WebSocket.
async fn is_upgrade(stream: &TcpStream) -> bool {
    let mut head = vec![0u8; 16 << 10];
    loop {
        let Ok(read) = stream.peek(&mut head).await else {
            return false;
        };
        let seen = &head[..read];
        if read == 0 || read == head.len() || seen.windows(4).any(|w| w == b"\r\n\r\n") {
            return String::from_utf8_lossy(seen)
                .to_ascii_lowercase()
                .contains("upgrade: websocket");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "code": code, "param": null}});
    reply(status, "application/json", body.to_string())
}

async fn answer(state: &State, log: &Log, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let recorded = HttpRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    state.http.lock().expect("lock").push(recorded.clone());
    if parts.method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST",
        );
    }
    let Some((_, rest)) = parts.uri.path().split_once("/realtime/") else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    };
    let number = || state.next.fetch_add(1, Ordering::SeqCst);
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["client_secrets"] => {
            let request: Value = serde_json::from_slice(&body).unwrap_or_default();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs());
            let expires_at = now + 600;
            let body = json!({"value": format!("ek_mock{:06}", number()), "expires_at": expires_at, "session": request.get("session")});
            reply(StatusCode::OK, "application/json", body.to_string())
        }
        ["calls"] => {
            if recorded.offer().is_none() {
                return error(StatusCode::BAD_REQUEST, "invalid_offer", "no SDP offer");
            }
            let refused_first = state
                .refusals_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
            if let (true, Some((status, body))) = (refused_first, &state.first_refusal) {
                return reply(*status, "application/json", body.clone());
            }
            match &state.answer {
                CallAnswer::Refuse { status, body } => {
                    reply(*status, "application/json", body.clone())
                }
                CallAnswer::Created { location } => {
                    let id = format!("rtc_mock{:06}", number());
                    state.calls.lock().expect("lock").push(id.clone());
                    let mut response = reply(StatusCode::CREATED, "application/sdp", SDP_ANSWER);
                    if *location {
                        response.headers_mut().insert(
                            LOCATION,
                            HeaderValue::from_str(&format!("/v1/realtime/calls/{id}"))
                                .expect("a valid header"),
                        );
                    }
                    response
                }
            }
        }
        [
            "calls",
            id,
            action @ ("hangup" | "accept" | "reject" | "refer"),
        ] => {
            if !state
                .calls
                .lock()
                .expect("lock")
                .iter()
                .any(|call| call == id)
            {
                return error(StatusCode::NOT_FOUND, "call_not_found", "no such call");
            }
            state.actions.lock().expect("lock").push((
                ((*id).to_owned(), (*action).to_owned()),
                log.messages().len(),
            ));
            reply(StatusCode::OK, "application/json", Bytes::new())
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
    }
}
