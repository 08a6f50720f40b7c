//! Shared test harness: a gateway on loopback, WebSocket clients, raw sockets.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::Layer;
use tower_realtime::provider::OpenAi;
use tower_realtime::testing::MockUpstream;
use tower_realtime::usage::{Observation, SessionSummary};
use tower_realtime::{Providers, RealtimeLayer, Secret};

/// The provider key used by every test: recognisable, so leaks are found.
pub const PROVIDER_KEY: &str = "sk-provider-SECRET-0123456789";

/// How long a test waits for something that should happen promptly.
pub const PROMPTLY: Duration = Duration::from_secs(10);

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Providers with one `openai` provider pointing at `upstream`.
pub fn openai(upstream: &MockUpstream) -> Providers {
    Providers::new().with(
        "openai",
        OpenAi::new(Secret::new(PROVIDER_KEY))
            .base_url(&upstream.base_url())
            .unwrap(),
    )
}

/// `layer` with an observer that keeps every session's summary, and those summaries.
pub fn summaries(layer: RealtimeLayer) -> (RealtimeLayer, Arc<Mutex<Vec<SessionSummary>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&seen);
    let layer = layer.observer(move |observation: Observation<'_>| {
        if let Observation::SessionEnd(summary) = observation {
            into.lock().unwrap().push(summary.clone());
        }
    });
    (layer, seen)
}

/// A gateway listening on loopback.
pub struct Gateway {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gateway {
    pub fn url(&self, query: &str) -> String {
        format!("ws://{}/v1/realtime{query}", self.addr)
    }
}

/// The axum app the tests wrap: a couple of ordinary routes, one of them on
/// the realtime path itself.
pub fn app() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/v1/realtime",
            get(|| async { "plain GET on the realtime path" }),
        )
}

/// Serves `RealtimeLayer` wrapping [`app`] with `axum::serve`.
///
/// The serving helpers allow unauthenticated sessions: a test that sets an
/// admission hook still gets it (the hook runs either way), and one that
/// tests the missing decision uses [`serve_as_configured`].
pub async fn serve_axum(layer: RealtimeLayer) -> Gateway {
    serve_router(layer, app()).await
}

/// Serves `RealtimeLayer` wrapping [`app`] with `axum::serve`, handing each
/// accepted socket to `tap` first (as `ListenerExt::tap_io` does).
pub async fn serve_axum_tapped(
    layer: RealtimeLayer,
    tap: impl FnMut(&mut TcpStream) + Send + 'static,
) -> Gateway {
    use axum::serve::ListenerExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app().layer(layer.allow_unauthenticated());
    let task = tokio::spawn(async move {
        axum::serve(listener.tap_io(tap), app).await.unwrap();
    });
    Gateway { addr, task }
}

/// Serves `RealtimeLayer` wrapping [`app`] with `axum::serve`, its client
/// sockets tuned by the layer on the listener (as the README shows).
pub async fn serve_axum_tuned(layer: RealtimeLayer) -> Gateway {
    let tuning = layer.clone();
    serve_axum_tapped(layer, move |tcp: &mut TcpStream| {
        tuning.tune_client_socket(tcp);
    })
    .await
}

/// Reads the `error` event and the close frame a client gets when its
/// upstream is lost: close 1011 "upstream connection lost", which every
/// client library reports as it is.
pub async fn expect_upstream_lost(client: &mut Client) -> serde_json::Value {
    let event = next_event(client).await;
    assert_eq!(event["type"], "error", "{event}");
    assert_eq!(event["error"]["type"], "server_error", "{event}");
    assert_eq!(
        event["error"]["code"], "upstream_connection_lost",
        "{event}"
    );
    let close = close_frame(client).await.expect("a close code");
    assert_eq!(
        close.code,
        tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Error
    );
    assert_eq!(close.reason, "upstream connection lost");
    event
}

/// Serves `RealtimeLayer` wrapping `router` with `axum::serve`.
pub async fn serve_router(layer: RealtimeLayer, router: Router) -> Gateway {
    serve_as_configured(layer.allow_unauthenticated(), router).await
}

/// Serves `RealtimeLayer` wrapping `router` with `axum::serve`, with the
/// admission decision the layer has (or has not).
pub async fn serve_as_configured(layer: RealtimeLayer, router: Router) -> Gateway {
    stack::serve_service(layer.layer(router)).await
}

/// Serves `RealtimeLayer` wrapping [`app`] with a hyper-util server that
/// also speaks HTTP/2 with extended `CONNECT`.
pub async fn serve_hyper(layer: RealtimeLayer) -> Gateway {
    serve_hyper_with(layer, |builder| {
        builder.http2().enable_connect_protocol();
    })
    .await
}

/// Serves `RealtimeLayer` wrapping [`app`] with hyper-util's `auto::Builder`
/// as `configure` sets it up (nothing else is enabled).
pub async fn serve_hyper_with(
    layer: RealtimeLayer,
    configure: fn(&mut auto::Builder<TokioExecutor>),
) -> Gateway {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = layer.allow_unauthenticated().layer(app());
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let mut builder = auto::Builder::new(TokioExecutor::new());
                configure(&mut builder);
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Gateway { addr, task }
}

/// A WebSocket handshake request to `url` with extra headers.
pub fn request(url: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    request
}

/// Connects a WebSocket client; `Err` carries the refusal.
pub async fn connect(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(Client, http::Response<Option<Vec<u8>>>), WsError> {
    tokio_tungstenite::connect_async(request(url, headers)).await
}

/// Connects and expects the session to open.
pub async fn open(gateway: &Gateway, model: &str) -> Client {
    let (client, response) = connect(&gateway.url(&format!("?model={model}")), &[])
        .await
        .expect("the session opens");
    assert_eq!(response.status(), 101);
    client
}

/// Connects and expects a refusal; returns the status and the JSON body.
pub async fn refused(
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, serde_json::Value) {
    match connect(url, headers).await {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("JSON body, got {:?}", String::from_utf8_lossy(&body)));
            (response.status().as_u16(), response.headers().clone(), json)
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, the session opened"),
    }
}

/// The next text or binary message on any WebSocket (over TCP, TLS or an
/// HTTP/2 stream), skipping pings and pongs; within [`PROMPTLY`] in all
/// (keepalive pings do not extend the wait).
pub async fn next_data<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
) -> Message {
    let next = async {
        loop {
            let message = client
                .next()
                .await
                .expect("the stream is open")
                .expect("no error");
            match message {
                Message::Ping(_) | Message::Pong(_) => {}
                other => return other,
            }
        }
    };
    tokio::time::timeout(PROMPTLY, next)
        .await
        .expect("a message in time")
}

/// The next JSON event from the gateway.
pub async fn next_event(client: &mut Client) -> serde_json::Value {
    match next_data(client).await {
        Message::Text(text) => serde_json::from_str(&text).expect("a JSON event"),
        other => panic!("expected a JSON text message, got {other:?}"),
    }
}

/// Reads until the peer's close frame on any WebSocket, within
/// [`PROMPTLY`] in all; returns it (its code and reason).
pub async fn close_frame<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
) -> Option<CloseFrame> {
    let close = async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(PROMPTLY, close)
        .await
        .expect("a close in time")
}

/// Sends a text message.
pub async fn send_text(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.unwrap();
}

/// A `POST` (with a bearer token, if any): status, `Location`, body.
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    bearer: Option<&str>,
    body: String,
) -> (u16, Option<String>, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", content_type);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::from(body))).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, location, String::from_utf8(body.to_vec()).unwrap())
}

/// Waits until `condition` holds, looking every 10 ms; fails the test
/// with `what` after [`PROMPTLY`].
pub async fn until(what: &str, condition: impl Fn() -> bool) {
    let wait = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, wait)
        .await
        .unwrap_or_else(|_| panic!("{what}"));
}

/// A raw HTTP/1 exchange: writes `request` as is, returns the whole response head.
pub async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(PROMPTLY, stream.read(&mut buffer))
            .await
            .expect("a response in time")
            .unwrap();
        response.extend_from_slice(&buffer[..n]);
        if n == 0 || response.windows(4).any(|w| w == b"\r\n\r\n") {
            // Give a body in the same packet a moment to arrive too.
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buffer)).await
            {
                response.extend_from_slice(&buffer[..n]);
            }
            return String::from_utf8_lossy(&response).into_owned();
        }
    }
}

/// A minimal WebSocket client over a raw socket, for frames a well-behaved
/// library refuses to send or hides (reserved codes like 1014).
pub struct RawClient {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// A frame as read off the wire.
#[derive(Debug, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawClient {
    /// Performs the handshake on `path_and_query`; panics unless it gets `101`.
    pub async fn connect(addr: SocketAddr, path_and_query: &str) -> RawClient {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            let n = tokio::time::timeout(PROMPTLY, stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "connection closed during the handshake");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        RawClient {
            stream,
            buffer: buffer[end..].to_vec(),
        }
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Writes one frame; `mask` as a client must (or must not, to misbehave).
    pub async fn frame(&mut self, first_byte: u8, payload: &[u8], mask: bool) {
        self.write(&encode_frame(first_byte, payload, mask)).await;
    }

    /// Reads the next frame, or `None` at end of stream.
    pub async fn read_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((frame, used)) = decode_frame(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 65536];
            let n = tokio::time::timeout(PROMPTLY, self.stream.read(&mut chunk))
                .await
                .expect("a frame in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads frames until a close frame, within [`PROMPTLY`] in all; returns it.
    pub async fn read_close(&mut self) -> RawFrame {
        let close = async {
            loop {
                let frame = self
                    .read_frame()
                    .await
                    .expect("a close frame before the end");
                if frame.opcode == 8 {
                    return frame;
                }
            }
        };
        tokio::time::timeout(PROMPTLY, close)
            .await
            .expect("a close frame in time")
    }

    /// Drops the connection with a TCP reset instead of a FIN.
    pub fn reset(self) {
        self.stream.set_zero_linger().unwrap();
        drop(self.stream);
    }
}

/// Encodes a frame: `first_byte` is FIN/RSV/opcode.
pub fn encode_frame(first_byte: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    let mut frame = vec![first_byte];
    let mask_bit = if mask { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= u16::MAX as usize => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if mask {
        let key = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

fn decode_frame(buffer: &[u8]) -> Option<(RawFrame, usize)> {
    if buffer.len() < 2 {
        return None;
    }
    let fin = buffer[0] & 0x80 != 0;
    let opcode = buffer[0] & 0x0f;
    let (len, mut at) = match buffer[1] & 0x7f {
        126 if buffer.len() >= 4 => (u16::from_be_bytes([buffer[2], buffer[3]]) as usize, 4),
        127 if buffer.len() >= 10 => (
            u64::from_be_bytes(buffer[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let masked = buffer[1] & 0x80 != 0;
    let key = if masked {
        if buffer.len() < at + 4 {
            return None;
        }
        at += 4;
        Some([
            buffer[at - 4],
            buffer[at - 3],
            buffer[at - 2],
            buffer[at - 1],
        ])
    } else {
        None
    };
    if buffer.len() < at + len {
        return None;
    }
    let mut payload = buffer[at..at + len].to_vec();
    if let Some(key) = key {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= key[i % 4]);
    }
    Some((
        RawFrame {
            fin,
            opcode,
            payload,
        },
        at + len,
    ))
}
pub mod example;
pub mod http2;
pub mod log_capture;
pub mod process;
pub mod stack;

/// The JSON events a client reads until `stop` says so, and the close code
/// if the session closes first.
pub async fn read_events_until<S>(
    socket: &mut S,
    stop: impl Fn(&serde_json::Value) -> bool,
) -> (Vec<serde_json::Value>, Option<u16>)
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut events = Vec::new();
    let read = async {
        while let Some(message) = socket.next().await {
            match message.unwrap() {
                Message::Text(text) => {
                    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let done = stop(&event);
                    events.push(event);
                    if done {
                        return None;
                    }
                }
                Message::Close(frame) => return frame.map(|frame| u16::from(frame.code)),
                _ => {}
            }
        }
        None
    };
    let close = tokio::time::timeout(PROMPTLY, read).await.expect("in time");
    (events, close)
}
