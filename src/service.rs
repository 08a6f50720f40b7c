//! [`RealtimeService`]: the tower service that intercepts realtime upgrades.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::accept::accept;
use crate::body::RealtimeBody;
use crate::handshake::is_websocket_request;
use crate::layer::Config;
use crate::webrtc::routes::{Endpoint, handle};

/// Relays WebSocket upgrades on the realtime path; passes every other
/// request to `S` untouched (same headers, body and extensions).
///
/// Built by [`RealtimeLayer`](crate::RealtimeLayer). Its own answers (the
/// `101`, or an error with a JSON body) are responses, never service
/// errors. Responses carry a [`RealtimeBody`]: the inner service's body
/// untouched, or the layer's own. `S` may have any body type (axum's `Body`,
/// `BoxBody`, `UnsyncBoxBody`, tower-http's `TraceLayer` or
/// `CompressionLayer` bodies, ...), so the layer fits anywhere in a stack.
///
/// # HTTP/2 (RFC 8441)
///
/// Over HTTP/2 a session is an extended `CONNECT` with `:protocol websocket`
/// on the realtime path and `Sec-WebSocket-Version: 13`. It goes through the
/// same checks, routing, upstream dial, subprotocol choice and refusals as an
/// HTTP/1.1 upgrade, and opens with `200` (no `Sec-WebSocket-Accept`) instead
/// of `101`. A wrong or missing `Sec-WebSocket-Version` is a `400` there (HTTP/2
/// has no `426` upgrade to ask for). The upstream hop stays HTTP/1.1. Plain
/// `CONNECT` requests and other `:protocol`s go to `S`.
///
/// Clients send extended `CONNECT` only once the server has announced
/// `SETTINGS_ENABLE_CONNECT_PROTOCOL`, which servers do not by default:
///
/// - **hyper-util**: `builder.http2().enable_connect_protocol()`, as in the
///   example below. Without it hyper resets such streams before any service
///   sees them.
/// - **axum**: `axum::serve` enables it when axum's `http2` feature is on
///   (`axum = { version = "0.8", features = ["http2"] }`). Without that
///   feature it may still speak HTTP/2 (when another crate turns on
///   hyper-util's `http2`), but announces no extended `CONNECT`.
///
/// Several sessions can share one connection, each on its own stream, each
/// ending on its own. They also share the connection's flow-control window: a
/// session whose upstream stops reading stops reading its client stream
/// (backpressure), and that stream's unread data holds up to one stream window
/// of the connection window. With hyper's defaults both windows are 1 MiB, so
/// one stalled session pauses every session on its connection. When clients
/// multiplex sessions (a proxy, a load balancer), make the connection window
/// several times the stream window, as the example does: a stalled session
/// then holds 256 KiB of 8 MiB. `axum::serve` has no such setting; serve the
/// router with hyper-util instead. `max_concurrent_streams` (hyper's default:
/// 200) caps the sessions per connection.
///
/// A session is a stream of its connection, so a server's graceful shutdown
/// waits for it (HTTP/1.1 upgrades are detached and it does not): end
/// sessions with a [`ShutdownHandle`](crate::ShutdownHandle) first.
///
/// # The client's socket
///
/// Realtime events are small and bursty, so the client's TCP socket needs
/// `TCP_NODELAY` (else Nagle's algorithm and the client's delayed ACK add
/// up to 40 ms to some answers), and small buffers keep the relay's
/// backpressure close to the client. The layer sets both itself when hyper
/// hands over the upgraded connection as `TokioIo<TcpStream>` (hyper's own
/// `http1` connection builder; over HTTP/2 a session is a stream, not a
/// socket). hyper-util's `auto::Builder` and `axum::serve` wrap the socket
/// first: call
/// [`RealtimeLayer::tune_client_socket`](crate::RealtimeLayer::tune_client_socket)
/// where they accept, as below. Behind a TLS acceptor, tune the TCP stream
/// before the handshake the same way.
///
/// # Example
///
/// A plain hyper server, for HTTP/1.1 and HTTP/2 (also cleartext h2c):
///
/// ```no_run
/// use std::convert::Infallible;
/// use http_body_util::Full;
/// use hyper_util::rt::{TokioExecutor, TokioIo};
/// use hyper_util::server::conn::auto;
/// use hyper_util::service::TowerToHyperService;
/// use tower::service_fn;
/// use tower_realtime::{Providers, RealtimeLayer};
///
/// # async fn run() -> std::io::Result<()> {
/// let not_found = service_fn(|_request: http::Request<hyper::body::Incoming>| async {
///     Ok::<_, Infallible>(http::Response::builder().status(404).body(Full::<bytes::Bytes>::default()).unwrap())
/// });
/// let layer = RealtimeLayer::new(Providers::new());
/// let service = tower::Layer::layer(&layer, not_found);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (stream, _) = listener.accept().await?;
///     // No Nagle, bounded buffers: the auto builder hides the socket from the layer.
///     layer.tune_client_socket(&stream);
///     let service = TowerToHyperService::new(service.clone());
///     tokio::spawn(async move {
///         let mut builder = auto::Builder::new(TokioExecutor::new());
///         builder
///             .http2()
///             .enable_connect_protocol()
///             .initial_stream_window_size(256 * 1024)
///             .initial_connection_window_size(8 * 1024 * 1024);
///         let _ = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
///     });
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct RealtimeService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> RealtimeService<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for RealtimeService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealtimeService")
            .field("inner", &self.inner)
            .field("path", &self.config.path)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RealtimeService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<RealtimeBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if let Some(endpoint) = self
            .config
            .webrtc
            .as_ref()
            .and_then(|_| Endpoint::of(&self.config.path, request.uri().path()))
        {
            return ResponseFuture {
                kind: Kind::Session {
                    future: Box::pin(handle(Arc::clone(&self.config), endpoint, request)),
                },
            };
        }
        if request.uri().path() != self.config.path || !is_websocket_request(&request) {
            return ResponseFuture {
                kind: Kind::Inner {
                    future: self.inner.call(request),
                },
            };
        }
        let (parts, _body) = request.into_parts();
        ResponseFuture {
            kind: Kind::Session {
                future: Box::pin(accept::<Bytes>(Arc::clone(&self.config), parts)),
            },
        }
    }
}

/// The layer's own answer: its body is JSON or empty.
type SessionFuture = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

pin_project! {
    /// The response future of [`RealtimeService`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Session { future: SessionFuture },
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<RealtimeBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future
                .poll(cx)
                .map_ok(|response| response.map(RealtimeBody::inner)),
            KindProj::Session { future } => future
                .as_mut()
                .poll(cx)
                .map(|response| Ok(response.map(RealtimeBody::own))),
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
