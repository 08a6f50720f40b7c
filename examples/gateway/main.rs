//! A realtime gateway that runs out of the box: how tower-realtime is meant
//! to be composed in an axum app.
//!
//! ```sh
//! cargo run --example gateway                       # http://127.0.0.1:8080, demo provider, no auth
//! GATEWAY_API_KEY=secret cargo run --example gateway -- --listen 0.0.0.0:8080
//! GATEWAY_API_KEYS="alice:KEY1,bob:KEY2" cargo run --example gateway   # a key per identity
//! GATEWAY_API_KEYS="alice:KEY1,bob:KEY2" cargo run --example gateway -- \
//!     --token-budget 100000 --max-sessions-per-key 2 --redis redis://127.0.0.1:6379/
//! ```
//!
//! From the outside in, every request passes:
//!
//! 1. `TraceLayer`: one log line per request, upgrades included.
//! 2. `SessionRateLimitLayer`: new sessions per client IP and minute
//!    (WebSocket upgrades on `/v1/realtime` only).
//! 3. `RealtimeLayer`, wrapping the whole router: upgrades on
//!    `/v1/realtime` become relayed sessions, WebRTC calls
//!    (`/v1/realtime/client_secrets`, `/v1/realtime/calls`) are forwarded
//!    and metered from a sideband of the gateway's, everything else falls through.
//!    Its admission hook checks the gateway keys (`GATEWAY_API_KEY`, whose
//!    identity is `default`, and `GATEWAY_API_KEYS="alice:KEY1,bob:KEY2"`),
//!    sent as `Authorization: Bearer KEY` or, from a browser, as the
//!    subprotocol `openai-insecure-api-key.KEY`; the key's identity is on
//!    the session and on every usage log line. With no key set, the layer
//!    explicitly allows unauthenticated sessions, and says so loudly.
//! 4. The router: the console at `/`, `/healthz`, and an explanation for
//!    plain requests to `/v1/realtime`.
//!
//! With `--token-budget`, `--usd-budget` (priced by `--prices FILE`),
//! `--max-sessions-per-key` or `--sessions-per-minute-per-key`, the layer
//! holds each identity to a `Budget`: counted in this process, or with
//! `--redis URL` (`REDIS_URL`) shared by every replica on that Redis.
//! `--redis` shares deployment health as well (with or without budgets): a
//! deployment that failed behind one replica is skipped by all of them
//! until its cooldown ends; and WebRTC calls: a client secret minted on one
//! replica posts its call to any, and a replica takes over the sideband of
//! a call whose replica stopped.
//!
//! Every session runs model pinning (a client cannot switch models); with
//! `--deny-event TYPE` the event policy refuses client events of that type.
//!
//! Providers come from the environment (`OPENAI_API_KEY`, `AZURE_API_KEY`,
//! ..., see the README), plus the built-in demo providers unless `--no-demo`:
//! `demo` (an OpenAI realtime upstream that answers WebRTC calls too) and `gemini-demo` (a scripted Gemini
//! Live upstream behind the Gemini provider and its translator).
//! The usage observer logs one line per response and one per session, with
//! the session's identity.
//!
//! Ctrl-C or SIGTERM closes live sessions with `1001` and waits for them
//! (up to 10 s) before the server stops.

mod auth;
mod budget;
mod console;
mod demo;
mod gemini_demo;
mod options;
mod rate_limit;
mod refusal;
mod usage_log;

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use axum::serve::{Listener, ListenerExt};
use http::StatusCode;
use tower::ServiceBuilder;
use tower_http::ServiceBuilderExt;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_realtime::hooks::EventPolicy;
use tower_realtime::testing::MockUpstream;
use tower_realtime::webrtc::WebRtc;
use tower_realtime::{Providers, RealtimeLayer, ShutdownHandle};
use tracing::Level;

use crate::auth::GatewayKeys;
use crate::options::{Command, Options, USAGE};
use crate::rate_limit::SessionRateLimitLayer;
use crate::refusal::refusal;

const REALTIME_PATH: &str = RealtimeLayer::DEFAULT_PATH;

/// The model the console and the printed examples use.
const DEMO_MODEL: &str = "demo/realtime";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .init();
    let command = Command::parse(
        std::env::args().skip(1),
        std::env::var("GATEWAY_API_KEY").ok(),
        std::env::var("GATEWAY_API_KEYS").ok(),
        std::env::var("REDIS_URL").ok(),
    );
    let options = match command {
        Ok(Command::Run(options)) => *options,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("gateway: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let shared = match budget::configure(&options.budget).await {
        Ok(shared) => shared,
        Err(message) => {
            eprintln!("gateway: {message}");
            return ExitCode::from(2);
        }
    };
    match run(options, shared).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The demo upstreams, which serve as long as they are kept.
struct DemoUpstreams {
    /// The scripted WebSocket upstream, behind `calls`.
    _openai: MockUpstream,
    /// The `demo` provider: WebRTC calls, their sidebands, and the upstream's sessions.
    calls: demo::CallsFront,
    gemini: MockUpstream,
}

/// The providers sessions can be routed to (from the environment), and the
/// demo upstreams.
async fn providers(demo: bool) -> io::Result<(Providers, Option<DemoUpstreams>)> {
    let providers = Providers::from_env().map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("provider configuration: {error}"),
        )
    })?;
    if !demo {
        return Ok((providers, None));
    }
    let upstream = MockUpstream::with_script(demo::Demo::new()).await?;
    let calls = demo::CallsFront::start(upstream.addr()).await?;
    let (gemini_upstream, gemini) = gemini_demo::start().await?;
    let providers = providers
        .with("demo", calls.provider())
        .with("gemini-demo", gemini);
    let upstreams = DemoUpstreams {
        _openai: upstream,
        calls,
        gemini: gemini_upstream,
    };
    Ok((providers, Some(upstreams)))
}

async fn run(options: Options, shared: budget::Shared) -> io::Result<()> {
    let (mut providers, demo) = providers(options.demo).await?;
    if let Some(health) = shared.health {
        providers = providers.deployment_health(health);
    }
    let provider_names: Vec<String> = providers.names().map(str::to_owned).collect();
    let webrtc = match shared.calls {
        Some(calls) => WebRtc::new().store(calls),
        None => WebRtc::new(),
    };

    let mut realtime = RealtimeLayer::new(providers)
        .max_sessions(options.max_sessions)
        .keepalive(options.keepalive)
        .prewarm(options.prewarm)
        .observer(usage_log::log)
        .webrtc(webrtc);
    if !options.deny_events.is_empty() {
        realtime = realtime.hook(EventPolicy::deny(options.deny_events.clone()));
    }
    if let Some(budget) = shared.budget {
        realtime = realtime.budget(budget);
    }
    // A deliberate choice either way: without one, the layer refuses every session.
    let keys = (!options.api_keys.is_empty()).then(|| GatewayKeys::new(&options.api_keys));
    let realtime = match &keys {
        Some(keys) => realtime.admission(keys.clone()),
        None => realtime.allow_unauthenticated(),
    };
    let sessions = realtime.shutdown_handle();
    let tuning = realtime.clone();

    let models = provider_names
        .iter()
        .map(|name| match name.as_str() {
            "demo" => DEMO_MODEL.to_owned(),
            "gemini-demo" => gemini_demo::MODEL.to_owned(),
            other => format!("{other}/"),
        })
        .collect();
    let router = Router::new()
        .route("/healthz", get(healthz).with_state(sessions.clone()))
        .route(REALTIME_PATH, get(not_a_websocket).with_state(keys))
        .merge(console::routes(models, !options.api_keys.is_empty()));

    let app = ServiceBuilder::new()
        // `axum::serve` takes responses with axum's body.
        .map_response(|response: http::Response<_>| response.map(axum::body::Body::new))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        // Before admission (inside `RealtimeLayer`), so that guessing keys
        // is limited too.
        .layer(SessionRateLimitLayer::per_minute(
            REALTIME_PATH,
            options.sessions_per_minute,
        ))
        // The layers outside answer with axum's body, as everything inside them must.
        .map_response_body(axum::body::Body::new)
        .layer(realtime)
        .service(router);

    // No Nagle and bounded buffers on client sockets: `axum::serve` sets neither.
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await?
        .tap_io(move |tcp| tuning.tune_client_socket(tcp));
    let addr = listener.local_addr()?;
    print_banner(
        addr,
        &options,
        &provider_names,
        demo.as_ref(),
        &shared.banner,
    );

    let service = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        SocketAddr,
    >(app);
    axum::serve(listener, service)
        .with_graceful_shutdown(drain_on_signal(sessions))
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// `200 {"status":"ok","sessions":N,"dialling":M}` (live sessions, and
/// sessions still dialling their provider), or `503` once shutdown has
/// begun, so that load balancers stop sending new clients.
async fn healthz(
    axum::extract::State(sessions): axum::extract::State<ShutdownHandle>,
) -> impl IntoResponse {
    let (status, state) = if sessions.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    } else {
        (StatusCode::OK, "ok")
    };
    let body = serde_json::json!({
        "status": state,
        "sessions": sessions.live_sessions(),
        "dialling": sessions.dialling_sessions(),
    });
    (status, Json(body))
}

/// A plain request to the realtime path fell through `RealtimeLayer`. It
/// checks the key as a session would, so that the console can tell a wrong
/// key from another refusal (a browser never sees why a WebSocket failed).
async fn not_a_websocket(
    axum::extract::State(keys): axum::extract::State<Option<GatewayKeys>>,
    headers: http::HeaderMap,
) -> axum::response::Response {
    if let Some(Err(refused)) = keys.map(|keys| keys.check(&headers)) {
        let mut response = refusal(
            refused.status(),
            "invalid_request_error",
            refused.code(),
            refused.message(),
        );
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    refusal(
        StatusCode::UPGRADE_REQUIRED,
        "invalid_request_error",
        "upgrade_required",
        "This is the realtime WebSocket endpoint: connect with a WebSocket client and \
         `?model=PROVIDER/MODEL`.",
    )
    .into_response()
}

/// Resolves once Ctrl-C or SIGTERM arrived and live sessions are closed
/// (their places under their identities' session limits given back to the
/// budget store, so that other replicas admit their reconnects at once).
async fn drain_on_signal(sessions: ShutdownHandle) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        signal.recv().await;
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    tracing::info!(
        live = sessions.active_sessions(),
        "shutting down: closing live sessions"
    );
    if !sessions.shutdown(Duration::from_secs(10)).await {
        tracing::warn!(
            live = sessions.active_sessions(),
            "sessions still open after 10 s"
        );
    }
}

fn print_banner(
    addr: SocketAddr,
    options: &Options,
    providers: &[String],
    demo: Option<&DemoUpstreams>,
    shared: &[(&str, String)],
) {
    let providers = match (providers.is_empty(), demo) {
        (true, _) => "none: every session will be refused".to_owned(),
        (false, Some(demo)) => format!(
            "{} (demo: a local scripted upstream on {}, WebRTC calls included; gemini-demo: a scripted Gemini Live upstream on {}, translated)",
            providers.join(", "),
            demo.calls.addr(),
            demo.gemini.addr()
        ),
        (false, None) => providers.join(", "),
    };
    let identities: Vec<&str> = options
        .api_keys
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    let auth = if identities.is_empty() {
        "OFF: neither GATEWAY_API_KEY nor GATEWAY_API_KEYS is set, anyone who reaches this \
         address can open sessions"
            .to_owned()
    } else {
        format!(
            "on: clients send a gateway key as a bearer token (identities: {})",
            identities.join(", ")
        )
    };
    // websocat's -H takes every argument after it: it goes last.
    let header = match identities.first() {
        None => "",
        Some(&crate::auth::DEFAULT_IDENTITY) => " -H \"Authorization: Bearer $GATEWAY_API_KEY\"",
        Some(_) => " -H \"Authorization: Bearer KEY\"",
    };
    println!("tower-realtime gateway");
    println!("  listening  http://{addr}");
    println!("  console    http://{addr}/");
    println!("  realtime   ws://{addr}{REALTIME_PATH}?model=PROVIDER/MODEL");
    println!("  providers  {providers}");
    println!("  auth       {auth}");
    println!(
        "  limits     {} new sessions per minute per client IP, {} live sessions",
        options.sessions_per_minute, options.max_sessions
    );
    for (label, text) in shared {
        println!("  {label:<10} {text}");
    }
    if !options.deny_events.is_empty() {
        println!(
            "  denied     client events {}",
            options.deny_events.join(", ")
        );
    }
    println!("try:");
    println!("  websocat \"ws://{addr}{REALTIME_PATH}?model={DEMO_MODEL}\"{header}");
    println!("  then type  {{\"type\":\"response.create\"}}");
    println!();
    if identities.is_empty() {
        tracing::warn!(
            "authentication is OFF: set GATEWAY_API_KEY or GATEWAY_API_KEYS to require a key"
        );
    }
}
