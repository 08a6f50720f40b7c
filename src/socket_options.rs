//! TCP options of the two hops: no Nagle, bounded kernel queues, and dead
//! peers found by the kernel while writes to them are stuck.

use std::time::Duration;

use socket2::SockRef;
use tokio::net::TcpStream;

/// What the layer sets on the TCP sockets it can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketOptions {
    /// `SO_RCVBUF` of the client's socket (what the client may queue
    /// towards the relay); `None` keeps the kernel's autotuning.
    pub(crate) client_recv_buffer: Option<usize>,
    /// `SO_SNDBUF` of the client's socket (what the relay may queue towards
    /// the client).
    pub(crate) client_send_buffer: Option<usize>,
    /// `TCP_NOTSENT_LOWAT` of upstream sockets: the unsent bytes above which
    /// the relay stops writing (and so stops reading the client).
    pub(crate) upstream_notsent_lowat: Option<usize>,
    /// `TCP_USER_TIMEOUT` of both sockets: how long written data may stay
    /// unacknowledged before the kernel declares the peer dead.
    pub(crate) user_timeout: Option<Duration>,
}

impl SocketOptions {
    /// Tunes the client's socket: no Nagle, bounded buffers, user timeout.
    pub(crate) fn tune_client(&self, tcp: &TcpStream) {
        let _ = tcp.set_nodelay(true);
        let socket = SockRef::from(tcp);
        if let Some(bytes) = self.client_recv_buffer {
            let _ = socket.set_recv_buffer_size(bytes);
        }
        if let Some(bytes) = self.client_send_buffer {
            let _ = socket.set_send_buffer_size(bytes);
        }
        self.set_user_timeout(&socket);
    }

    /// Tunes an upstream socket: no Nagle, a low unsent watermark, user timeout.
    pub(crate) fn tune_upstream(&self, tcp: &TcpStream) {
        // Realtime audio is latency-bound: never wait to coalesce small frames.
        let _ = tcp.set_nodelay(true);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(bytes) = self.upstream_notsent_lowat {
            let lowat = u32::try_from(bytes).unwrap_or(u32::MAX);
            let _ = SockRef::from(tcp).set_tcp_notsent_lowat(lowat);
        }
        self.set_user_timeout(&SockRef::from(tcp));
    }

    #[cfg_attr(
        not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")),
        allow(unused_variables)
    )]
    fn set_user_timeout(&self, socket: &SockRef<'_>) {
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
        if let Some(timeout) = self.user_timeout {
            let _ = socket.set_tcp_user_timeout(Some(timeout));
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn options_reach_the_kernel() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let options = SocketOptions {
            client_recv_buffer: Some(32 << 10),
            client_send_buffer: Some(48 << 10),
            upstream_notsent_lowat: Some(16 << 10),
            user_timeout: Some(Duration::from_secs(7)),
        };
        options.tune_client(&accepted);
        options.tune_upstream(&client);
        let accepted = SockRef::from(&accepted);
        assert!(accepted.tcp_nodelay().unwrap());
        // Linux doubles what it is asked for, to make room for its bookkeeping.
        assert_eq!(accepted.recv_buffer_size().unwrap(), 64 << 10);
        assert_eq!(accepted.send_buffer_size().unwrap(), 96 << 10);
        assert_eq!(
            accepted.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(7))
        );
        let client = SockRef::from(&client);
        assert!(client.tcp_nodelay().unwrap());
        assert_eq!(client.tcp_notsent_lowat().unwrap(), 16 << 10);
        assert_eq!(
            client.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(7))
        );
    }
}
