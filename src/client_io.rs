//! The client's side of a session once upgraded: the TCP socket itself when
//! hyper hands it over as `TokioIo<TcpStream>`, so that the layer can tune it.
//!
//! hyper's own HTTP/1.1 connection builder does; `axum::serve` and hyper-util's
//! `auto::Builder` wrap the socket in a private type first (to sniff the
//! HTTP version), so their users tune it where they accept
//! (`RealtimeLayer::tune_client_socket`).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::socket_options::SocketOptions;

/// An upgraded client connection.
#[derive(Debug)]
pub(crate) enum ClientIo {
    /// A plain TCP connection served by hyper's own HTTP/1.1 connection builder:
    /// tuned by the layer.
    Tcp(TcpStream),
    /// Anything else (TLS, an HTTP/2 stream, another IO type): used as it is.
    Other(TokioIo<Upgraded>),
}

impl ClientIo {
    /// Unwraps the TCP socket under `upgraded` where there is one and tunes
    /// it. Returns the connection and the bytes hyper read past the request.
    pub(crate) fn new(upgraded: Upgraded, options: &SocketOptions) -> (Self, Bytes) {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let tcp = parts.io.into_inner();
                options.tune_client(&tcp);
                (ClientIo::Tcp(tcp), parts.read_buf)
            }
            Err(upgraded) => (ClientIo::Other(TokioIo::new(upgraded)), Bytes::new()),
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            ClientIo::Other(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            ClientIo::Other(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientIo::Tcp(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            ClientIo::Other(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientIo::Tcp(io) => io.is_write_vectored(),
            ClientIo::Other(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Tcp(io) => Pin::new(io).poll_flush(cx),
            ClientIo::Other(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientIo::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            ClientIo::Other(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
