//! The same audio events relayed through the layer, plain and translated, in
//! one run: what the gateway's threads spend per client append and per
//! upstream audio delta when the upstream speaks OpenAI's schema (relayed
//! as it is) and when it speaks Gemini Live (through the translator).
//!
//! Three runtimes in one process: the gateway (`RealtimeLayer` in hyper, two
//! worker threads, whose CPU time is read from `/proc/self/task/TID/schedstat`),
//! the two bench upstreams, and the client. Only the gateway's threads are
//! counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use data_encoding::BASE64;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::{Layer, service_fn};
use tower_realtime::provider::{Gemini, OpenAi};
use tower_realtime::{Providers, RealtimeLayer, Secret};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How much to measure.
pub(crate) struct Scale {
    /// Events per measured round.
    pub(crate) events: usize,
    /// Measured rounds per path and workload (after one warm-up round).
    pub(crate) rounds: usize,
}

/// The two upstream dialects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// OpenAI's realtime schema: the plain relay.
    OpenAi,
    /// Gemini Live: the translator.
    Gemini,
}

impl Dialect {
    fn model(self) -> &'static str {
        match self {
            Dialect::OpenAi => "plain/bench",
            Dialect::Gemini => "gemini/bench",
        }
    }
}

/// Measures and prints the table.
pub(crate) fn main(scale: &Scale) {
    let gateway_threads: Arc<Mutex<Vec<libc::pid_t>>> = Arc::default();
    let threads = Arc::clone(&gateway_threads);
    let gateway_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // SAFETY: gettid(2) has no arguments and cannot fail.
            let tid = unsafe { libc::gettid() };
            threads.lock().expect("thread list").push(tid);
        })
        .build()
        .expect("a tokio runtime");
    let upstream_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let flood = scale.events;
    let openai = upstream_runtime.block_on(upstream(Dialect::OpenAi, flood));
    let gemini = upstream_runtime.block_on(upstream(Dialect::Gemini, flood));
    let gateway = gateway_runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(serve(listener, openai, gemini));
        addr
    });

    // 20 ms of 24 kHz PCM16, as OpenAI clients append it.
    let append = json!({"type": "input_audio_buffer.append", "audio": BASE64.encode(&[7u8; 960])})
        .to_string();
    let mut rows = Vec::new();
    for workload in ["append", "delta"] {
        let mut cpu = [Duration::ZERO; 2];
        client_runtime.block_on(async {
            let mut clients = [
                connect(gateway, Dialect::OpenAi).await,
                connect(gateway, Dialect::Gemini).await,
            ];
            for round in 0..=scale.rounds {
                for (path, client) in clients.iter_mut().enumerate() {
                    let before = cpu_of(&gateway_threads);
                    match workload {
                        "append" => appends(client, &append, scale.events).await,
                        _ => deltas(client, flood).await,
                    }
                    let spent = cpu_of(&gateway_threads).saturating_sub(before);
                    if round > 0 {
                        cpu[path] += spent;
                    }
                }
            }
            for client in &mut clients {
                let _ = client.close(None).await;
            }
        });
        let events = (scale.events * scale.rounds) as f64;
        let per_event = |spent: Duration| spent.as_nanos() as f64 / events / 1000.0;
        rows.push((workload, per_event(cpu[0]), per_event(cpu[1])));
    }

    println!();
    println!(
        "Relayed through the layer: gateway CPU per event, {} events x {} rounds per cell",
        scale.events, scale.rounds
    );
    println!();
    println!("| event | plain relay (OpenAI upstream) µs | Gemini translator µs | difference µs |");
    println!("|---|---|---|---|");
    for (workload, plain, gemini) in rows {
        let name = match workload {
            "append" => "client append, 20 ms PCM (spliced)",
            _ => "upstream audio delta, 40 ms PCM",
        };
        println!(
            "| {name} | {plain:.2} | {gemini:.2} | {:+.2} |",
            gemini - plain
        );
    }
    drop(gateway_runtime);
    drop(upstream_runtime);
}

/// CPU time of the gateway's threads so far.
fn cpu_of(threads: &Mutex<Vec<libc::pid_t>>) -> Duration {
    let threads = threads.lock().expect("thread list").clone();
    let nanos: u64 = threads
        .iter()
        .filter_map(|tid| std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// The layer with both providers, served by hyper on `listener`.
async fn serve(listener: TcpListener, openai: SocketAddr, gemini: SocketAddr) {
    let providers = Providers::new()
        .with(
            "plain",
            OpenAi::new(Secret::new("sk-bench"))
                .base_url(&format!("http://{openai}/v1"))
                .expect("a loopback base URL"),
        )
        .with(
            "gemini",
            Gemini::new(Secret::new("bench"))
                .base_url(&format!("http://{gemini}"))
                .expect("a loopback base URL"),
        );
    let layer = RealtimeLayer::new(providers).allow_unauthenticated();
    let not_found = service_fn(|_: http::Request<hyper::body::Incoming>| async {
        let mut response = http::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        Ok::<_, Infallible>(response)
    });
    let tuning = layer.clone();
    let service = layer.layer(not_found);
    while let Ok((stream, _)) = listener.accept().await {
        tuning.tune_client_socket(&stream);
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A bench upstream speaking `dialect`: it takes appends silently, answers a
/// user message saying `flood` with `flood` audio deltas (40 ms each) and a
/// message saying `ack` with one; each answer ends the turn.
async fn upstream(dialect: Dialect, flood: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(upstream_session(stream, dialect, flood));
        }
    });
    addr
}

async fn upstream_session(stream: TcpStream, dialect: Dialect, flood: usize) {
    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let audio = BASE64.encode(&[3u8; 1920]);
    let (delta, done) = match dialect {
        Dialect::OpenAi => {
            let created = json!({"type": "session.created", "event_id": "event_0",
                "session": {"id": "sess_bench", "object": "realtime.session", "type": "realtime"}});
            if socket
                .send(Message::text(created.to_string()))
                .await
                .is_err()
            {
                return;
            }
            (
                Message::text(
                    json!({"type": "response.output_audio.delta", "event_id": "event_1",
                        "response_id": "resp_1", "item_id": "item_1", "output_index": 0,
                        "content_index": 0, "delta": audio})
                    .to_string(),
                ),
                Message::text(
                    json!({"type": "response.done", "event_id": "event_2", "response": {
                        "id": "resp_1", "object": "realtime.response", "status": "completed",
                        "output": [], "usage": null}})
                    .to_string(),
                ),
            )
        }
        // As Google sends them: binary frames of pretty-printed JSON.
        Dialect::Gemini => (
            Message::binary(
                serde_json::to_vec_pretty(&json!({"serverContent": {"modelTurn": {"parts": [
                    {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": audio}}]}}}))
                .expect("JSON"),
            ),
            Message::binary(
                serde_json::to_vec_pretty(&json!({"serverContent": {"turnComplete": true}}))
                    .expect("JSON"),
            ),
        ),
    };
    while let Some(Ok(message)) = socket.next().await {
        let bytes: &[u8] = match &message {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
            _ => continue,
        };
        if dialect == Dialect::Gemini && contains(bytes, b"\"setup\"") {
            let ready = Message::binary(&b"{\n  \"setupComplete\": {}\n}\n"[..]);
            if socket.send(ready).await.is_err() {
                return;
            }
            continue;
        }
        let count = if contains(bytes, b"flood") {
            flood
        } else if contains(bytes, b"ack") {
            1
        } else {
            continue;
        };
        for _ in 0..count {
            if socket.feed(delta.clone()).await.is_err() {
                return;
            }
        }
        if socket.send(done.clone()).await.is_err() {
            return;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

async fn connect(gateway: SocketAddr, dialect: Dialect) -> Client {
    let url = format!("ws://{gateway}/v1/realtime?model={}", dialect.model());
    let (mut client, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the bench session opens");
    until_done(&mut client, "session.created").await;
    // One turn first: Gemini's setup is done before the appends pour in.
    client.send(say("ack")).await.expect("ack");
    until_done(&mut client, "response.done").await;
    client
}

fn say(text: &str) -> Message {
    Message::text(
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}})
        .to_string(),
    )
}

/// Sends `count` appends, then asks for the turn that proves they all passed.
async fn appends(client: &mut Client, append: &str, count: usize) {
    let append = Message::text(append);
    for _ in 0..count {
        client.feed(append.clone()).await.expect("append");
    }
    client.send(say("ack")).await.expect("ack");
    until_done(client, "response.done").await;
}

/// Asks for `count` audio deltas and reads them all.
async fn deltas(client: &mut Client, count: usize) {
    client.send(say("flood")).await.expect("flood");
    let seen = until_done(client, "response.done").await;
    assert!(seen >= count, "{seen} of {count} deltas");
}

/// Reads until an event of type `kind`; returns the audio deltas seen.
async fn until_done(client: &mut Client, kind: &str) -> usize {
    let wanted = format!("\"type\":\"{kind}\"");
    let mut deltas = 0;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(120), client.next())
            .await
            .expect("the gateway answers")
            .expect("the session is open")
            .expect("no error");
        let Message::Text(text) = message else {
            continue;
        };
        if text.contains("\"type\":\"response.output_audio.delta\"") {
            deltas += 1;
        } else if text.contains(&wanted) {
            return deltas;
        } else if text.contains("\"type\":\"error\"") {
            panic!("the gateway reported an error: {text}");
        }
    }
}
