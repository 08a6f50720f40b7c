//! What the gateway adds to a WebRTC call's setup (`POST /v1/realtime/calls`
//! with an SDP offer, until the `201` and its SDP answer), against posting
//! the same offer to the provider directly, measured side by side in one
//! run:
//!
//! ```sh
//! cargo bench --all-features --bench webrtc             # 300 calls per path
//! cargo bench --all-features --bench webrtc -- --quick  # 30
//! ```
//!
//! Paths, taking turns (the order rotates every call) so that the machine's
//! other load hits them alike:
//!
//! - **direct**: the offer posted to the scripted provider
//!   (`testing::WebRtcUpstream`, in this process) with its key;
//! - **layer**: `RealtimeLayer` with [`WebRtc`] defaults in a hyper server in
//!   this process: the secret checked, the offer forwarded as multipart with
//!   the locked session, the gateway's sideband dialled and attached before
//!   the `201`;
//! - **example**: the gateway example's release binary as it ships
//!   (`cargo build --release --all-features --example gateway`, or
//!   `WEBRTC_BENCH_GATEWAY_EXAMPLE=PATH`), the provider as its `openai`
//!   (`OPENAI_BASE_URL`); left out with a note when it is not built.
//!
//! Every request opens a new HTTP/1.1 connection, as a browser's first
//! `POST` does. Gateway calls are hung up after each sample (not timed).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::Layer;
use tower::service_fn;
use tower_realtime::provider::OpenAi;
use tower_realtime::testing::WebRtcUpstream;
use tower_realtime::webrtc::WebRtc;
use tower_realtime::{Providers, RealtimeLayer, Secret};

#[path = "common/gateway_example.rs"]
mod gateway_example;

/// A browser's offer, as small as the provider accepts.
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:OFFERUFRAG\r\na=ice-pwd:offerpasswordoffer\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
/// Where the gateway example is looked for when not next to the bench.
const GATEWAY_EXAMPLE: &str = "WEBRTC_BENCH_GATEWAY_EXAMPLE";

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick")
        || !std::env::args().any(|arg| arg == "--bench");
    let calls = if quick { 30 } else { 300 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(calls));
}

/// One way to set a call up.
struct Path {
    name: &'static str,
    addr: SocketAddr,
    /// The bearer credential: the provider's key, or a gateway client secret.
    bearer: String,
    /// Whether calls are hung up after each sample (the gateway's are).
    hang_up: bool,
    samples: Vec<Duration>,
}

async fn run(calls: usize) {
    let provider = WebRtcUpstream::start()
        .await
        .expect("the scripted provider");
    let provider_addr: SocketAddr = provider
        .root_url()
        .trim_start_matches("http://")
        .parse()
        .expect("a loopback address");
    let layer = serve_layer(&provider).await;
    let mut paths = vec![
        Path::new("direct", provider_addr, "sk-bench".into(), false),
        Path::new("layer", layer, mint(layer).await, true),
    ];
    let example = Example::spawn(&provider);
    match &example {
        Some(example) => paths.push(Path::new(
            "example",
            example.addr,
            mint(example.addr).await,
            true,
        )),
        None => println!(
            "example: not built (cargo build --release --all-features --example gateway); left out"
        ),
    }
    // Warm up: connections, the provider's and the gateways' first calls.
    for path in &mut paths {
        for _ in 0..5 {
            path.call().await;
        }
        path.samples.clear();
    }
    for round in 0..calls {
        let count = paths.len();
        for turn in 0..count {
            let path = &mut paths[(round + turn) % count];
            let took = path.call().await;
            path.samples.push(took);
        }
    }
    report(calls, &mut paths);
    drop(example);
}

impl Path {
    fn new(name: &'static str, addr: SocketAddr, bearer: String, hang_up: bool) -> Self {
        Path {
            name,
            addr,
            bearer,
            hang_up,
            samples: Vec::new(),
        }
    }

    /// Sets one call up; returns how long until the `201` and its answer.
    async fn call(&self) -> Duration {
        let bearer = format!("Bearer {}", self.bearer);
        let request = Request::post("/v1/realtime/calls")
            .header("host", "gateway")
            .header("authorization", &bearer)
            .header("content-type", "application/sdp")
            .body(Full::new(Bytes::from_static(OFFER.as_bytes())))
            .expect("a request");
        let started = Instant::now();
        let (status, headers, body) = send(self.addr, request).await;
        let took = started.elapsed();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}: {}",
            self.name,
            String::from_utf8_lossy(&body)
        );
        assert!(body.starts_with(b"v=0"), "{}: an SDP answer", self.name);
        if self.hang_up {
            let location = headers
                .get("location")
                .and_then(|value| value.to_str().ok())
                .expect("a Location");
            let hangup = Request::post(format!("{location}/hangup"))
                .header("host", "gateway")
                .header("authorization", &bearer)
                .body(Full::new(Bytes::new()))
                .expect("a request");
            let (status, _, body) = send(self.addr, hangup).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{} hang-up: {}",
                self.name,
                String::from_utf8_lossy(&body)
            );
        }
        took
    }
}

/// One HTTP/1.1 request on a new connection.
async fn send(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP/1.1 handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("an answer");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("a body").to_bytes();
    (parts.status, parts.headers, body)
}

/// Mints a client secret for calls on the gateway at `addr`.
async fn mint(addr: SocketAddr) -> String {
    let request = Request::post("/v1/realtime/client_secrets")
        .header("host", "gateway")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"expires_after":{"anchor":"created_at","seconds":7200},"session":{"model":"openai/gpt-realtime","instructions":"Be brief."}}"#,
        )))
        .expect("a request");
    let (status, _, body) = send(addr, request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let minted: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    minted["value"].as_str().expect("a secret").to_owned()
}

/// `RealtimeLayer` with WebRTC calls in a hyper server on loopback.
async fn serve_layer(provider: &WebRtcUpstream) -> SocketAddr {
    let openai = OpenAi::new(Secret::new("sk-bench"))
        .base_url(&provider.base_url())
        .expect("a loopback base URL");
    let layer = RealtimeLayer::new(Providers::new().with("openai", openai))
        .allow_unauthenticated()
        .webrtc(WebRtc::new());
    let not_found = service_fn(|_: http::Request<hyper::body::Incoming>| async {
        let mut response = http::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_FOUND;
        Ok::<_, Infallible>(response)
    });
    let tuning = layer.clone();
    let service = layer.layer(not_found);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tuning.tune_client_socket(&stream);
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The gateway example's release build, running; killed on drop.
struct Example {
    child: Child,
    addr: SocketAddr,
}

impl Example {
    /// Starts the example with `provider` as its `openai` and its limits out
    /// of the way; `None` when it is not built.
    fn spawn(provider: &WebRtcUpstream) -> Option<Self> {
        let (child, addr) = gateway_example::spawn(GATEWAY_EXAMPLE, &provider.base_url())?;
        Some(Example { child, addr })
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// p50 and p99 of each path, and their ratios to the direct path's.
fn report(calls: usize, paths: &mut [Path]) {
    let percentile = |samples: &[Duration], q: f64| {
        samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3
    };
    for path in paths.iter_mut() {
        path.samples.sort();
    }
    let direct = (
        percentile(&paths[0].samples, 0.5),
        percentile(&paths[0].samples, 0.99),
    );
    println!(
        "call setup (POST /v1/realtime/calls -> 201 with the SDP answer), {calls} calls per path, new connection each"
    );
    println!(
        "{:<8} {:>10} {:>10} {:>10} {:>10}",
        "path", "p50 ms", "p99 ms", "p50 x", "p99 x"
    );
    for path in paths.iter() {
        let (p50, p99) = (
            percentile(&path.samples, 0.5),
            percentile(&path.samples, 0.99),
        );
        println!(
            "{:<8} {:>10.3} {:>10.3} {:>10.2} {:>10.2}",
            path.name,
            p50,
            p99,
            p50 / direct.0,
            p99 / direct.1
        );
    }
}
