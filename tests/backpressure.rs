//! A client that does not read must not make the gateway buffer without
//! bound: the upstream is held back instead, and nothing is lost.
// Reads /proc: Linux only.
#![cfg(target_os = "linux")]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::process::{TcpQueues, tcp_buffer_limits, tcp_queues};
use common::*;
use tokio::io::AsyncWriteExt;
use tower_realtime::RealtimeLayer;
use tower_realtime::testing::{MockUpstream, Script, UpstreamSession};

/// The size of each flooding message.
const MESSAGE: usize = 64 << 10;
/// The wire size of one such message from a server: 2 + 8 bytes of header.
const FRAME: u64 = MESSAGE as u64 + 10;
/// The gateway's socket buffers (the defaults of `RealtimeLayer`).
const READ_BUFFER: u64 = 4 << 10;
const WRITE_BUFFER: u64 = 16 << 10;

/// What the flooding upstream shares with the test.
#[derive(Default)]
struct Flood {
    /// Bytes the upstream's kernel accepted (whole frames and parts of one).
    written: AtomicU64,
    /// Frames written completely.
    frames: AtomicU64,
    /// Set to make the upstream finish its frame and close.
    stop: AtomicBool,
    /// The upstream's end and the gateway's end of the upstream hop.
    hop: Mutex<Option<(SocketAddr, SocketAddr)>>,
}

/// An unmasked binary frame (server to client) of `MESSAGE` bytes that
/// starts with its sequence number.
fn frame(sequence: u64) -> Vec<u8> {
    let mut frame = vec![0x82, 127];
    frame.extend_from_slice(&(MESSAGE as u64).to_be_bytes());
    frame.extend_from_slice(&sequence.to_be_bytes());
    frame.resize(FRAME as usize, (sequence % 251) as u8);
    frame
}

/// An upstream that writes frames as fast as the gateway takes them,
/// counting every byte its kernel accepts, until told to stop; then it
/// closes with 1000. It never reads, so it never answers a ping.
struct FloodingUpstream(Arc<Flood>);

impl Script for FloodingUpstream {
    async fn run(&self, session: UpstreamSession) {
        let flood = &self.0;
        let mut socket = session.into_socket();
        let tcp = socket.get_mut();
        *flood.hop.lock().unwrap() = Some((tcp.local_addr().unwrap(), tcp.peer_addr().unwrap()));
        let mut sequence = 0;
        while !flood.stop.load(Ordering::SeqCst) {
            let bytes = frame(sequence);
            let mut at = 0;
            while at < bytes.len() {
                let Ok(n) = tcp.write(&bytes[at..]).await else {
                    return;
                };
                at += n;
                flood.written.fetch_add(n as u64, Ordering::SeqCst);
            }
            sequence += 1;
            flood.frames.store(sequence, Ordering::SeqCst);
        }
        if tcp.write_all(&[0x88, 2, 0x03, 0xe8]).await.is_err() {
            return;
        }
        // Keep the socket until the gateway answers and hangs up.
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut socket).await {}
    }
}

/// Reads the flood to its end: every message in order (the gateway may
/// write a message as fragments), then close 1000.
async fn read_the_whole_flood(client: &mut RawClient, flood: &Flood) {
    let mut expected = 0u64;
    let mut message = Vec::new();
    let close = loop {
        let frame = client.read_frame().await.expect("the flood, then a close");
        match frame.opcode {
            2 | 0 => {
                assert_eq!(frame.opcode == 2, message.is_empty(), "fragments in order");
                message.extend_from_slice(&frame.payload);
                if frame.fin {
                    assert_eq!(message.len(), MESSAGE);
                    assert_eq!(message[..8], expected.to_be_bytes());
                    expected += 1;
                    message.clear();
                }
            }
            8 => break frame,
            // Keepalive pings may come along.
            9 => {}
            other => panic!("unexpected opcode {other}"),
        }
    };
    assert_eq!(
        close.close_code(),
        Some(1000),
        "{:?}",
        String::from_utf8_lossy(&close.payload)
    );
    assert_eq!(expected, flood.frames.load(Ordering::SeqCst));
}

/// Everything in flight between the upstream and the client, at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    written: u64,
    /// The upstream hop: the upstream's socket, then the gateway's.
    upstream_hop: [TcpQueues; 2],
    /// The client hop: the gateway's socket, then the client's.
    client_hop: [TcpQueues; 2],
}

impl Snapshot {
    fn kernel(&self) -> u64 {
        self.upstream_hop
            .iter()
            .chain(&self.client_hop)
            .map(|q| q.total())
            .sum()
    }

    /// Bytes the gateway has read from the upstream but not yet handed to
    /// its kernel for the client: what the relay itself holds.
    fn relay(&self) -> u64 {
        self.written - self.kernel()
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_holds_the_upstream_back() {
    let flood = Arc::new(Flood::default());
    let upstream = MockUpstream::with_script(FloodingUpstream(Arc::clone(&flood)))
        .await
        .unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).keepalive(None);
    let gateway = serve_axum(layer).await;

    // The client reads nothing at all after its handshake.
    let mut client =
        RawClient::connect(gateway.addr, "/v1/realtime?model=openai/gpt-realtime").await;
    let client_addr = client.local_addr();
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| flood.hop.lock().unwrap().is_some())
            .await
    );
    let (upstream_addr, gateway_upstream_addr) = flood.hop.lock().unwrap().unwrap();
    let snapshot = || Snapshot {
        written: flood.written.load(Ordering::SeqCst),
        upstream_hop: [
            tcp_queues(upstream_addr, gateway_upstream_addr).unwrap(),
            tcp_queues(gateway_upstream_addr, upstream_addr).unwrap(),
        ],
        client_hop: [
            tcp_queues(gateway.addr, client_addr).unwrap(),
            tcp_queues(client_addr, gateway.addr).unwrap(),
        ],
    };

    // The most a loopback TCP connection can hold: the sender's largest send
    // buffer plus the receiver's largest receive buffer. Two hops.
    let (wmem, rmem) = tcp_buffer_limits();
    let kernel_bound = 2 * (wmem + rmem);
    // The relay holds at most one message in hand, one being written to the
    // client, and what one read of the upstream socket brought in beyond the
    // message it completed; the write buffer is slack for framing.
    let relay_bound = 2 * FRAME + READ_BUFFER + WRITE_BUFFER;

    // Wait until the flood stalls: nothing moves for 20 looks in a row, 2 s
    // (a pause of the machine longer than that could fake a stall).
    let mut last = snapshot();
    let mut still = 0;
    while still < 20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = snapshot();
        assert!(
            now.written <= kernel_bound + relay_bound,
            "the upstream wrote {} bytes to a client that reads nothing",
            now.written
        );
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    let stalled = last;
    eprintln!(
        "stalled after {} bytes ({} frames): upstream hop {} + client hop {} in kernel queues, \
         {} in the relay (bound {relay_bound})",
        stalled.written,
        flood.frames.load(Ordering::SeqCst),
        stalled.upstream_hop[0].total() + stalled.upstream_hop[1].total(),
        stalled.client_hop[0].total() + stalled.client_hop[1].total(),
        stalled.relay(),
    );
    // The flood went well past what the relay may hold, so the bound means something.
    assert!(stalled.written > 4 * relay_bound, "{stalled:?}");
    assert!(
        stalled.relay() <= relay_bound,
        "the relay holds {} bytes: {stalled:?}",
        stalled.relay()
    );
    // The stall reached the upstream: its own socket has unsent data.
    assert!(stalled.upstream_hop[0].unacked > 0, "{stalled:?}");
    assert!(stalled.client_hop[1].unread > 0, "{stalled:?}");

    // Nothing is lost: once the client reads, every message arrives in order.
    flood.stop.store(true, Ordering::SeqCst);
    read_the_whole_flood(&mut client, &flood).await;
}

#[tokio::test]
async fn keepalive_does_not_blame_an_upstream_held_back_by_a_slow_client() {
    // The client talks but does not read, so the flood backs up into the
    // upstream, whose answers to pings are stuck behind it.
    let flood = Arc::new(Flood::default());
    let upstream = MockUpstream::with_script(FloodingUpstream(Arc::clone(&flood)))
        .await
        .unwrap();
    let interval = Duration::from_millis(500);
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).keepalive(Some(interval))).await;
    let mut client =
        RawClient::connect(gateway.addr, "/v1/realtime?model=openai/gpt-realtime").await;
    // Ten keepalive intervals of talking without reading.
    for n in 0..20 {
        client
            .frame(0x81, format!("audio chunk {n}").as_bytes(), true)
            .await;
        tokio::time::sleep(interval / 2).await;
    }
    flood.stop.store(true, Ordering::SeqCst);
    read_the_whole_flood(&mut client, &flood).await;
}

#[tokio::test]
async fn keepalive_does_not_blame_a_client_that_listens_slowly() {
    // The client neither reads nor talks for ten keepalive intervals while
    // the upstream streams: the ping for it would wait behind the stream.
    // (`serve_axum` leaves the client socket untuned, so this is the
    // keepalive alone: with `TCP_USER_TIMEOUT` on it, the kernel ends a
    // session whose client reads nothing for the keepalive budget.)
    let flood = Arc::new(Flood::default());
    let upstream = MockUpstream::with_script(FloodingUpstream(Arc::clone(&flood)))
        .await
        .unwrap();
    let interval = Duration::from_millis(300);
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).keepalive(Some(interval))).await;
    let mut client =
        RawClient::connect(gateway.addr, "/v1/realtime?model=openai/gpt-realtime").await;
    tokio::time::sleep(interval * 10).await;
    assert!(upstream.closes().is_empty(), "{:?}", upstream.closes());
    flood.stop.store(true, Ordering::SeqCst);
    read_the_whole_flood(&mut client, &flood).await;
}
