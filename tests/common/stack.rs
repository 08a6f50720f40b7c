//! Serving any tower stack over a real socket, and raw HTTP/1 upgrades.

use std::convert::Infallible;

use axum::extract::Request;
use bytes::Bytes;
use http::Response;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder};
use tower_http::ServiceBuilderExt;

use super::Gateway;

/// Serves `service` (a whole stack, e.g. auth layers around a
/// `RealtimeService`) with `axum::serve`, whatever its body type.
pub async fn serve_service<S, B>(service: S) -> Gateway
where
    S: Service<Request, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // `axum::serve` takes responses with axum's body.
    let service = ServiceBuilder::new()
        .map_response_body(axum::body::Body::new)
        .service(service);
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<Request>::into_make_service(service),
        )
        .await
        .unwrap();
    });
    Gateway { addr, task }
}

/// A valid HTTP/1.1 upgrade for `target` (path and query) with `extra`
/// header lines (each ending in `\r\n`).
pub fn upgrade_request(target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: gateway.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// The status code of a raw response head.
pub fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

impl Gateway {
    /// A gateway served by a task the test owns itself.
    pub fn detached(addr: std::net::SocketAddr) -> Gateway {
        Gateway {
            addr,
            task: tokio::spawn(async {}),
        }
    }
}

impl super::RawClient {
    /// Performs the handshake on `path_and_query` with `extra` header lines
    /// (each ending in `\r\n`); panics unless it gets `101`. Returns the
    /// client and the response head.
    pub async fn connect_with(
        addr: std::net::SocketAddr,
        path_and_query: &str,
        extra: &str,
    ) -> (super::RawClient, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(upgrade_request(path_and_query, extra).as_bytes())
            .await
            .unwrap();
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            let n = tokio::time::timeout(super::PROMPTLY, stream.read(&mut chunk))
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
        let client = super::RawClient {
            stream,
            buffer: buffer[end..].to_vec(),
        };
        (client, head)
    }
}
