//! Session setup to a far provider: the upstream behind TLS and a link that
//! adds a round-trip time, reached directly, through a cold gateway, and
//! through a gateway with pre-warmed upstream sockets.
//!
//! Everything runs in this process: a `wss` upstream (rustls, a private CA),
//! a user-space TCP proxy in front of it that delays every chunk by half the
//! round-trip time each way, and two gateways (`RealtimeLayer` in hyper) on
//! loopback, as if next to the client. The direct client dials the proxy
//! with TLS, as an SDK would; all clients share one TLS configuration, so
//! each path may resume TLS sessions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::tungstenite::Message;
use tower_realtime::provider::OpenAi;
use tower_realtime::{Providers, RealtimeLayer, Secret};

use crate::report::Report;

/// The added round-trip time between the gateway (or the client) and the provider.
pub(crate) const RTT: Duration = Duration::from_millis(20);

/// Measures `setups` sequential session setups per path, the paths in turn.
pub(crate) async fn setup(setups: usize) -> Report {
    let (ca, leaf, key) = pki();
    let upstream = tls_upstream(leaf, key).await;
    let far = delaying_proxy(upstream, RTT / 2).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).expect("the CA");
    let base = format!("https://localhost:{}/v1", far.port());
    let cold = gateway(RealtimeLayer::new(providers(&base)).tls_roots(roots.clone())).await;
    let warm = gateway(
        RealtimeLayer::new(providers(&base))
            .tls_roots(roots.clone())
            .prewarm(2),
    )
    .await;
    let client_tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );

    let paths: [&(dyn Fn() -> Setup + Sync); 3] = [
        &|| Box::pin(direct(far, Arc::clone(&client_tls))),
        &|| Box::pin(through(cold)),
        &|| Box::pin(through(warm)),
    ];
    // Warm up: the gateways learn the host, TLS sessions get cached.
    for path in &paths {
        for _ in 0..3 {
            path().await;
        }
    }
    let mut samples = vec![Vec::with_capacity(setups); paths.len()];
    for _ in 0..setups {
        for (path, sample) in paths.iter().zip(&mut samples) {
            sample.push(path().await);
            // Sessions arrive apart, as users do; the pool refills meanwhile.
            tokio::time::sleep(RTT * 3).await;
        }
    }
    let mut report = Report::new(vec!["direct".into(), "cold".into(), "warm".into()]);
    report.title(format!(
        "session setup to a far provider ({} ms RTT, wss), {setups} sequential sessions per path \
         until session.created; cold: gateway without pre-warming, warm: prewarm(2)",
        RTT.as_millis()
    ));
    report.percentiles(&mut samples);
    report
}

type Setup = std::pin::Pin<Box<dyn std::future::Future<Output = Duration> + Send>>;

fn providers(base: &str) -> Providers {
    Providers::new().with(
        "far",
        OpenAi::new(Secret::new("sk-bench"))
            .base_url(base)
            .expect("a base URL"),
    )
}

/// Dials the provider directly: TCP, TLS, upgrade, first event.
async fn direct(far: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Duration {
    let started = Instant::now();
    let tcp = TcpStream::connect(far).await.expect("connect");
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("localhost").expect("a name");
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .expect("TLS");
    let url = format!("wss://localhost:{}/v1/realtime?model=m", far.port());
    let (mut socket, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("upgrade");
    first_event(&mut socket).await;
    let took = started.elapsed();
    let _ = socket.close(None).await;
    took
}

/// Opens a session through a gateway on loopback.
async fn through(gateway: SocketAddr) -> Duration {
    let started = Instant::now();
    let url = format!("ws://{gateway}/v1/realtime?model=far/m");
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .expect("a session through the gateway");
    first_event(&mut socket).await;
    let took = started.elapsed();
    let _ = socket.close(None).await;
    took
}

async fn first_event<S>(socket: &mut tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = socket.next().await {
        if let Message::Text(_) = message.expect("a message") {
            return;
        }
    }
    panic!("no session.created");
}

async fn gateway(layer: RealtimeLayer) -> SocketAddr {
    let layer = layer.allow_unauthenticated();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let router = axum::Router::new()
        .fallback(|| async { http::StatusCode::NOT_FOUND })
        .layer(layer);
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// A private CA, and a certificate for `localhost` it issued with its key.
fn pki() -> (
    CertificateDer<'static>,
    CertificateDer<'static>,
    PrivateKeyDer<'static>,
) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a key")).expect("a CA");
    let leaf_key = KeyPair::generate().expect("a key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&leaf_key, &ca)
        .expect("a certificate");
    (
        ca.der().clone(),
        leaf.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
}

/// A `wss` upstream that greets every session with `session.created`.
async fn tls_upstream(leaf: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![leaf], key)
    .expect("a certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut socket) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                let created = r#"{"type":"session.created","session":{"id":"sess_far"}}"#;
                let _ = socket.send(Message::text(created)).await;
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            });
        }
    });
    address
}

/// A TCP proxy to `target` that delivers every chunk `delay` after it
/// arrived, in each direction, keeping order: a link with `2 × delay` more
/// round-trip time.
async fn delaying_proxy(target: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                // The connection itself costs a round trip, as a SYN and SYN-ACK would.
                tokio::time::sleep(delay * 2).await;
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(delayed(client_read, server_write, delay));
                tokio::spawn(delayed(server_read, client_write, delay));
            });
        }
    });
    address
}

async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (sender, mut receiver) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((arrived, chunk)) = receiver.recv().await {
            tokio::time::sleep_until((arrived + delay).into()).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buffer = vec![0; 64 << 10];
    while let Ok(read @ 1..) = from.read(&mut buffer).await {
        if sender
            .send((Instant::now(), buffer[..read].to_vec()))
            .is_err()
        {
            break;
        }
    }
    drop(sender);
    let _ = writer.await;
}
