//! The realtime layer wrapping a whole axum app.
//!
//! ```sh
//! OPENAI_API_KEY=sk-... cargo run --example axum
//! websocat "ws://127.0.0.1:3000/v1/realtime?model=openai/gpt-realtime"
//! ```
//!
//! Providers come from the environment (`Providers::from_env`: `OPENAI_API_KEY`,
//! `AZURE_API_KEY` + `AZURE_BASE_URL`, `XAI_API_KEY`, `DASHSCOPE_API_KEY`, `ZAI_API_KEY`,
//! `REALTIME_PROVIDERS`, …; see the README). Without any, it relays to a local echo
//! upstream instead (`?model=echo/any`), so it runs as it is.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
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

    let realtime = RealtimeLayer::new(providers).allow_unauthenticated();
    // `Router::layer` wraps every route and the fallback: `/v1/realtime` needs
    // no route of its own. No client authentication: this example serves
    // loopback only; real deployments set an admission hook instead (see
    // `examples/gateway`).
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .layer(realtime.clone());

    let addr: SocketAddr = std::env::var("LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()
        .expect("LISTEN address");
    // No Nagle and bounded buffers on client sockets: `axum::serve` sets neither.
    let listener = tokio::net::TcpListener::bind(addr)
        .await?
        .tap_io(move |tcp| realtime.tune_client_socket(tcp));
    println!("listening on http://{addr}");
    println!("try: websocat \"ws://{addr}/v1/realtime?model={model}\"");
    axum::serve(listener, app).await
}
