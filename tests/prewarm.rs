//! Pre-warmed upstream sockets: refilled, expired, never used twice, and a
//! socket the upstream closed while it waited never fails a session.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tower_realtime::RealtimeLayer;
use tower_realtime::testing::MockUpstream;

/// Opens a session and checks that it relays.
async fn echo_session(gateway: &Gateway) {
    let mut client = open(gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    client.send(Message::text("ping")).await.unwrap();
    assert_eq!(next_data(&mut client).await, Message::text("ping"));
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn each_session_takes_a_warm_socket_once_and_the_pool_refills() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).prewarm(2)).await;
    echo_session(&gateway).await;
    // The first session dialled; its host is warmed now.
    until("two sockets warmed", || upstream.connections() == 3).await;
    echo_session(&gateway).await;
    echo_session(&gateway).await;
    until("refilled after each take", || upstream.connections() == 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Three handshakes on five sockets: two taken from the pool, one each,
    // and two waiting; no more were opened.
    assert_eq!(upstream.requests().len(), 3);
    assert_eq!(upstream.connections(), 5);
}

#[tokio::test]
async fn waiting_sockets_are_replaced_before_they_get_old() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream))
        .prewarm(2)
        .prewarm_idle(Duration::from_secs(1));
    let gateway = serve_axum(layer).await;
    echo_session(&gateway).await;
    until("expired sockets replaced twice", || {
        upstream.connections() >= 7
    })
    .await;
    echo_session(&gateway).await;
    assert_eq!(upstream.requests().len(), 2);
}

/// A TCP proxy in front of an upstream that can close the connections that
/// have carried nothing yet: at once (`close_idle`), or when their first
/// bytes arrive (`doom_idle`, a close that races the upgrade).
struct Proxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    close_idle: watch::Sender<u64>,
    doom_idle: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (close_idle, _) = watch::channel(0u64);
        let (doom_idle, _) = watch::channel(0u64);
        let proxy = Proxy {
            addr,
            accepted: Arc::clone(&accepted),
            close_idle: close_idle.clone(),
            doom_idle: doom_idle.clone(),
        };
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let mut closing = close_idle.subscribe();
                let born = (*closing.borrow_and_update(), *doom_idle.borrow());
                let doom = doom_idle.subscribe();
                tokio::spawn(async move {
                    let mut first = vec![0; 16 << 10];
                    let read = tokio::select! {
                        read = socket.read(&mut first) => read,
                        _ = closing.changed() => return,
                    };
                    let Ok(read @ 1..) = read else { return };
                    if *doom.borrow() > born.1 {
                        return;
                    }
                    let mut server = TcpStream::connect(upstream).await.unwrap();
                    server.write_all(&first[..read]).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut socket, &mut server).await;
                });
            }
        });
        proxy
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

fn via(proxy: &Proxy) -> tower_realtime::Providers {
    tower_realtime::Providers::new().with(
        "openai",
        tower_realtime::provider::OpenAi::new(tower_realtime::Secret::new(PROVIDER_KEY))
            .base_url(&proxy.base_url())
            .unwrap(),
    )
}

#[tokio::test]
async fn a_socket_closed_while_it_waited_is_not_used() {
    let upstream = MockUpstream::echo().await.unwrap();
    let proxy = Proxy::start(upstream.addr()).await;
    let gateway = serve_axum(RealtimeLayer::new(via(&proxy)).prewarm(2)).await;
    echo_session(&gateway).await;
    until("two sockets warmed", || {
        proxy.accepted.load(Ordering::SeqCst) == 3
    })
    .await;
    proxy.close_idle.send_modify(|generation| *generation += 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    echo_session(&gateway).await;
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn a_socket_closed_as_it_is_used_gives_way_to_a_fresh_dial() {
    let upstream = MockUpstream::echo().await.unwrap();
    let proxy = Proxy::start(upstream.addr()).await;
    let gateway = serve_axum(RealtimeLayer::new(via(&proxy)).prewarm(1)).await;
    echo_session(&gateway).await;
    until("one socket warmed", || {
        proxy.accepted.load(Ordering::SeqCst) == 2
    })
    .await;
    // The waiting socket looks open, but is closed when the upgrade arrives.
    proxy.doom_idle.send_modify(|generation| *generation += 1);
    echo_session(&gateway).await;
    assert_eq!(upstream.requests().len(), 2);
    assert!(proxy.accepted.load(Ordering::SeqCst) >= 3, "dialled afresh");
}
