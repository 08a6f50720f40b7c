//! The client's TCP socket as the layer leaves it: no Nagle, bounded
//! buffers, a user timeout; set by the layer where hyper hands it the socket,
//! and through the listener under `axum::serve`.
// Reads socket options the way Linux reports them.
#![cfg(target_os = "linux")]

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tower::Layer;
use tower_realtime::RealtimeLayer;
use tower_realtime::testing::MockUpstream;

/// Duplicated descriptors of the sockets a server accepted.
type Accepted = Arc<Mutex<Vec<OwnedFd>>>;

fn keep(accepted: &Accepted, tcp: &TcpStream) {
    accepted
        .lock()
        .unwrap()
        .push(tcp.as_fd().try_clone_to_owned().unwrap());
}

/// Serves `layer` with hyper's own HTTP/1.1 connection builder, which hands
/// the upgraded socket over as `TokioIo<TcpStream>`. It sets no option itself.
async fn serve_hyper_http1(layer: RealtimeLayer) -> (Gateway, Accepted) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Accepted::default();
    let record = Arc::clone(&accepted);
    let service = layer.allow_unauthenticated().layer(app());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            keep(&record, &stream);
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    (Gateway::detached(addr), accepted)
}

/// Serves `layer` with `axum::serve`, its listener tuned by the layer
/// (`tap_io`), as the README shows.
async fn serve_axum_tuned(layer: RealtimeLayer) -> (Gateway, Accepted) {
    let accepted = Accepted::default();
    let record = Arc::clone(&accepted);
    let tuning = layer.clone();
    let gateway = serve_axum_tapped(layer, move |tcp: &mut TcpStream| {
        tuning.tune_client_socket(tcp);
        keep(&record, tcp);
    })
    .await;
    (gateway, accepted)
}

/// Checks the options a session's client socket has by default.
fn assert_tuned(session: &SockRef<'_>) {
    assert!(session.tcp_nodelay().unwrap());
    // 64 KiB each way by default; Linux reports twice what it was asked.
    assert_eq!(session.recv_buffer_size().unwrap(), 128 << 10);
    assert_eq!(session.send_buffer_size().unwrap(), 128 << 10);
    // Unacknowledged writes are dead after the keepalive budget: (2 + 1) x 3 s.
    assert_eq!(
        session.tcp_user_timeout().unwrap(),
        Some(Duration::from_secs(9))
    );
}

#[tokio::test]
async fn the_layer_tunes_the_client_socket_it_reaches() {
    let upstream = MockUpstream::echo().await.unwrap();
    let (gateway, accepted) = serve_hyper_http1(RealtimeLayer::new(openai(&upstream))).await;

    // A plain request: its connection is left as the server made it.
    let mut plain = TcpStream::connect(gateway.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway.test\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 256];
    assert!(plain.read(&mut head).await.unwrap() > 0);

    // A session: the client sends its first event right after the `101`.
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    send_text(&mut client, "first").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    assert_eq!(next_data(&mut client).await, Message::text("first"));

    let accepted = accepted.lock().unwrap();
    assert_eq!(accepted.len(), 2);
    assert!(
        !SockRef::from(&accepted[0]).tcp_nodelay().unwrap(),
        "the server sets no option"
    );
    assert_tuned(&SockRef::from(&accepted[1]));
}

#[tokio::test]
async fn axum_serve_gets_the_options_through_its_listener() {
    let upstream = MockUpstream::echo().await.unwrap();
    let (gateway, accepted) = serve_axum_tuned(RealtimeLayer::new(openai(&upstream))).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    send_text(&mut client, "first").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    assert_eq!(next_data(&mut client).await, Message::text("first"));
    assert_tuned(&SockRef::from(&accepted.lock().unwrap()[0]));
}

#[tokio::test]
async fn socket_options_follow_the_configuration() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream))
        .client_socket_buffers(Some(24 << 10), Some(32 << 10))
        .keepalive(Some(Duration::from_secs(3)))
        .keepalive_misses(4);
    let (gateway, accepted) = serve_hyper_http1(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    {
        let accepted = accepted.lock().unwrap();
        let session = SockRef::from(&accepted[0]);
        assert!(session.tcp_nodelay().unwrap());
        assert_eq!(session.recv_buffer_size().unwrap(), 48 << 10);
        assert_eq!(session.send_buffer_size().unwrap(), 64 << 10);
        assert_eq!(
            session.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(15))
        );
    }

    // Without keepalive there is no user timeout either.
    let layer = RealtimeLayer::new(openai(&upstream)).keepalive(None);
    let (gateway, accepted) = serve_hyper_http1(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    assert_eq!(
        SockRef::from(&accepted.lock().unwrap()[0])
            .tcp_user_timeout()
            .unwrap(),
        None
    );
}
