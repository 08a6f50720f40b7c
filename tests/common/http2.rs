//! WebSockets over HTTP/2 (RFC 8441): a real hyper HTTP/2 client speaking
//! cleartext h2c to a gateway on loopback, doing extended CONNECT.

use std::future::{Future, poll_fn};
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper::ext::Protocol;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::PROMPTLY;

/// The client end of a WebSocket carried by one HTTP/2 stream.
pub type H2Socket = WebSocketStream<TokioIo<Upgraded>>;

/// One HTTP/2 connection to a gateway; every request is a stream on it.
pub struct H2Connection {
    addr: SocketAddr,
    sender: http2::SendRequest<Full<Bytes>>,
    /// Whether the server's SETTINGS_ENABLE_CONNECT_PROTOCOL is on.
    connect_protocol: watch::Receiver<bool>,
    /// The same TCP socket, to cut it from outside.
    socket: std::net::TcpStream,
    task: JoinHandle<()>,
}

impl Drop for H2Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An extended CONNECT the gateway answered with something other than `200`.
#[derive(Debug)]
pub struct H2Refusal {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

impl H2Connection {
    /// Connects with HTTP/2 prior knowledge and waits for the server's
    /// SETTINGS to enable extended CONNECT, as RFC 8441 §4 requires of a
    /// client before it sends `:protocol`.
    pub async fn connect(addr: SocketAddr) -> H2Connection {
        let mut connection = H2Connection::handshake(addr).await;
        tokio::time::timeout(PROMPTLY, connection.connect_protocol.wait_for(|on| *on))
            .await
            .expect("the server enables extended CONNECT in its SETTINGS")
            .expect("the connection is alive");
        connection
    }

    /// Connects without waiting for anything from the server.
    pub async fn handshake(addr: SocketAddr) -> H2Connection {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let stream = stream.into_std().unwrap();
        let socket = stream.try_clone().unwrap();
        let stream = TcpStream::from_std(stream).unwrap();
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let (settings, connect_protocol) = watch::channel(false);
        // hyper's `Connection` future is not woken when SETTINGS arrive (the
        // frames are read by a task of its own), so look at the flag on a
        // short tick until it is on, for a while at most.
        let task = tokio::spawn(async move {
            let mut connection = pin!(connection);
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            let give_up = Instant::now() + PROMPTLY;
            let _ = poll_fn(|cx| {
                let polled = connection.as_mut().poll(cx);
                let enabled = connection.is_extended_connect_protocol_enabled();
                settings.send_if_modified(|on| std::mem::replace(on, enabled) != enabled);
                if !enabled && Instant::now() < give_up {
                    while tick.poll_tick(cx).is_ready() {}
                }
                polled
            })
            .await;
        });
        H2Connection {
            addr,
            sender,
            connect_protocol,
            socket,
            task,
        }
    }

    /// Whether the server has enabled extended CONNECT so far.
    pub fn connect_protocol_enabled(&self) -> bool {
        *self.connect_protocol.borrow()
    }

    /// `http://ADDR{path_and_query}`.
    pub fn uri(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// Sends one request on a new stream.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> hyper::Result<Response<Incoming>> {
        assert_eq!(
            request.version(),
            Version::HTTP_11,
            "hyper sets HTTP/2 itself"
        );
        let mut sender = self.sender.clone();
        tokio::time::timeout(PROMPTLY, sender.send_request(request))
            .await
            .expect("a response in time")
    }

    /// An extended CONNECT for `protocol` on `path_and_query`, with exactly `headers`.
    pub fn extended_connect(
        &self,
        path_and_query: &str,
        protocol: &'static str,
        headers: &[(&str, &str)],
    ) -> Request<Full<Bytes>> {
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .uri(self.uri(path_and_query))
            .body(Full::default())
            .unwrap();
        request
            .extensions_mut()
            .insert(Protocol::from_static(protocol));
        for (name, value) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        request
    }

    /// A well-formed WebSocket extended CONNECT to `/v1/realtime{query}`
    /// (`Sec-WebSocket-Version: 13`), plus `headers`.
    pub fn websocket_request(&self, query: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
        let mut all = vec![("sec-websocket-version", "13")];
        all.extend_from_slice(headers);
        self.extended_connect(&format!("/v1/realtime{query}"), "websocket", &all)
    }

    /// Sends `request`; on `200` the stream becomes a WebSocket, otherwise
    /// the refusal (whose body must be JSON) comes back.
    pub async fn upgrade(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(H2Socket, http::response::Parts), H2Refusal> {
        let (io, parts) = self.upgrade_io(request).await?;
        let socket = WebSocketStream::from_raw_socket(io, Role::Client, None).await;
        Ok((socket, parts))
    }

    /// Like [`H2Connection::upgrade`], but leaves the stream's bytes raw.
    pub async fn upgrade_io(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(TokioIo<Upgraded>, http::response::Parts), H2Refusal> {
        let mut response = self.send(request).await.expect("a response");
        if response.status() != StatusCode::OK {
            let (parts, body) = response.into_parts();
            let body = tokio::time::timeout(PROMPTLY, body.collect())
                .await
                .expect("the body in time")
                .unwrap()
                .to_bytes();
            let body = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("JSON body, got {:?}", String::from_utf8_lossy(&body)));
            return Err(H2Refusal {
                status: parts.status,
                headers: parts.headers,
                body,
            });
        }
        let upgraded = tokio::time::timeout(PROMPTLY, hyper::upgrade::on(&mut response))
            .await
            .expect("the upgrade in time")
            .expect("the stream is upgraded");
        Ok((TokioIo::new(upgraded), response.into_parts().0))
    }

    /// Opens a session on `?model={model}`; panics unless it gets `200`.
    pub async fn open(&self, model: &str) -> H2Socket {
        self.open_with(&format!("?model={model}"), &[]).await.0
    }

    /// Opens a session on `/v1/realtime{query}` with extra `headers`;
    /// panics unless it gets `200`.
    pub async fn open_with(
        &self,
        query: &str,
        headers: &[(&str, &str)],
    ) -> (H2Socket, http::response::Parts) {
        match self.upgrade(self.websocket_request(query, headers)).await {
            Ok(opened) => opened,
            Err(refusal) => panic!("expected 200, got {refusal:?}"),
        }
    }

    /// Expects the gateway to refuse `/v1/realtime{query}` with `headers`.
    pub async fn refused(&self, query: &str, headers: &[(&str, &str)]) -> H2Refusal {
        self.refused_request(self.websocket_request(query, headers))
            .await
    }

    /// Expects the gateway to refuse `request`.
    pub async fn refused_request(&self, request: Request<Full<Bytes>>) -> H2Refusal {
        match self.upgrade(request).await {
            Err(refusal) => refusal,
            Ok(_) => panic!("expected a refusal, the session opened"),
        }
    }

    /// Cuts the TCP connection under every stream, without HTTP/2 goodbyes.
    pub fn cut(&self) {
        self.socket.shutdown(Shutdown::Both).unwrap();
    }
}

/// The next JSON event.
pub async fn recv_event<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocketStream<S>,
) -> serde_json::Value {
    match super::next_data(socket).await {
        Message::Text(text) => serde_json::from_str(&text).expect("a JSON event"),
        other => panic!("expected a JSON text message, got {other:?}"),
    }
}

/// Reads until the stream ends (after a close handshake).
pub async fn recv_end<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocketStream<S>) {
    tokio::time::timeout(PROMPTLY, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await
    .expect("the stream ends in time");
}

/// Reads raw frames off an upgraded stream until a close frame (from the
/// server, so unmasked), within [`PROMPTLY`] in all; returns its code,
/// whatever tungstenite would make of it.
pub async fn raw_close_code(io: &mut TokioIo<Upgraded>) -> u16 {
    tokio::time::timeout(PROMPTLY, read_close_code(io))
        .await
        .expect("a close frame in time")
}

async fn read_close_code(io: &mut TokioIo<Upgraded>) -> u16 {
    let mut buffer = Vec::new();
    loop {
        if buffer.len() >= 2 {
            let (len, at) = match buffer[1] & 0x7f {
                126 if buffer.len() >= 4 => {
                    (u16::from_be_bytes([buffer[2], buffer[3]]) as usize, 4)
                }
                127 if buffer.len() >= 10 => (
                    u64::from_be_bytes(buffer[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => (usize::MAX, 0),
                n => (n as usize, 2),
            };
            if len != usize::MAX && buffer.len() >= at + len {
                if buffer[0] & 0x0f == 8 {
                    assert!(len >= 2, "a close frame with a code");
                    return u16::from_be_bytes([buffer[at], buffer[at + 1]]);
                }
                buffer.drain(..at + len);
                continue;
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(PROMPTLY, io.read(&mut chunk))
            .await
            .expect("a frame in time")
            .unwrap();
        assert!(n > 0, "the stream ended before a close frame");
        buffer.extend_from_slice(&chunk[..n]);
    }
}
