//! Faults on the provider link: a provider that goes silent (packets
//! dropped, no reset) is found within the keepalive budget, idle or while
//! the client streams; a slow provider link queues a bounded amount in the
//! gateway's kernel buffers.
//!
//! Each test runs in a network namespace of its own (created with
//! `unshare(CLONE_NEWNET)` on a thread of its own, and gone when that
//! thread ends): gateway, client and upstream talk over its loopback, and
//! the faults are injected on the upstream's port only, with `iptables`
//! (DROP) and `tc` (a 256 kbit/s rate limit). That needs root and
//! iproute2/iptables; elsewhere the tests say why and skip, except under
//! `CI=true`, where they fail.
#![cfg(target_os = "linux")]

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{TcpQueues, tcp_queues_in};
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tower_realtime::RealtimeLayer;
use tower_realtime::testing::{MockUpstream, UpstreamSession};

/// Runs `test` in a fresh network namespace, on a runtime whose threads all
/// live in it. Returns without running it (saying why) where that is not
/// possible, unless `CI=true`.
fn in_network_namespace<F: Future<Output = ()>>(test: impl FnOnce() -> F + Send + 'static) {
    if let Some(reason) = missing_privileges() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the provider link tests cannot run: {reason}"
        );
        eprintln!("skipped: {reason}");
        return;
    }
    let thread = std::thread::spawn(move || {
        // SAFETY: unshare(2) takes no pointers; a new network namespace
        // affects only this thread and the threads and processes it starts.
        let unshared = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(unshared, 0, "{}", std::io::Error::last_os_error());
        // An Ethernet-sized MTU, so that rate limits see packets of the
        // size a real link carries.
        run(&["ip", "link", "set", "lo", "up", "mtu", "1500"]);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(test());
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

fn missing_privileges() -> Option<String> {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces, iptables and tc need it)".into());
    }
    for tool in ["ip", "iptables", "tc"] {
        let found = Command::new(tool).arg("-V").output().is_ok();
        if !found {
            return Some(format!("`{tool}` is not installed (iproute2, iptables)"));
        }
    }
    None
}

/// Runs a command in this thread's namespace; panics when it fails.
fn run(command: &[&str]) {
    let output = Command::new(command[0])
        .args(&command[1..])
        .output()
        .unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Drops every packet to and from `port`, without a reset: a dead NAT, a
/// crashed host, a cut cable.
fn black_hole(port: u16) {
    let port = port.to_string();
    for direction in ["--dport", "--sport"] {
        run(&[
            "iptables", "-I", "INPUT", "-p", "tcp", direction, &port, "-j", "DROP",
        ]);
    }
}

/// A 256 kbit/s link for the ports [`slow_link`] is given; other traffic
/// (and the upstream's answers and acknowledgements) is not limited.
fn slow_link_setup() {
    run(&[
        "tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10",
    ]);
    run(&[
        "tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate",
        "10gbit",
    ]);
    run(&[
        "tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate",
        "256kbit", "ceil", "256kbit",
    ]);
}

/// Sends what goes to `port` through the slow link.
fn slow_link(port: u16) {
    run(&[
        "tc",
        "filter",
        "add",
        "dev",
        "lo",
        "parent",
        "1:",
        "protocol",
        "ip",
        "u32",
        "match",
        "ip",
        "dport",
        &port.to_string(),
        "0xffff",
        "flowid",
        "1:20",
    ]);
}

/// An upstream that greets, then reads (and answers pings) until the end.
async fn listening_upstream() -> MockUpstream {
    MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        while session.recv().await.is_some() {}
    })
    .await
    .unwrap()
}

/// 20 ms of 24 kHz PCM16 audio as an append event (960 bytes, base64).
fn append() -> String {
    format!(
        r#"{{"type":"input_audio_buffer.append","audio":"{}"}}"#,
        "A".repeat(1280)
    )
}

/// Reads until the gateway's `error` event for a lost upstream and its
/// close 1011; returns how long that took. Answers pings meanwhile.
async fn upstream_lost(
    client: &mut (impl futures_util::Stream<Item = WsResult> + Unpin),
) -> Duration {
    let started = Instant::now();
    let read = async {
        let mut event = None;
        loop {
            match client.next().await {
                Some(Ok(Message::Text(text))) => {
                    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if value["type"] == "error" {
                        event = Some(value);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let frame = frame.expect("a close code");
                    assert_eq!(frame.code, CloseCode::Error);
                    assert_eq!(frame.reason, "upstream connection lost");
                    let event = event.expect("an error event before the close");
                    assert_eq!(event["error"]["code"], "upstream_connection_lost");
                    return started.elapsed();
                }
                Some(Ok(_)) => {}
                other => panic!("expected an error event and a close, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the gateway notices within two minutes")
}

type WsResult = Result<Message, tokio_tungstenite::tungstenite::Error>;

#[test]
fn a_silent_provider_is_found_while_the_session_is_idle() {
    in_network_namespace(|| async {
        let upstream = listening_upstream().await;
        let gateway = serve_axum_tuned(RealtimeLayer::new(openai(&upstream))).await;
        let mut client = open(&gateway, "openai/gpt-realtime").await;
        assert_eq!(next_event(&mut client).await["type"], "session.created");
        black_hole(upstream.addr().port());
        let took = upstream_lost(&mut client).await;
        eprintln!("idle session: silent provider found after {took:.1?}");
        // Keepalive every 3 s, two misses: at most 12 s. Before: 120 s.
        assert!(took <= Duration::from_secs(30), "{took:?}");
    });
}

#[test]
fn a_silent_provider_is_found_while_the_client_streams() {
    in_network_namespace(|| async {
        let upstream = listening_upstream().await;
        let gateway = serve_axum_tuned(RealtimeLayer::new(openai(&upstream))).await;
        let client = open(&gateway, "openai/gpt-realtime").await;
        let (mut sink, mut stream) = client.split();
        assert_eq!(
            stream.next().await.unwrap().unwrap().to_text().unwrap()[..25],
            *r#"{"type":"session.created""#
        );
        // The client streams 20 ms of audio every 20 ms, as a microphone does.
        let streaming = tokio::spawn(async move {
            let event = append();
            let mut sent = 0u64;
            while sink.send(Message::text(event.clone())).await.is_ok() {
                sent += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        black_hole(upstream.addr().port());
        let took = upstream_lost(&mut stream).await;
        eprintln!("streaming session: silent provider found after {took:.1?}");
        // Unacknowledged appends for 9 s (TCP_USER_TIMEOUT). Before: 120 s.
        assert!(took <= Duration::from_secs(30), "{took:?}");
        drop(stream);
        streaming.abort();
    });
}

/// The gateway's kernel queues of one session: what its client socket has
/// received and not read, and what its upstream socket holds unsent or
/// unacknowledged.
fn gateway_queues(gateway: SocketAddr, client: SocketAddr, upstream: SocketAddr) -> (u64, u64) {
    let table = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap();
    let find = |local: Option<SocketAddr>, remote: SocketAddr| -> TcpQueues {
        tcp_queues_in(&table, local, remote).expect("the socket")
    };
    (
        find(Some(gateway), client).unread,
        find(None, upstream).unacked,
    )
}

/// Appends as fast as the gateway takes them, through a provider link of
/// 256 kbit/s (less than the 384 kbit/s of 24 kHz PCM16); returns the most
/// the gateway's queues held for the session at once: the client socket's
/// receive queue and the upstream socket's send queue.
async fn queued_towards_a_slow_provider(
    layer: impl FnOnce(RealtimeLayer) -> RealtimeLayer,
) -> (u64, u64) {
    let upstream = listening_upstream().await;
    slow_link(upstream.addr().port());
    let gateway = serve_axum_tuned(layer(RealtimeLayer::new(openai(&upstream)))).await;
    let client = open(&gateway, "openai/gpt-realtime").await;
    let client_addr = match client.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap(),
        _ => unreachable!("a plain connection"),
    };
    let (mut sink, mut stream) = client.split();
    stream.next().await.unwrap().unwrap();
    let reading = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    let flooding = tokio::spawn(async move {
        let event = Message::text(format!(
            r#"{{"type":"input_audio_buffer.append","audio":"{}"}}"#,
            "A".repeat(8 << 10)
        ));
        while sink.send(event.clone()).await.is_ok() {}
    });
    // Let the queues fill, then watch them for a while.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut most = (0, 0);
    for _ in 0..30 {
        let (client_queue, upstream_queue) =
            gateway_queues(gateway.addr, client_addr, upstream.addr());
        if client_queue + upstream_queue > most.0 + most.1 {
            most = (client_queue, upstream_queue);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    flooding.abort();
    reading.abort();
    most
}

#[test]
fn a_slow_provider_link_queues_little_in_the_gateway() {
    in_network_namespace(|| async {
        slow_link_setup();
        // One session at a time, each with an upstream of its own.
        let autotuned = queued_towards_a_slow_provider(|layer| {
            layer
                .client_socket_buffers(None, None)
                .upstream_notsent_lowat(None)
        })
        .await;
        let bounded = queued_towards_a_slow_provider(|layer| layer).await;
        let kib = |(client, upstream): (u64, u64)| {
            format!(
                "{} KiB (client receive queue {} KiB, upstream send queue {} KiB)",
                (client + upstream) >> 10,
                client >> 10,
                upstream >> 10
            )
        };
        eprintln!(
            "256 kbit/s provider link, client appending as fast as it can; the gateway's \
             queues held at most: with kernel autotuning {}; with the defaults {}",
            kib(autotuned),
            kib(bounded)
        );
        let total = |(client, upstream): (u64, u64)| client + upstream;
        assert!(total(bounded) <= 256 << 10, "{}", kib(bounded));
        // The bound comes from the options: without them the kernel queues more.
        assert!(total(autotuned) > total(bounded), "{}", kib(autotuned));
    });
}
