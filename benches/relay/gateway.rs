//! The gateway under test: `RealtimeLayer` in a hyper or axum server, one
//! process per variant, relaying to the scripted upstream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{Layer, service_fn};
use tower_realtime::hooks::{Event, EventPolicy, Hook, HookContext, Interest, Verdict};
use tower_realtime::provider::OpenAi;
use tower_realtime::usage::Observation;
use tower_realtime::{Providers, RealtimeLayer, Secret, SessionInfo};

use crate::process;

/// One way of building the layer and serving it; each is measured against
/// the direct path.
pub(crate) struct Variant {
    /// The column title.
    pub(crate) name: &'static str,
    /// Builds the layer around the bench's providers.
    pub(crate) layer: fn(Providers) -> RealtimeLayer,
    /// The server around it.
    pub(crate) server: Server,
}

/// How a variant serves its layer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// hyper-util's `auto::Builder`, accepted sockets tuned with
    /// `RealtimeLayer::tune_client_socket`.
    Hyper,
    /// hyper-util's `auto::Builder`, accepted sockets with `TCP_NODELAY` only.
    HyperNodelay,
    /// Plain `axum::serve`, which sets no socket option: Nagle stays on.
    Axum,
}

/// The layers measured. A variant is one more entry, e.g. the usage tap:
/// `Variant { name: "layer+tap", layer: |p| RealtimeLayer::new(p).observer(...), server: Server::Hyper }`.
pub(crate) const VARIANTS: &[Variant] = &[
    Variant {
        name: "layer",
        layer: RealtimeLayer::new,
        server: Server::Hyper,
    },
    Variant {
        name: "tap",
        layer: |providers| RealtimeLayer::new(providers).observer(|_: Observation<'_>| {}),
        server: Server::Hyper,
    },
    Variant {
        name: "untuned",
        layer: |providers| {
            RealtimeLayer::new(providers)
                .client_socket_buffers(None, None)
                .upstream_notsent_lowat(None)
        },
        server: Server::HyperNodelay,
    },
    Variant {
        name: "axum",
        layer: RealtimeLayer::new,
        server: Server::Axum,
    },
    // No hook at all: model pinning off, no observer.
    Variant {
        name: "none",
        layer: |providers| RealtimeLayer::new(providers).pin_model(false),
        server: Server::Hyper,
    },
    // One hook subscribed to one rare event type each way: every event is
    // classified, none is given to the hook.
    Variant {
        name: "rare",
        layer: |providers| {
            RealtimeLayer::new(providers)
                .pin_model(false)
                .hook(|_: &SessionInfo| Rare)
        },
        server: Server::Hyper,
    },
    // What a deployment runs: model pinning (the default), an event policy
    // and the usage meter.
    Variant {
        name: "full",
        layer: |providers| {
            RealtimeLayer::new(providers)
                .hook(EventPolicy::deny(["conversation.item.delete"]))
                .observer(|_: Observation<'_>| {})
        },
        server: Server::Hyper,
    },
];

/// A hook for events the bench never sends.
struct Rare;

impl Hook for Rare {
    fn interest(&self) -> Interest {
        Interest::new()
            .client_events(["conversation.item.delete"])
            .upstream_events(["rate_limits.updated"])
    }

    fn on_event(&mut self, event: Event, _cx: &mut HookContext<'_>) -> Verdict {
        Verdict::forward(event)
    }
}

/// The model prefix that routes to the scripted upstream.
pub(crate) const PROVIDER: &str = "bench";

/// Runs the gateway of `variant` until the parent closes stdin.
pub(crate) fn main(variant: &str, upstream: SocketAddr) {
    let variant = VARIANTS
        .iter()
        .find(|v| v.name == variant)
        .unwrap_or_else(|| panic!("unknown gateway variant `{variant}`"));
    // What a deployment runs: the multi-threaded runtime, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // The accept loop runs on a worker, like the sessions, not on the
    // thread that blocks on it.
    let server = runtime.spawn(async move { serve(variant, upstream).await });
    runtime.block_on(server).expect("the gateway runs");
}

async fn serve(variant: &Variant, upstream: SocketAddr) {
    let provider = OpenAi::new(Secret::new("sk-bench"))
        .base_url(&format!("http://{upstream}/v1"))
        .expect("a loopback base URL");
    let layer = (variant.layer)(Providers::new().with(PROVIDER, provider)).allow_unauthenticated();
    let not_found = service_fn(|_: http::Request<hyper::body::Incoming>| async {
        let mut response = http::Response::new(Full::new(Bytes::new()));
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        Ok::<_, Infallible>(response)
    });
    let tuning = layer.clone();
    let service = layer.layer(not_found);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    process::announce(listener.local_addr().expect("local address"));
    if variant.server == Server::Axum {
        return serve_axum(tuning, listener).await;
    }
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                eprintln!("gateway: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match variant.server {
            Server::Hyper => tuning.tune_client_socket(&stream),
            _ => {
                let _ = stream.set_nodelay(true);
            }
        }
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().enable_connect_protocol();
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `layer` around a router that answers 404, served by plain `axum::serve`.
async fn serve_axum(layer: RealtimeLayer, listener: TcpListener) {
    let router = axum::Router::new()
        .fallback(|| async { http::StatusCode::NOT_FOUND })
        .layer(layer);
    axum::serve(listener, router).await.expect("axum serves");
}
