//! Deployments: failover across an alias's targets, cooldown, caps, weights
//! and least-sessions balancing, and the records of what was tried.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use common::log_capture::capture;
use common::*;
use http::StatusCode;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tower_realtime::deployment::{Balancing, Deployment, LocalHealth};
use tower_realtime::provider::{OpenAi, Target, TargetError, TargetRequest};
use tower_realtime::testing::{Handshake, MockUpstream, UpstreamSession};
use tower_realtime::usage::{Observation, SessionSummary};
use tower_realtime::{Identity, Providers, RealtimeLayer, Secret};

fn provider(base_url: &str) -> OpenAi {
    OpenAi::new(Secret::new(PROVIDER_KEY))
        .base_url(base_url)
        .unwrap()
}

async fn refusing(handshake: Handshake) -> MockUpstream {
    MockUpstream::builder()
        .handshake(handshake)
        .start()
        .await
        .unwrap()
}

/// `voice` = `primary/gpt-a` (tier 0) then `backup/gpt-b` (tier 1).
fn two_tiers(primary: &str, backup: &MockUpstream) -> Providers {
    Providers::new()
        .with("primary", provider(primary))
        .with("backup", provider(&backup.base_url()))
        .deployments(
            "voice",
            [
                Deployment::new("primary/gpt-a"),
                Deployment::new("backup/gpt-b").tier(1),
            ],
        )
}

/// The base URL of a loopback port nobody listens on.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/v1")
}

/// A TLS endpoint whose certificate no one trusts (self-signed, for
/// `localhost`): its base URL, and how many TLS handshakes it was offered.
async fn untrusted_tls() -> (String, Arc<AtomicUsize>) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let offered = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&offered);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // The client refuses the certificate.
                let _ = acceptor.accept(stream).await;
            });
        }
    });
    (format!("https://localhost:{port}/v1"), offered)
}

/// An observer that forwards every session summary.
fn summaries() -> (
    impl Fn(Observation<'_>) + Send + Sync + 'static,
    mpsc::UnboundedReceiver<SessionSummary>,
) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let observer = move |observation: Observation<'_>| {
        if let Observation::SessionEnd(summary) = observation {
            let _ = sender.send(summary.clone());
        }
    };
    (observer, receiver)
}

async fn next_summary(receiver: &mut mpsc::UnboundedReceiver<SessionSummary>) -> SessionSummary {
    tokio::time::timeout(PROMPTLY, receiver.recv())
        .await
        .expect("the session ends in time")
        .expect("the observer is alive")
}

/// Opens a session on `voice` and closes it; returns its summary.
async fn one_session(
    gateway: &Gateway,
    summaries: &mut mpsc::UnboundedReceiver<SessionSummary>,
) -> SessionSummary {
    let mut client = open(gateway, "voice").await;
    client.close(None).await.unwrap();
    next_summary(summaries).await
}

/// The session tried `primary/gpt-a`, which failed with `code`, then was
/// served by `backup/gpt-b`.
fn assert_failed_over(summary: &SessionSummary, code: &str) {
    let tried: Vec<(&str, Option<&str>)> = summary
        .attempts
        .iter()
        .map(|attempt| (attempt.deployment.as_str(), attempt.error.as_deref()))
        .collect();
    assert_eq!(
        tried,
        [("primary/gpt-a", Some(code)), ("backup/gpt-b", None)]
    );
}

#[tokio::test]
async fn each_failure_of_a_deployment_fails_over_to_the_next() {
    let stalled = || Handshake::Stall;
    let cases: Vec<(&str, Option<Handshake>)> = vec![
        ("upstream_connect_failed", None),
        ("upstream_timeout", Some(stalled())),
        (
            "upstream_auth_failed",
            Some(Handshake::reject(401, "bad key")),
        ),
        (
            "upstream_auth_failed",
            Some(Handshake::reject(403, "forbidden")),
        ),
        ("upstream_rejected", Some(Handshake::reject(408, "slow"))),
        (
            "upstream_rate_limited",
            Some(Handshake::reject(429, "slow down").header("retry-after", "30")),
        ),
        ("upstream_unavailable", Some(Handshake::reject(500, "oops"))),
        ("upstream_unavailable", Some(Handshake::reject(503, "busy"))),
        ("upstream_bad_handshake", Some(Handshake::Hangup)),
    ];
    for (code, handshake) in cases {
        let backup = MockUpstream::echo().await.unwrap();
        let failing = match handshake {
            Some(handshake) => Some(refusing(handshake).await),
            None => None,
        };
        let primary = match &failing {
            Some(upstream) => upstream.base_url(),
            None => closed_port().await,
        };
        let (observer, mut summaries) = summaries();
        let layer = RealtimeLayer::new(two_tiers(&primary, &backup))
            .connect_timeout(Duration::from_secs(4))
            .observer(observer);
        let gateway = serve_axum(layer).await;
        let summary = one_session(&gateway, &mut summaries).await;

        assert_eq!(backup.connections(), 1, "{code}");
        assert_eq!(
            backup.requests()[0].query_pairs(),
            [("model".into(), "gpt-b".into())]
        );
        if let Some(failing) = &failing {
            assert_eq!(failing.connections(), 1, "{code}");
        }
        assert_eq!(
            (summary.provider.as_str(), summary.model.as_str()),
            ("backup", "gpt-b")
        );
        assert_eq!(summary.deployment.as_deref(), Some("backup/gpt-b"));
        assert_failed_over(&summary, code);
    }
}

#[tokio::test]
async fn an_unresolvable_host_fails_over() {
    let backup = MockUpstream::echo().await.unwrap();
    let (observer, mut summaries) = summaries();
    // `.invalid` never resolves (RFC 6761).
    let providers = two_tiers("https://deployment-test.invalid/v1", &backup);
    let gateway = serve_axum(RealtimeLayer::new(providers).observer(observer)).await;
    let summary = one_session(&gateway, &mut summaries).await;
    assert_eq!(backup.connections(), 1);
    assert_failed_over(&summary, "upstream_dns_failed");
}

#[tokio::test]
async fn an_untrusted_certificate_fails_over_and_the_summary_records_both_attempts() {
    let (primary, offered) = untrusted_tls().await;
    let backup = MockUpstream::echo().await.unwrap();
    let (observer, mut summaries) = summaries();
    let layer = RealtimeLayer::new(two_tiers(&primary, &backup)).observer(observer);
    let gateway = serve_axum(layer).await;
    let summary = one_session(&gateway, &mut summaries).await;

    assert_eq!(
        offered.load(Ordering::SeqCst),
        1,
        "the TLS endpoint was dialled"
    );
    assert_eq!(backup.connections(), 1);
    assert_eq!(summary.deployment.as_deref(), Some("backup/gpt-b"));
    assert_failed_over(&summary, "upstream_tls_failed");
}

#[tokio::test]
async fn the_session_span_names_the_serving_deployment_and_the_attempts() {
    let logs = capture();
    let failing = refusing(Handshake::reject(503, "busy")).await;
    let backup = MockUpstream::echo().await.unwrap();
    let (observer, mut summaries) = summaries();
    let layer = RealtimeLayer::new(two_tiers(&failing.base_url(), &backup)).observer(observer);
    let gateway = serve_axum(layer).await;
    one_session(&gateway, &mut summaries).await;
    let text = logs.text();
    assert!(
        text.lines().any(|line| line.contains("realtime_session{")
            && line.contains(r#"deployment="backup/gpt-b""#)
            && line.contains("attempts=2")),
        "no span naming the deployment:\n{text}"
    );
    // Each field once: the serving provider, not the one tried first too.
    let span = text
        .lines()
        .find(|line| line.contains(r#"deployment="backup/gpt-b""#))
        .unwrap();
    let span = &span[span.find("realtime_session{").unwrap()..];
    let span = &span[..span.find('}').unwrap()];
    assert_eq!(span.matches("provider=").count(), 1, "{span}");
    assert!(span.contains(r#"provider="backup""#), "{span}");
}

#[tokio::test]
async fn a_session_and_its_usage_are_reported_with_the_serving_deployments_model() {
    let failing = refusing(Handshake::reject(503, "busy")).await;
    let backup = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        session
            .send_json(&serde_json::json!({
                "type": "response.done",
                "response": {"id": "resp_1", "usage": {
                    "total_tokens": 3, "input_tokens": 1, "output_tokens": 2
                }}
            }))
            .await;
        session.echo().await;
    })
    .await
    .unwrap();
    let (sender, mut seen) = mpsc::unbounded_channel();
    let observer = move |observation: Observation<'_>| {
        let seen = match observation {
            Observation::SessionStart(info) => format!(
                "start {}/{} {:?} {}",
                info.provider(),
                info.model(),
                info.deployment(),
                info.attempts().len()
            ),
            Observation::Usage(record) => format!(
                "usage {}/{} {:?}",
                record.provider, record.model, record.usage.total_tokens
            ),
            _ => return,
        };
        let _ = sender.send(seen);
    };
    let layer = RealtimeLayer::new(two_tiers(&failing.base_url(), &backup)).observer(observer);
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "voice").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    assert_eq!(next_event(&mut client).await["type"], "response.done");
    client.close(None).await.unwrap();
    let mut next = async || {
        tokio::time::timeout(PROMPTLY, seen.recv())
            .await
            .expect("observed in time")
            .unwrap()
    };
    assert_eq!(next().await, r#"start backup/gpt-b Some("backup/gpt-b") 2"#);
    assert_eq!(next().await, "usage backup/gpt-b Some(3)");
}

#[tokio::test]
async fn the_requests_own_faults_do_not_fail_over() {
    for status in [400u16, 404, 422] {
        let backup = MockUpstream::echo().await.unwrap();
        let failing = refusing(Handshake::reject(status, "your fault")).await;
        let gateway = serve_axum(RealtimeLayer::new(two_tiers(&failing.base_url(), &backup))).await;
        let (got, _, body) = refused(&gateway.url("?model=voice"), &[]).await;
        assert_eq!(got, status);
        assert!(body["error"]["message"].is_string(), "{body}");
        assert_eq!(failing.connections(), 1);
        assert_eq!(backup.connections(), 0, "{status} is not failed over");
    }
}

/// A provider that refuses a request itself (here a tenant's quota) has
/// decided about the request, not failed: the alias's other deployments do
/// not serve it, and the deployment is not cooled down for other clients.
#[tokio::test]
async fn a_providers_own_refusal_is_not_failed_over_nor_cooled_down() {
    let primary = MockUpstream::echo().await.unwrap();
    let backup = MockUpstream::echo().await.unwrap();
    let base = primary.base_url().replace("http", "ws");
    let quota = move |request: &TargetRequest<'_>| match request.identity().name() {
        "spent" => Err(TargetError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "tenant_quota_exceeded",
            "The tenant's quota is spent.",
        )
        .retry_after(60)),
        _ => Ok(Target::new(
            url::Url::parse(&format!("{base}/realtime?model={}", request.model())).unwrap(),
        )),
    };
    let providers = Providers::new()
        .with("primary", quota)
        .with("backup", provider(&backup.base_url()))
        .deployments(
            "voice",
            [
                Deployment::new("primary/gpt-a"),
                Deployment::new("backup/gpt-b").tier(1),
            ],
        );
    let layer = RealtimeLayer::new(providers).admission(|request: &http::request::Parts| {
        let name = request
            .headers
            .get("x-tenant")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("anyone");
        Ok::<_, tower_realtime::admission::Refusal>(Identity::new(name))
    });
    let gateway = serve_axum(layer).await;

    let (status, headers, body) =
        refused(&gateway.url("?model=voice"), &[("x-tenant", "spent")]).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "60");
    assert_eq!(body["error"]["code"], "tenant_quota_exceeded");
    assert_eq!(backup.connections(), 0, "not failed over");

    // Another tenant's session goes to the same deployment at once.
    let (mut client, _) = connect(&gateway.url("?model=voice"), &[("x-tenant", "ok")])
        .await
        .expect("opens");
    client.close(None).await.unwrap();
    assert_eq!((primary.connections(), backup.connections()), (1, 0));
}

#[tokio::test]
async fn when_every_deployment_fails_the_client_gets_the_last_refusal() {
    let first = refusing(Handshake::reject(500, "down")).await;
    let second = refusing(Handshake::reject(429, "later").header("retry-after", "7")).await;
    let providers = Providers::new()
        .with("one", provider(&first.base_url()))
        .with("two", provider(&second.base_url()))
        .deployments(
            "voice",
            [Deployment::new("one/m"), Deployment::new("two/m").tier(1)],
        );
    let gateway = serve_axum(RealtimeLayer::new(providers)).await;
    let (status, headers, body) = refused(&gateway.url("?model=voice"), &[]).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(body["error"]["code"], "upstream_rate_limited");
    assert_eq!((first.connections(), second.connections()), (1, 1));

    // Both cool down now; the next session still probes the one ready first
    // (the 500's second of backoff, before the 429's 7 s), not refuses.
    let (status, _, _) = refused(&gateway.url("?model=voice"), &[]).await;
    assert_eq!(status, 502);
    assert_eq!((first.connections(), second.connections()), (2, 1));
}

#[tokio::test]
async fn deployments_that_never_answer_share_the_connect_timeout() {
    let first = refusing(Handshake::Stall).await;
    let second = refusing(Handshake::Stall).await;
    let providers = Providers::new()
        .with("one", provider(&first.base_url()))
        .with("two", provider(&second.base_url()))
        .deployments(
            "voice",
            [Deployment::new("one/m"), Deployment::new("two/m").tier(1)],
        );
    let layer = RealtimeLayer::new(providers).connect_timeout(Duration::from_secs(1));
    let gateway = serve_axum(layer).await;
    let (status, _, body) = refused(&gateway.url("?model=voice"), &[]).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"]["code"], "upstream_timeout");
    // The first did not take the whole timeout: the second was tried too.
    assert_eq!((first.connections(), second.connections()), (1, 1));
}

#[tokio::test]
async fn a_failed_deployment_cools_down_then_is_probed_again() {
    let failing = refusing(Handshake::reject(503, "busy")).await;
    let backup = MockUpstream::echo().await.unwrap();
    let providers = two_tiers(&failing.base_url(), &backup)
        // At least 1 s, at most 2 s for the first failure.
        .deployment_health(
            LocalHealth::new().backoff(Duration::from_secs(2), Duration::from_secs(4)),
        );
    let (observer, mut summaries) = summaries();
    let gateway = serve_axum(RealtimeLayer::new(providers).observer(observer)).await;

    one_session(&gateway, &mut summaries).await;
    assert_eq!((failing.connections(), backup.connections()), (1, 1));
    let skipped = one_session(&gateway, &mut summaries).await;
    assert_eq!((failing.connections(), backup.connections()), (1, 2));
    assert_eq!(skipped.attempts.len(), 1, "{:?}", skipped.attempts);

    tokio::time::sleep(Duration::from_secs(3)).await;
    one_session(&gateway, &mut summaries).await;
    assert_eq!(
        (failing.connections(), backup.connections()),
        (2, 3),
        "probed again after its cooldown"
    );
}

#[tokio::test]
async fn retry_after_keeps_a_deployment_cooling_beyond_its_backoff() {
    let in_an_hour = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    for retry_after in ["3600", in_an_hour.as_str()] {
        let limited =
            refusing(Handshake::reject(429, "later").header("retry-after", retry_after)).await;
        let backup = MockUpstream::echo().await.unwrap();
        let providers = two_tiers(&limited.base_url(), &backup).deployment_health(
            LocalHealth::new().backoff(Duration::from_millis(10), Duration::from_millis(20)),
        );
        let (observer, mut summaries) = summaries();
        let gateway = serve_axum(RealtimeLayer::new(providers).observer(observer)).await;
        one_session(&gateway, &mut summaries).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        one_session(&gateway, &mut summaries).await;
        assert_eq!(
            (limited.connections(), backup.connections()),
            (1, 2),
            "{retry_after}"
        );
    }
}

#[tokio::test]
async fn a_deployment_at_its_cap_is_skipped_and_all_full_is_a_503() {
    let capped = MockUpstream::echo().await.unwrap();
    let backup = MockUpstream::echo().await.unwrap();
    let providers = Providers::new()
        .with("capped", provider(&capped.base_url()))
        .with("backup", provider(&backup.base_url()))
        .deployments(
            "voice",
            [
                Deployment::new("capped/m").max_sessions(1),
                Deployment::new("backup/m").tier(1).max_sessions(1),
            ],
        );
    let gateway = serve_axum(RealtimeLayer::new(providers)).await;
    let mut first = open(&gateway, "voice").await;
    let mut second = open(&gateway, "voice").await;
    assert_eq!((capped.connections(), backup.connections()), (1, 1));

    let (status, headers, body) = refused(&gateway.url("?model=voice"), &[]).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "too_many_sessions");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!((capped.connections(), backup.connections()), (1, 1));

    // A session that ends frees its place.
    first.close(None).await.unwrap();
    assert!(
        capped
            .wait_until(PROMPTLY, |upstream| upstream.sessions_ended() == 1)
            .await
    );
    let reopened = async {
        loop {
            match connect(&gateway.url("?model=voice"), &[]).await {
                Ok((client, _)) => break client,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    let mut third = tokio::time::timeout(PROMPTLY, reopened)
        .await
        .expect("the place is freed");
    assert_eq!(capped.connections(), 2);
    third.close(None).await.unwrap();
    second.close(None).await.unwrap();
}

#[tokio::test]
async fn weights_share_sessions_within_a_tier() {
    let heavy = MockUpstream::echo().await.unwrap();
    let light = MockUpstream::echo().await.unwrap();
    let providers = Providers::new()
        .with("heavy", provider(&heavy.base_url()))
        .with("light", provider(&light.base_url()))
        .deployments(
            "voice",
            [
                Deployment::new("heavy/m").weight(3),
                Deployment::new("light/m").weight(1),
            ],
        );
    let gateway = serve_axum(RealtimeLayer::new(providers)).await;
    for _ in 0..80 {
        let mut client = open(&gateway, "voice").await;
        client.close(None).await.unwrap();
    }
    // 60 expected; the bounds are more than four standard deviations away.
    let heavy = heavy.connections();
    assert!((40..=78).contains(&heavy), "{heavy} of 80");
    assert_eq!(heavy + light.connections(), 80);
}

#[tokio::test]
async fn least_sessions_sends_each_session_to_the_least_busy_deployment() {
    let east = MockUpstream::echo().await.unwrap();
    let west = MockUpstream::echo().await.unwrap();
    let spare = MockUpstream::echo().await.unwrap();
    let providers = Providers::new()
        .with("east", provider(&east.base_url()))
        .with("west", provider(&west.base_url()))
        .with("spare", provider(&spare.base_url()))
        .deployments(
            "voice",
            [
                // Weights alone would send nearly every session east.
                Deployment::new("east/m").weight(1000),
                Deployment::new("west/m"),
                Deployment::new("spare/m").tier(1),
            ],
        )
        .deployment_balancing(Balancing::LeastSessions);
    let gateway = serve_axum(RealtimeLayer::new(providers)).await;
    let mut live = Vec::new();
    for opened in 1..=6 {
        live.push(open(&gateway, "voice").await);
        let (east, west) = (east.connections(), west.connections());
        assert!(
            east.abs_diff(west) <= 1,
            "{east} east, {west} west after {opened}"
        );
    }
    assert_eq!((east.connections(), west.connections()), (3, 3));
    assert_eq!(
        spare.connections(),
        0,
        "a later tier only when the first cannot serve"
    );

    for mut client in live {
        client.close(None).await.unwrap();
    }
}

#[tokio::test]
async fn the_alias_variable_lists_deployments_in_tiers() {
    let providers = Providers::from_vars([
        ("OPENAI_API_KEY", "sk-1"),
        ("REALTIME_PROVIDERS", "azure-east,azure-west"),
        ("AZURE_EAST_BASE_URL", "https://east.example/openai/v1"),
        ("AZURE_WEST_BASE_URL", "https://west.example/openai/v1"),
        (
            "REALTIME_MODEL_ALIASES",
            "voice=azure-east/gpt-realtime|azure-west/gpt-realtime|openai/gpt-realtime,one=openai/gpt-realtime-mini",
        ),
    ])
    .unwrap();
    let voice: Vec<&str> = providers.deployments_of("voice").unwrap().collect();
    assert_eq!(
        voice,
        [
            "azure-east/gpt-realtime",
            "azure-west/gpt-realtime",
            "openai/gpt-realtime"
        ]
    );
    let debug = format!("{providers:?}");
    for tier in ["tier: 0", "tier: 1", "tier: 2"] {
        assert!(debug.contains(tier), "{debug}");
    }
    let one: Vec<&str> = providers.deployments_of("one").unwrap().collect();
    assert_eq!(one, ["openai/gpt-realtime-mini"]);
    for bad in [
        "voice=openai/a||openai/b",
        "voice=openai/a|nope/b",
        "voice=openai/a|openai/",
    ] {
        let error =
            Providers::from_vars([("OPENAI_API_KEY", "sk-1"), ("REALTIME_MODEL_ALIASES", bad)])
                .unwrap_err();
        assert!(
            error.to_string().contains("REALTIME_MODEL_ALIASES"),
            "{error}"
        );
    }
}
