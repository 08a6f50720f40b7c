//! No task, socket or session permit outlives its session: after two
//! thousand sessions that end in every way, the process holds what it held
//! before. (One test in this binary, so that nothing else opens sockets.)
// Reads /proc: Linux only.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::process::{open_fds, open_sockets};
use common::stack::{status_of, upgrade_request};
use common::*;
use futures_util::future::join_all;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tower_realtime::provider::OpenAi;
use tower_realtime::testing::{Handshake, MockUpstream, UpstreamSession};
use tower_realtime::{RealtimeLayer, Secret};

/// Sessions per kind; eight kinds.
const PER_KIND: usize = 250;
/// Sessions in flight at once.
const CONCURRENCY: usize = 16;
const LIMIT: usize = 32;

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Messages both ways, then the client closes.
    Normal,
    /// The client drops its socket (FIN) without a close frame.
    ClientDrops,
    /// The client resets its connection.
    ClientResets,
    /// The client sends the upgrade and leaves without reading the answer.
    ClientLeavesDuringHandshake,
    /// The upstream hangs up without a close frame.
    UpstreamHangsUp,
    /// The upstream closes with 1000.
    UpstreamCloses,
    /// Refused before dialling (invalid model).
    Invalid,
    /// Refused by the upstream (401).
    UpstreamRefuses,
}

const KINDS: [Kind; 8] = [
    Kind::Normal,
    Kind::ClientDrops,
    Kind::ClientResets,
    Kind::ClientLeavesDuringHandshake,
    Kind::UpstreamHangsUp,
    Kind::UpstreamCloses,
    Kind::Invalid,
    Kind::UpstreamRefuses,
];

async fn upstream_script(mut session: UpstreamSession) {
    session.session_created().await;
    match session.model().as_deref() {
        Some("hangup") => drop(session.into_socket()),
        Some("close") => {
            if session.recv().await.is_some() {
                session.close(1000, "done").await;
            }
        }
        _ => session.echo().await,
    }
}

/// An upgrade for `target` that asks the server to close the connection
/// after its answer, so that a refusal is read to its end at once.
fn upgrade_then_close(target: &str) -> String {
    upgrade_request(target, "").replace("Connection: Upgrade", "Connection: Upgrade, close")
}

async fn run(gateway: &Gateway, kind: Kind) {
    let target = |model: &str| format!("/v1/realtime?model={model}");
    match kind {
        Kind::Normal => {
            let mut client = open(gateway, "openai/echo").await;
            next_event(&mut client).await;
            send_text(&mut client, "hello").await;
            assert_eq!(next_data(&mut client).await, Message::text("hello"));
            client.close(None).await.unwrap();
            while let Some(Ok(_)) = futures_util::StreamExt::next(&mut client).await {}
        }
        Kind::ClientDrops => {
            let mut client = open(gateway, "openai/echo").await;
            next_event(&mut client).await;
            drop(client);
        }
        Kind::ClientResets => {
            let mut client = RawClient::connect(gateway.addr, &target("openai/echo")).await;
            client.read_frame().await.unwrap();
            client.reset();
        }
        Kind::ClientLeavesDuringHandshake => {
            let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
            stream
                .write_all(upgrade_request(&target("openai/echo"), "").as_bytes())
                .await
                .unwrap();
            drop(stream);
        }
        Kind::UpstreamHangsUp => {
            let mut client = RawClient::connect(gateway.addr, &target("openai/hangup")).await;
            let close = client.read_close().await;
            assert_eq!(close.close_code(), Some(1011));
            client.frame(0x88, &close.payload[..2], true).await;
            assert_eq!(client.read_frame().await, None);
        }
        Kind::UpstreamCloses => {
            let mut client = open(gateway, "openai/close").await;
            next_event(&mut client).await;
            send_text(&mut client, "bye").await;
            assert_eq!(
                close_frame(&mut client).await.unwrap().code,
                CloseCode::Normal
            );
            while let Some(Ok(_)) = futures_util::StreamExt::next(&mut client).await {}
        }
        Kind::Invalid => {
            let head = raw_http(gateway.addr, &upgrade_then_close(&target("openai/a%00"))).await;
            assert_eq!(status_of(&head), 400, "{head}");
        }
        Kind::UpstreamRefuses => {
            let head = raw_http(gateway.addr, &upgrade_then_close(&target("denied/m"))).await;
            assert_eq!(status_of(&head), 502, "{head}");
        }
    }
}

/// Waits until `condition` holds; panics with `what` if it does not in time.
async fn settle(what: &str, condition: impl Fn() -> bool) {
    let wait = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, wait)
        .await
        .unwrap_or_else(|_| panic!("{what}"));
}

#[tokio::test]
async fn thousands_of_sessions_leave_nothing_behind() {
    let upstream = MockUpstream::with_script(upstream_script).await.unwrap();
    let denying = MockUpstream::builder()
        .handshake(Handshake::reject(401, r#"{"error":{"message":"no"}}"#))
        .start()
        .await
        .unwrap();
    let providers = openai(&upstream).with(
        "denied",
        OpenAi::new(Secret::new(PROVIDER_KEY))
            .base_url(&denying.base_url())
            .unwrap(),
    );
    let layer = RealtimeLayer::new(providers).max_sessions(LIMIT);
    let handle = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    let runtime = tokio::runtime::Handle::current().metrics();

    let fds_before = open_fds();
    let sockets_before = open_sockets();
    let tasks_before = runtime.num_alive_tasks();

    let sessions: Vec<Kind> = (0..PER_KIND).flat_map(|_| KINDS).collect();
    for batch in sessions.chunks(CONCURRENCY) {
        join_all(batch.iter().map(|&kind| run(&gateway, kind))).await;
    }

    // Sessions over the limit: fill it, get refused, let go.
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        let mut client = open(&gateway, "openai/echo").await;
        next_event(&mut client).await;
        held.push(client);
    }
    for _ in 0..100 {
        let head = raw_http(
            gateway.addr,
            &upgrade_then_close("/v1/realtime?model=openai/echo"),
        )
        .await;
        assert_eq!(status_of(&head), 503, "{head}");
    }
    drop(held);

    settle("every session ends", || handle.active_sessions() == 0).await;
    let dialled = upstream.requests().len();
    settle("every upstream session ends", || {
        upstream.sessions_ended() == dialled
    })
    .await;
    settle("the sockets are closed", || {
        open_sockets() == sockets_before
    })
    .await;
    settle("the tasks are done", || {
        runtime.num_alive_tasks() == tasks_before
    })
    .await;
    assert_eq!(open_fds(), fds_before);
    eprintln!(
        "{} sessions + 100 over the limit: {dialled} dialled; before and after: {fds_before} fds, \
         {sockets_before} sockets, {tasks_before} tasks",
        sessions.len()
    );
    // Five kinds reach the upstream, once per session; a client that leaves
    // during its handshake may be gone before the dial.
    assert!(
        (5 * PER_KIND + LIMIT..=6 * PER_KIND + LIMIT).contains(&dialled),
        "{dialled}"
    );
    assert_eq!(denying.requests().len(), PER_KIND);
}
