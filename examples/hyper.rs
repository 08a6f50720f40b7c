//! The realtime layer in a plain hyper server, in front of a tiny service.
//!
//! ```sh
//! OPENAI_API_KEY=sk-... cargo run --example hyper
//! websocat "ws://127.0.0.1:3001/v1/realtime?model=openai/gpt-realtime"
//! ```
//!
//! Providers come from the environment (`Providers::from_env`: `OPENAI_API_KEY`,
//! `AZURE_API_KEY` + `AZURE_BASE_URL`, `XAI_API_KEY`, `DASHSCOPE_API_KEY`, `ZAI_API_KEY`,
//! `REALTIME_PROVIDERS`, …; see the README). Without any, it relays to a local echo
//! upstream instead (`?model=echo/any`), so it runs as it is.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::{Layer, service_fn};
use tower_realtime::RealtimeLayer;

#[path = "support/providers.rs"]
mod support;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    // `_echo` serves as long as the server runs.
    let (providers, model, _echo) = support::from_env_or_echo().await?;

    // Every request that is not a realtime upgrade ends up here.
    let fallback = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
        let body = format!(
            "not a realtime upgrade: {} {}\n",
            request.method(),
            request.uri()
        );
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body))))
    });
    // No client authentication: this example serves loopback only. Real
    // deployments set an admission hook instead (see `examples/gateway`).
    let realtime = RealtimeLayer::new(providers).allow_unauthenticated();
    let service = realtime.layer(fallback);

    let addr: SocketAddr = std::env::var("LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:3001".into())
        .parse()
        .expect("LISTEN address");
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{addr}");
    println!("try: websocat \"ws://{addr}/v1/realtime?model={model}\"");
    loop {
        let (stream, _) = listener.accept().await?;
        // No Nagle, bounded buffers: hyper-util's auto builder hides the
        // socket from the layer, so it is tuned here.
        realtime.tune_client_socket(&stream);
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // WebSockets over HTTP/2 (RFC 8441) need the extended CONNECT protocol.
            builder.http2().enable_connect_protocol();
            if let Err(error) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection error");
            }
        });
    }
}
