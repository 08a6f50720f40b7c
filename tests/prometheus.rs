//! The `metrics` feature end to end with a real exporter: a session through
//! the gateway shows up in Prometheus' text format.
#![cfg(feature = "metrics")]

mod common;

use common::*;
use futures_util::StreamExt;
use tower_realtime::deployment::Deployment;
use tower_realtime::provider::OpenAi;
use tower_realtime::testing::{Handshake, MockUpstream};
use tower_realtime::{Providers, RealtimeLayer, Secret};

#[tokio::test]
async fn a_session_shows_up_in_the_prometheus_exposition() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test process");
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    next_data(&mut client).await;
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}
    let (status, _, _) = refused(&gateway.url("?model=nope/x"), &[]).await;
    assert_eq!(status, 400);

    // A session on an alias whose first deployment fails over to the second.
    let failing = MockUpstream::builder()
        .handshake(Handshake::reject(503, "busy"))
        .start()
        .await
        .unwrap();
    let provider = |upstream: &MockUpstream| {
        OpenAi::new(Secret::new(PROVIDER_KEY))
            .base_url(&upstream.base_url())
            .unwrap()
    };
    let providers = Providers::new()
        .with("primary", provider(&failing))
        .with("backup", provider(&upstream))
        .deployments(
            "voice",
            [
                Deployment::new("primary/m"),
                Deployment::new("backup/m").tier(1),
            ],
        );
    let gateway = serve_axum(RealtimeLayer::new(providers)).await;
    let mut client = open(&gateway, "voice").await;
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}

    let mut text = String::new();
    for _ in 0..100 {
        text = handle.render();
        if text.contains("realtime_session_duration_seconds") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for expected in [
        r#"realtime_sessions_total{provider="openai"} 1"#,
        r#"realtime_sessions_active{provider="openai"} 0"#,
        r#"realtime_messages_total{provider="openai",direction="client_to_upstream"} 1"#,
        r#"realtime_messages_total{provider="openai",direction="upstream_to_client"} 2"#,
        r#"realtime_refusals_total{code="unknown_provider"} 1"#,
        "realtime_upstream_connect_seconds",
        "realtime_session_duration_seconds",
        r#"realtime_deployment_attempts_total{deployment="primary/m",outcome="upstream_unavailable"} 1"#,
        r#"realtime_deployment_attempts_total{deployment="backup/m",outcome="opened"} 1"#,
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing from:\n{text}"
        );
    }
    assert!(!text.contains(PROVIDER_KEY));
}
