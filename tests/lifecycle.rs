//! Graceful shutdown with `axum::serve(...).with_graceful_shutdown(...)`:
//! new upgrades get 503, live sessions get an `error` event and 1001 on
//! both sides, and the handle resolves when they are gone.

mod common;

use std::time::Duration;

use common::stack::{status_of, upgrade_request};
use common::*;
use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tower_realtime::testing::MockUpstream;
use tower_realtime::{RealtimeLayer, ShutdownHandle};

const TARGET: &str = "/v1/realtime?model=openai/gpt-realtime";

/// A server whose graceful shutdown closes the sessions and waits up to
/// `deadline` for them; the result of that wait comes back on the receiver.
struct Server {
    gateway: Gateway,
    trigger: oneshot::Sender<()>,
    drained: oneshot::Receiver<bool>,
    stopped: tokio::task::JoinHandle<()>,
}

async fn serve_with_graceful_shutdown(layer: RealtimeLayer, deadline: Duration) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = layer.shutdown_handle();
    let (trigger, triggered) = oneshot::channel();
    let (report, drained) = oneshot::channel();
    let app = app().layer(layer.allow_unauthenticated());
    let stopped = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = triggered.await;
                let _ = report.send(shutdown.shutdown(deadline).await);
            })
            .await
            .unwrap();
    });
    Server {
        gateway: Gateway::detached(addr),
        trigger,
        drained,
        stopped,
    }
}

/// Reads the shutdown `error` event, then close 1001, and finishes the close.
async fn expect_shutdown(client: &mut Client) {
    let event = next_event(client).await;
    assert_eq!(event["type"], "error", "{event}");
    assert_eq!(event["error"]["code"], "gateway_shutting_down", "{event}");
    assert_eq!(event["error"]["type"], "server_error", "{event}");
    let close = close_frame(client).await.expect("a close code");
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason, "gateway shutting down");
    let drain = async { while let Some(Ok(_)) = futures_util::StreamExt::next(client).await {} };
    tokio::time::timeout(PROMPTLY, drain).await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_closes_sessions_with_1001_and_waits_for_them() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream));
    let handle = layer.shutdown_handle();
    let server = serve_with_graceful_shutdown(layer, PROMPTLY).await;
    let mut clients = Vec::new();
    for n in 0..3 {
        let mut client = open(&server.gateway, "openai/gpt-realtime").await;
        next_event(&mut client).await;
        send_text(&mut client, &format!("before shutdown {n}")).await;
        assert_eq!(
            next_data(&mut client).await,
            Message::text(format!("before shutdown {n}"))
        );
        clients.push(client);
    }
    assert_eq!(handle.active_sessions(), 3);

    server.trigger.send(()).unwrap();
    for client in &mut clients {
        expect_shutdown(client).await;
    }
    let drained = tokio::time::timeout(PROMPTLY, server.drained)
        .await
        .unwrap()
        .unwrap();
    assert!(drained, "every session ended before the deadline");
    assert_eq!(handle.active_sessions(), 0);
    assert!(handle.is_shutting_down());
    let closes = upstream.closes();
    assert_eq!(closes.len(), 3);
    for close in closes {
        let close = close.expect("a close code");
        assert_eq!(close.code, CloseCode::Away);
        assert_eq!(close.reason, "gateway shutting down");
    }
    // The server itself stops, and stops listening.
    tokio::time::timeout(PROMPTLY, server.stopped)
        .await
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(server.gateway.addr).await.is_err());
}

#[tokio::test]
async fn once_shutdown_begins_new_upgrades_get_503_and_nothing_is_dialled() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream));
    let handle = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    handle.begin();
    assert!(handle.is_shutting_down());

    let (status, headers, body) = refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "gateway_shutting_down");
    assert_eq!(body["error"]["type"], "server_error");
    assert!(headers.get("retry-after").is_none());
    assert_eq!(upstream.connections(), 0);
    // The rest of the app still answers while the server drains.
    let health = raw_http(gateway.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_of(&health), 200, "{health}");
    // With nothing live, the handle resolves at once.
    assert!(handle.shutdown(Duration::from_millis(1)).await);
}

#[tokio::test]
async fn the_deadline_passes_when_a_client_never_finishes_its_close() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).close_timeout(Duration::from_secs(2));
    let handle = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    // A client that reads nothing, so never answers the close.
    let mut stubborn = RawClient::connect(gateway.addr, TARGET).await;
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.requests().len() == 1)
            .await
    );
    assert_eq!(handle.active_sessions(), 1);

    assert!(
        !handle.shutdown(Duration::from_millis(200)).await,
        "the deadline passed with a session live"
    );
    assert_eq!(handle.active_sessions(), 1);
    // The upstream side was closed properly meanwhile.
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    assert_eq!(upstream.closes()[0].clone().unwrap().code, CloseCode::Away);
    // The close timeout ends the session at last.
    tokio::time::timeout(PROMPTLY, handle.drained())
        .await
        .expect("the session ends after its close timeout");
    assert_eq!(handle.active_sessions(), 0);

    // What the client was sent is all there: the greeting, the event, the close.
    let created = stubborn.read_frame().await.unwrap();
    assert!(String::from_utf8_lossy(&created.payload).contains("session.created"));
    let event = stubborn.read_frame().await.unwrap();
    assert!(String::from_utf8_lossy(&event.payload).contains("gateway_shutting_down"));
    assert_eq!(stubborn.read_close().await.close_code(), Some(1001));
}

#[tokio::test]
async fn clones_of_a_layer_share_their_sessions() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).max_sessions(1);
    let clone = layer.clone();
    let handle: ShutdownHandle = clone.shutdown_handle();
    let first = serve_axum(layer).await;
    let second = serve_axum(clone).await;
    let mut client = open(&first, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    assert_eq!(handle.active_sessions(), 1);
    let head = raw_http(second.addr, &upgrade_request(TARGET, "")).await;
    assert_eq!(status_of(&head), 503, "{head}");
    handle.begin();
    expect_shutdown(&mut client).await;
    tokio::time::timeout(PROMPTLY, handle.drained())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_upstream_dialled_while_shutdown_begins_is_closed_with_1001() {
    // An upstream that holds the handshake until the test lets it go.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = listener.local_addr().unwrap();
    let (accepted, accepted_rx) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();
    let upstream = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        accepted.send(()).unwrap();
        released.await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    });
    let providers = tower_realtime::Providers::new().with(
        "openai",
        tower_realtime::provider::OpenAi::new(tower_realtime::Secret::new(PROVIDER_KEY))
            .base_url(&format!("http://{upstream_addr}/v1"))
            .unwrap(),
    );
    let layer = RealtimeLayer::new(providers);
    let handle = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    let client = tokio::spawn({
        let url = gateway.url("?model=openai/gpt-realtime");
        async move { refused(&url, &[]).await }
    });
    accepted_rx.await.unwrap();
    handle.begin();
    release.send(()).unwrap();

    let (status, _, body) = client.await.unwrap();
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "gateway_shutting_down");
    let close = tokio::time::timeout(PROMPTLY, upstream)
        .await
        .unwrap()
        .unwrap()
        .expect("a close code");
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason, "gateway shutting down");
    assert_eq!(handle.active_sessions(), 0);
}

#[tokio::test]
async fn an_upgrade_that_never_completes_releases_the_upstream_and_the_slot() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream))
        .connect_timeout(Duration::from_secs(1))
        .allow_unauthenticated();
    let sessions = layer.shutdown_handle();
    // An outer layer turns the `101` into a `200`: hyper never upgrades, and
    // keeps the connection open for the next request.
    let service = tower::ServiceBuilder::new()
        .map_response(|mut response: http::Response<_>| {
            if response.status() == 101 {
                *response.status_mut() = http::StatusCode::OK;
            }
            response
        })
        .service(tower::Layer::layer(&layer, app()));
    let gateway = common::stack::serve_service(service).await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, upgrade_request(TARGET, "").as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut head)
        .await
        .unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&head[..n])), 200);

    // The upstream is closed with 1011 and the slot freed, while the client
    // connection stays open.
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    let close = upstream.closes()[0].clone().expect("a close code");
    assert_eq!(close.code, CloseCode::Error);
    assert_eq!(close.reason, "client upgrade failed");
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| sessions.active_sessions() == 0)
            .await
    );
    drop(stream);
}

#[tokio::test]
async fn sessions_still_dialling_are_counted_apart_from_live_ones() {
    let stalling = MockUpstream::builder()
        .handshake(tower_realtime::testing::Handshake::Stall)
        .start()
        .await
        .unwrap();
    let layer = RealtimeLayer::new(openai(&stalling)).connect_timeout(Duration::from_secs(5));
    let sessions = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    let dialling = tokio::spawn({
        let url = gateway.url("?model=openai/gpt-realtime");
        async move { refused(&url, &[]).await.0 }
    });
    assert!(
        stalling
            .wait_until(PROMPTLY, |_| sessions.dialling_sessions() == 1)
            .await
    );
    assert_eq!(sessions.live_sessions(), 0);
    assert_eq!(sessions.active_sessions(), 1);
    assert_eq!(dialling.await.unwrap(), 504);
    assert_eq!(
        (sessions.dialling_sessions(), sessions.active_sessions()),
        (0, 0)
    );

    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream));
    let sessions = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    assert_eq!(
        (sessions.dialling_sessions(), sessions.live_sessions()),
        (0, 1)
    );
}
