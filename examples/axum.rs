//! The realtime layer wrapping a whole axum app.
//!
//! ```sh
//! OPENAI_API_KEY=sk-... cargo run --example axum
//! websocat "ws://127.0.0.1:3000/v1/realtime?model=openai/gpt-realtime"
//! ```
//!
//! Without `OPENAI_API_KEY` it relays to a local echo upstream instead
//! (`?model=echo/any`), so it runs as it is.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use tower::Layer;
use tower_realtime::provider::OpenAi;
use tower_realtime::testing::MockUpstream;
use tower_realtime::{Providers, RealtimeLayer, Secret};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    // Keep the echo upstream alive for as long as the server runs.
    let mut _echo = None;
    let (providers, model) = match std::env::var("OPENAI_API_KEY") {
        Ok(key) => (
            Providers::new().with("openai", OpenAi::new(Secret::new(key))),
            "openai/gpt-realtime",
        ),
        Err(_) => {
            let echo = MockUpstream::echo().await?;
            let provider = OpenAi::new(Secret::new("unused"))
                .base_url(&echo.base_url())
                .expect("loopback URL");
            _echo = Some(echo);
            (Providers::new().with("echo", provider), "echo/any")
        }
    };

    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    let app = RealtimeLayer::new(providers).layer(app);

    let addr: SocketAddr = std::env::var("LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()
        .expect("LISTEN address");
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{addr}");
    println!("try: websocat \"ws://{addr}/v1/realtime?model={model}\"");
    axum::serve(
        listener,
        axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
    )
    .await
}
