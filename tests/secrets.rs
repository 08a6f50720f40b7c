//! Keys never leak: with every tracing event and `log` record captured at
//! TRACE level, and every byte the client receives kept, neither the
//! provider's key nor the client's token appears anywhere, whatever happens.

mod common;

use std::time::Duration;

use common::log_capture::{Captured, capture};
use common::stack::{serve_service, status_of, upgrade_request};
use common::*;
use tower::ServiceBuilder;
use tower_http::validate_request::ValidateRequestHeaderLayer;
use tower_realtime::provider::{OpenAi, Provider, Target, TargetRequest};
use tower_realtime::testing::{Handshake, MockUpstream, UpstreamSession};
use tower_realtime::{Providers, RealtimeLayer, Secret, SubprotocolTokenLayer};

/// The client's gateway token, as recognisable as the provider key.
const CLIENT_KEY: &str = "gw-client-SECRET-9876543210";

/// Fails if `text` holds either key (or the distinctive part of one).
fn assert_no_key(what: &str, text: &str) {
    for needle in [
        PROVIDER_KEY,
        CLIENT_KEY,
        "SECRET-0123456789",
        "SECRET-9876543210",
    ] {
        if let Some(at) = text.find(needle) {
            let start = text[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            let end = (at + needle.len() + 100).min(text.len());
            panic!(
                "{what} leaks `{needle}`: ...{}...",
                text.get(start..end).unwrap_or(&text[at..])
            );
        }
    }
}

/// Checks the captured logs, and that they really are captured at TRACE.
fn assert_logs_clean(captured: &Captured) {
    let logs = captured.text();
    assert!(
        logs.contains("TRACE") && logs.contains("realtime_session"),
        "the capture must see TRACE events and the session span"
    );
    assert_no_key("the logs", &logs);
}

async fn scripted(mut session: UpstreamSession) {
    session.session_created().await;
    match session.model().as_deref() {
        Some("hangup") => drop(session.into_socket()),
        Some("close") => {
            if session.recv().await.is_some() {
                session.close(4000, "upstream done").await;
            }
        }
        _ => session.echo().await,
    }
}

/// `SubprotocolTokenLayer` -> bearer auth with the client key -> `layer`.
// tower-http deprecates `bearer` as too basic; it is all this needs.
#[allow(deprecated)]
async fn authenticated(layer: RealtimeLayer) -> Gateway {
    serve_service(
        ServiceBuilder::new()
            .layer(SubprotocolTokenLayer::new())
            .layer(ValidateRequestHeaderLayer::bearer(CLIENT_KEY))
            // Authentication happens outside the layer.
            .layer(layer.allow_unauthenticated())
            .service(app()),
    )
    .await
}

/// The client's credentials, both ways a client may send them.
fn credentials(browser: bool) -> String {
    if browser {
        format!("Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.{CLIENT_KEY}\r\n")
    } else {
        format!("Authorization: Bearer {CLIENT_KEY}\r\n")
    }
}

/// Everything a raw client read: every frame's payload, as text.
async fn read_all(client: &mut RawClient, seen: &mut String) {
    while let Some(frame) = client.read_frame().await {
        seen.push_str(&String::from_utf8_lossy(&frame.payload));
        if frame.opcode == 8 {
            client.frame(0x88, &frame.payload, true).await;
        }
    }
}

#[tokio::test]
async fn sessions_that_end_in_every_way_leak_no_key() {
    let captured = capture();
    let upstream = MockUpstream::with_script(scripted).await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream));
    let gateway = authenticated(layer).await;
    let mut seen = String::new();
    let target = |model: &str| format!("/v1/realtime?model=openai/{model}");

    // Messages both ways, then the client closes.
    for browser in [true, false] {
        let (mut client, head) =
            RawClient::connect_with(gateway.addr, &target("echo"), &credentials(browser)).await;
        seen.push_str(&head);
        client
            .frame(0x81, br#"{"type":"response.create"}"#, true)
            .await;
        client.frame(0x82, &[1, 2, 3], true).await;
        client.frame(0x88, &1000u16.to_be_bytes(), true).await;
        read_all(&mut client, &mut seen).await;
    }
    // The upstream closes; the upstream vanishes.
    let (mut client, head) =
        RawClient::connect_with(gateway.addr, &target("close"), &credentials(true)).await;
    seen.push_str(&head);
    client.frame(0x81, b"bye", true).await;
    read_all(&mut client, &mut seen).await;
    let (mut client, head) =
        RawClient::connect_with(gateway.addr, &target("hangup"), &credentials(false)).await;
    seen.push_str(&head);
    read_all(&mut client, &mut seen).await;
    // The client vanishes; the client breaks the protocol.
    let (client, head) =
        RawClient::connect_with(gateway.addr, &target("echo"), &credentials(true)).await;
    seen.push_str(&head);
    client.reset();
    let (mut client, head) =
        RawClient::connect_with(gateway.addr, &target("echo"), &credentials(true)).await;
    seen.push_str(&head);
    client.frame(0x81, &[0xff], true).await;
    read_all(&mut client, &mut seen).await;

    // The gateway ends sessions: idle timeout, then shutdown.
    let layer = RealtimeLayer::new(openai(&upstream)).idle_timeout(Duration::from_secs(1));
    let shutdown = layer.shutdown_handle();
    let gateway = authenticated(layer).await;
    let (mut client, head) =
        RawClient::connect_with(gateway.addr, &target("echo"), &credentials(true)).await;
    seen.push_str(&head);
    read_all(&mut client, &mut seen).await;
    let (mut client, head) =
        RawClient::connect_with(gateway.addr, &target("echo"), &credentials(false)).await;
    seen.push_str(&head);
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| shutdown.active_sessions() == 1)
            .await
    );
    shutdown.begin();
    read_all(&mut client, &mut seen).await;
    let refused = raw_http(
        gateway.addr,
        &upgrade_request(&target("echo"), &credentials(true)),
    )
    .await;
    assert_eq!(status_of(&refused), 503);
    seen.push_str(&refused);
    tokio::time::timeout(PROMPTLY, shutdown.drained())
        .await
        .unwrap();

    assert!(seen.contains("session.created") && seen.contains("idle_timeout"));
    assert_no_key("what the client received", &seen);
    for request in upstream.requests() {
        assert_no_key(
            "the upstream handshake",
            &format!("{:?}", request.headers).replace(
                &format!("Bearer {PROVIDER_KEY}"),
                "Bearer <the provider key, where it belongs>",
            ),
        );
    }
    assert_no_key(
        "what the upstream received",
        &format!("{:?}", upstream.received()),
    );
    assert_logs_clean(&captured);
}

/// A refused session, answered by an upstream that echoes the key back.
async fn refusal(handshake: Handshake) -> String {
    let upstream = MockUpstream::builder()
        .handshake(handshake)
        .start()
        .await
        .unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).connect_timeout(Duration::from_secs(2));
    let gateway = authenticated(layer).await;
    raw_http(
        gateway.addr,
        &upgrade_request("/v1/realtime?model=openai/gpt", &credentials(true)),
    )
    .await
}

fn provider_at(base: &str) -> Providers {
    Providers::new().with(
        "openai",
        OpenAi::new(Secret::new(PROVIDER_KEY))
            // `upstream.invalid` is not loopback.
            .allow_insecure_transport()
            .base_url(base)
            .unwrap(),
    )
}

#[tokio::test]
async fn refusals_and_upstream_failures_leak_no_key() {
    let captured = capture();
    let echoed = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {PROVIDER_KEY}. You sent Bearer {PROVIDER_KEY}","type":"invalid_request_error"}}}}"#
    );
    let mut answers = Vec::new();
    for handshake in [
        Handshake::reject(401, echoed.clone()),
        Handshake::reject(403, format!("key {PROVIDER_KEY} is not allowed")).header(
            "www-authenticate",
            &format!("Bearer realm=\"{PROVIDER_KEY}\""),
        ),
        Handshake::reject(404, format!("no model for {PROVIDER_KEY}")),
        Handshake::reject(429, echoed.clone()).header("retry-after", "1"),
        Handshake::reject(500, format!("panic: key={PROVIDER_KEY}")),
        Handshake::reject(302, echoed.clone()).header("location", &format!("/?k={PROVIDER_KEY}")),
        Handshake::Hangup,
        Handshake::Stall,
    ] {
        answers.push(refusal(handshake).await);
    }

    // Connect, DNS and TLS failures.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let plain = MockUpstream::echo().await.unwrap();
    for base in [
        format!("http://127.0.0.1:{closed_port}/v1"),
        "http://upstream.invalid/v1".to_owned(),
        format!("https://localhost:{}/v1", plain.addr().port()),
    ] {
        let gateway = authenticated(RealtimeLayer::new(provider_at(&base))).await;
        answers.push(
            raw_http(
                gateway.addr,
                &upgrade_request("/v1/realtime?model=openai/gpt", &credentials(false)),
            )
            .await,
        );
    }
    // Refused by the client's auth layer, with a wrong token close to the right one.
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = authenticated(RealtimeLayer::new(openai(&upstream))).await;
    answers.push(
        raw_http(
            gateway.addr,
            &upgrade_request(
                "/v1/realtime?model=openai/gpt",
                &format!("Sec-WebSocket-Protocol: openai-insecure-api-key.{CLIENT_KEY}x\r\n"),
            ),
        )
        .await,
    );

    let statuses: Vec<u16> = answers.iter().map(|head| status_of(head)).collect();
    assert_eq!(
        statuses,
        [502, 502, 404, 429, 502, 502, 502, 504, 502, 502, 502, 401]
    );
    for answer in &answers {
        assert_no_key("a refusal", answer);
    }
    // What the upstream says about the key is logged (scrubbed), not passed on.
    assert!(
        answers[0].contains(
            "the upstream provider rejected the gateway's credentials (401 Unauthorized)"
        ),
        "{}",
        answers[0]
    );
    assert!(!answers[0].contains("Incorrect API key"), "{}", answers[0]);
    assert!(captured.text().contains("Incorrect API key provided: ***"));
    assert_logs_clean(&captured);
}

/// A provider that takes its key in the URL query registers it as a secret:
/// the upstream gets it, and no refusal, log line or `Debug` print shows it.
#[tokio::test]
async fn keys_in_the_url_query_leak_nowhere() {
    let captured = capture();
    let provider_for = |addr: std::net::SocketAddr| {
        move |request: &TargetRequest<'_>| {
            let mut url = url::Url::parse(&format!("ws://{addr}/v1/realtime")).unwrap();
            url.query_pairs_mut().append_pair("model", request.model());
            Ok(Target::new(url).query_secret("key", &Secret::new(PROVIDER_KEY)))
        }
    };
    let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    let target = provider_for("127.0.0.1:1".parse().unwrap())
        .target(&TargetRequest::new("query", "m", None, &parts))
        .await
        .unwrap();
    assert!(target.url().as_str().contains(PROVIDER_KEY));
    assert_no_key("Target", &format!("{target:?} {target:#?}"));

    let mut answers = Vec::new();
    let echoed = format!("bad key: {PROVIDER_KEY}, url /v1/realtime?model=m&key={PROVIDER_KEY}");
    for handshake in [
        Handshake::reject(400, echoed.clone()),
        Handshake::reject(401, echoed.clone()),
        Handshake::reject(500, echoed),
    ] {
        let upstream = MockUpstream::builder()
            .handshake(handshake)
            .start()
            .await
            .unwrap();
        let providers = Providers::new().with("query", provider_for(upstream.addr()));
        let gateway = authenticated(RealtimeLayer::new(providers)).await;
        answers.push(
            raw_http(
                gateway.addr,
                &upgrade_request("/v1/realtime?model=query/m", &credentials(false)),
            )
            .await,
        );
        let sent = upstream.requests();
        assert_eq!(
            sent[0].query_pairs(),
            [
                ("model".into(), "m".into()),
                ("key".into(), PROVIDER_KEY.into())
            ]
        );
    }
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let providers = Providers::new().with("query", provider_for(closed_addr));
    let gateway = authenticated(RealtimeLayer::new(providers)).await;
    answers.push(
        raw_http(
            gateway.addr,
            &upgrade_request("/v1/realtime?model=query/m", &credentials(false)),
        )
        .await,
    );
    // A session that opens and closes.
    let upstream = MockUpstream::with_script(scripted).await.unwrap();
    let providers = Providers::new().with("query", provider_for(upstream.addr()));
    let gateway = authenticated(RealtimeLayer::new(providers)).await;
    let (mut client, head) = RawClient::connect_with(
        gateway.addr,
        "/v1/realtime?model=query/close",
        &credentials(false),
    )
    .await;
    let mut seen = head;
    client.frame(0x81, b"bye", true).await;
    read_all(&mut client, &mut seen).await;
    answers.push(seen);

    let statuses: Vec<u16> = answers[..4].iter().map(|head| status_of(head)).collect();
    assert_eq!(statuses, [400, 502, 502, 502]);
    assert!(answers[0].contains("bad key: ***"), "{}", answers[0]);
    for answer in &answers {
        assert_no_key("an answer", answer);
    }
    assert_logs_clean(&captured);
}

/// A Gemini session through its close: the key goes upstream in its
/// header only, and neither the client nor the logs (at TRACE) see it. (A
/// close reason with the key in it is redacted for the client: see the
/// close-code table in tests/gemini_sessions.rs. Logged below TRACE, that
/// is: tungstenite's TRACE output shows every frame as it arrived.)
#[tokio::test]
async fn gemini_sessions_leak_no_key() {
    use tower_realtime::provider::Gemini;
    use tower_realtime::testing::{GeminiLive, Step, Trigger};

    let captured = capture();
    let script = GeminiLive::new().reply(
        Trigger::AudioChunk(1),
        vec![
            GeminiLive::audio("AQAD"),
            Step::Close(1011, "The service is currently unavailable.".into()),
        ],
    );
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let gemini = Gemini::new(Secret::new(PROVIDER_KEY))
        .base_url(&format!("http://{}", upstream.addr()))
        .unwrap();
    let gateway = authenticated(RealtimeLayer::new(Providers::new().with("gemini", gemini))).await;
    let (mut client, head) = RawClient::connect_with(
        gateway.addr,
        "/v1/realtime?model=gemini/gemini-live-2.5-flash-preview",
        &credentials(true),
    )
    .await;
    let mut seen = head;
    client
        .frame(
            0x81,
            br#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#,
            true,
        )
        .await;
    read_all(&mut client, &mut seen).await;
    assert!(seen.contains("upstream_error"), "{seen}");
    assert_no_key("the client's bytes", &seen);
    let sent = &upstream.requests()[0];
    assert_eq!(sent.header("x-goog-api-key"), Some(PROVIDER_KEY));
    assert!(
        sent.query
            .as_deref()
            .is_none_or(|query| !query.contains(PROVIDER_KEY))
    );
    assert_logs_clean(&captured);
}

#[test]
fn debug_output_shows_no_key() {
    let key = Secret::new(PROVIDER_KEY);
    let openai = OpenAi::new(key.clone());
    let providers = Providers::new()
        .with("openai", openai.clone())
        .default_provider("openai");
    let layer = RealtimeLayer::new(providers.clone());
    let service = tower::Layer::layer(&layer, app());
    let (parts, ()) = http::Request::get("/v1/realtime")
        .body(())
        .unwrap()
        .into_parts();
    let target = futures_util::FutureExt::now_or_never(
        openai.target(&TargetRequest::new("openai", "gpt", None, &parts)),
    )
    .expect("built-in providers answer at once")
    .unwrap();
    assert_eq!(
        target.headers()["authorization"],
        format!("Bearer {PROVIDER_KEY}").as_str(),
        "the target does carry the key"
    );
    for (what, debug) in [
        ("Secret", format!("{key:?} {key}")),
        ("OpenAi", format!("{openai:?}")),
        ("Providers", format!("{providers:?}")),
        ("RealtimeLayer", format!("{layer:?} {layer:#?}")),
        ("RealtimeService", format!("{service:?}")),
        ("Target", format!("{target:?} {target:#?}")),
        ("ShutdownHandle", format!("{:?}", layer.shutdown_handle())),
    ] {
        assert_no_key(what, &debug);
    }
}
