//! `wss` upstreams: a TLS upstream behind a private CA on loopback, trusted
//! through `RealtimeLayer::tls_roots` or (the gateway example, built with
//! `native-roots`) through `SSL_CERT_FILE`, refused without it.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::example::{Example, example_binary, scratch_dir};
use common::*;
use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tower_realtime::provider::OpenAi;
use tower_realtime::{Providers, RealtimeLayer, Secret};

/// A private CA and a certificate it issued for `localhost`.
struct Pki {
    ca: CertificateDer<'static>,
    ca_pem: String,
    leaf: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    Pki {
        ca: ca.der().clone(),
        ca_pem: ca.pem(),
        leaf: leaf.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// Accepts TLS with `pki`'s certificate for `localhost`.
fn acceptor(pki: &Pki) -> TlsAcceptor {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.leaf.clone()], pki.key.clone_key())
    .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// A `wss` upstream on loopback: greets, echoes, and records the
/// `Authorization` header of each handshake.
// The handshake callback's error type is tungstenite's `ErrorResponse`.
#[allow(clippy::result_large_err)]
async fn tls_upstream(pki: &Pki) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let (addr, seen, _) = tls_upstream_with_handshakes(pki).await;
    (addr, seen)
}

/// Like [`tls_upstream`], also recording whether each TLS handshake was a
/// full one or resumed a session.
#[allow(clippy::result_large_err)]
async fn tls_upstream_with_handshakes(
    pki: &Pki,
) -> (
    SocketAddr,
    Arc<Mutex<Vec<String>>>,
    Arc<Mutex<Vec<rustls::HandshakeKind>>>,
) {
    let acceptor = acceptor(pki);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let handshakes = Arc::new(Mutex::new(Vec::new()));
    let kinds = Arc::clone(&handshakes);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let record = Arc::clone(&record);
            let kinds = Arc::clone(&kinds);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Some(kind) = tls.get_ref().1.handshake_kind() {
                    kinds.lock().unwrap().push(kind);
                }
                let callback = |request: &Request, response: Response| {
                    let authorization = request
                        .headers()
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned());
                    record
                        .lock()
                        .unwrap()
                        .push(authorization.unwrap_or_default());
                    Ok(response)
                };
                let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(tls, callback).await
                else {
                    return;
                };
                let _ = socket
                    .send(Message::text(r#"{"type":"session.created"}"#))
                    .await;
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = socket.send(message).await;
                    }
                }
            });
        }
    });
    (addr, seen, handshakes)
}

/// A `wss` echo upstream that closes (with TLS `close_notify`) every
/// connection on which no request arrives within `idle`, as providers do
/// with idle sockets; counts its TLS handshakes.
async fn idle_closing_tls_upstream(
    pki: &Pki,
    idle: std::time::Duration,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    let acceptor = acceptor(pki);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handshakes);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                // Buffered, so that the request's first bytes are looked
                // at without being taken from the handshake.
                let mut stream = tokio::io::BufStream::new(tls);
                let asked = tokio::time::timeout(idle, stream.fill_buf())
                    .await
                    .is_ok_and(|read| read.is_ok_and(|bytes| !bytes.is_empty()));
                if !asked {
                    let _ = stream.shutdown().await;
                    return;
                }
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let _ = socket
                    .send(Message::text(r#"{"type":"session.created"}"#))
                    .await;
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = socket.send(message).await;
                    }
                }
            });
        }
    });
    (addr, handshakes)
}

fn provider(base: &str) -> Providers {
    Providers::new().with(
        "openai",
        OpenAi::new(Secret::new(PROVIDER_KEY))
            .base_url(base)
            .unwrap(),
    )
}

#[tokio::test]
async fn a_trusted_tls_upstream_relays_and_gets_the_key() {
    let pki = pki();
    let (upstream, seen) = tls_upstream(&pki).await;
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let base = format!("https://localhost:{}/v1", upstream.port());
    let gateway = serve_axum(RealtimeLayer::new(provider(&base)).tls_roots(roots)).await;

    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, "over TLS").await;
    assert_eq!(next_data(&mut client).await, Message::text("over TLS"));
    assert_eq!(*seen.lock().unwrap(), [format!("Bearer {PROVIDER_KEY}")]);
}

#[tokio::test]
async fn later_upstream_tls_handshakes_resume_the_session() {
    let pki = pki();
    let (upstream, _, handshakes) = tls_upstream_with_handshakes(&pki).await;
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let base = format!("https://localhost:{}/v1", upstream.port());
    let gateway = serve_axum(RealtimeLayer::new(provider(&base)).tls_roots(roots)).await;
    for _ in 0..2 {
        let mut client = open(&gateway, "openai/gpt-realtime").await;
        assert_eq!(next_event(&mut client).await["type"], "session.created");
        client.close(None).await.unwrap();
    }
    assert_eq!(
        *handshakes.lock().unwrap(),
        [rustls::HandshakeKind::Full, rustls::HandshakeKind::Resumed]
    );
}

/// A pre-warmed TLS socket the provider closed while it waited (with
/// `close_notify`, its session tickets maybe still unread, so it may look
/// open) is not what the next session ends on: it dials afresh and opens.
#[tokio::test]
async fn a_pre_warmed_tls_socket_the_provider_closed_gives_way_to_a_fresh_dial() {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    let pki = pki();
    let (upstream, handshakes) = idle_closing_tls_upstream(&pki, Duration::from_millis(200)).await;
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let base = format!("https://localhost:{}/v1", upstream.port());
    let layer = RealtimeLayer::new(provider(&base))
        .tls_roots(roots)
        .prewarm(1);
    let gateway = serve_axum(layer).await;

    // The first session warms the host; the pooled socket is closed while
    // it waits (well before it would expire).
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    client.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while handshakes.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the pool warms");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, "after a fresh dial").await;
    assert_eq!(
        next_data(&mut client).await,
        Message::text("after a fresh dial")
    );
    // The first session's, the pooled one's, and the fresh dial's.
    assert!(handshakes.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn an_untrusted_or_misnamed_tls_upstream_is_a_502() {
    let pki = pki();
    let (upstream, seen) = tls_upstream(&pki).await;
    // The bundled webpki roots do not know the private CA.
    let base = format!("https://localhost:{}/v1", upstream.port());
    let gateway = serve_axum(RealtimeLayer::new(provider(&base))).await;
    let (status, _, body) = refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_tls_failed")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{body}"
    );

    // Trusted CA, but the certificate names `localhost`, not `127.0.0.1`.
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let base = format!("https://127.0.0.1:{}/v1", upstream.port());
    let gateway = serve_axum(RealtimeLayer::new(provider(&base)).tls_roots(roots)).await;
    let (status, _, body) = refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_tls_failed")),
        "{body}"
    );

    // Neither handshake got as far as sending the key.
    assert!(seen.lock().unwrap().is_empty());
    assert!(!body.to_string().contains(PROVIDER_KEY));
}

/// The gateway example as a process, its environment the only configuration:
/// `SSL_CERT_FILE` names the private CA, `OPENAI_BASE_URL` the upstream.
fn gateway_example(upstream: SocketAddr, ca_file: Option<&Path>) -> Example {
    let base = format!("https://localhost:{}/v1", upstream.port());
    let mut env = vec![("OPENAI_API_KEY", PROVIDER_KEY), ("OPENAI_BASE_URL", &base)];
    // Without it, the platform's roots: none of them knows a CA made just now.
    if let Some(file) = ca_file {
        env.push(("SSL_CERT_FILE", file.to_str().unwrap()));
    }
    Example::start_with_env(
        &example_binary("gateway"),
        &["--listen", "127.0.0.1:0", "--no-demo"],
        None,
        &env,
    )
}

#[tokio::test]
async fn the_gateway_example_trusts_the_ca_in_ssl_cert_file() {
    let pki = pki();
    let (upstream, seen) = tls_upstream(&pki).await;
    let ca_file = scratch_dir("tls").join("private-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();

    let example = gateway_example(upstream, Some(&ca_file));
    let url = format!(
        "ws://{}/v1/realtime?model=openai/gpt-realtime",
        example.addr
    );
    let (mut client, _) = connect(&url, &[]).await.unwrap();
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, "trusted from the environment").await;
    assert_eq!(
        next_data(&mut client).await,
        Message::text("trusted from the environment")
    );
    assert_eq!(*seen.lock().unwrap(), [format!("Bearer {PROVIDER_KEY}")]);
    drop(client);
    example.stop_gracefully();

    // The same gateway without the CA refuses the upstream's certificate.
    let example = gateway_example(upstream, None);
    let url = format!(
        "ws://{}/v1/realtime?model=openai/gpt-realtime",
        example.addr
    );
    let (status, _, body) = refused(&url, &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_tls_failed")),
        "{body}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}
