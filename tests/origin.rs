//! The origin policy end to end: allowed origins open sessions, refused ones
//! get 403 before anything is dialled.

mod common;

use common::stack::{status_of, upgrade_request};
use common::*;
use tower_realtime::testing::MockUpstream;
use tower_realtime::{OriginPolicy, RealtimeLayer};

const TARGET: &str = "/v1/realtime?model=openai/gpt-realtime";

fn with_origin(origin: &str) -> String {
    upgrade_request(TARGET, &format!("Origin: {origin}\r\n"))
}

#[tokio::test]
async fn allowed_exact_and_wildcard_origins_open_sessions() {
    let upstream = MockUpstream::echo().await.unwrap();
    let policy = OriginPolicy::allow(["https://app.example.com", "https://*.example.org"]);
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).origins(policy)).await;
    for origin in [
        "https://app.example.com",
        "HTTPS://APP.EXAMPLE.COM",
        "https://eu.example.org",
        "https://a.b.example.org",
    ] {
        let (mut client, response) = connect(
            &gateway.url("?model=openai/gpt-realtime"),
            &[("origin", origin)],
        )
        .await
        .unwrap_or_else(|error| panic!("{origin}: {error}"));
        assert_eq!(response.status(), 101);
        assert_eq!(next_event(&mut client).await["type"], "session.created");
    }
    assert_eq!(upstream.requests().len(), 4);
    for request in upstream.requests() {
        assert_eq!(request.header("origin"), None, "Origin is not forwarded");
    }
}

#[tokio::test]
async fn refused_origins_get_403_before_dialling() {
    let upstream = MockUpstream::echo().await.unwrap();
    let policy = OriginPolicy::allow(["https://app.example.com", "https://*.example.org"]);
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).origins(policy)).await;
    for request in [
        with_origin("https://evil.example"),
        with_origin("http://app.example.com"),
        with_origin("https://app.example.com:8443"),
        with_origin("https://app.example.com.evil.example"),
        with_origin("https://example.org"),
        with_origin("https://evilexample.org"),
        with_origin("https://x.example.org.evil.example"),
        with_origin("null"),
        with_origin(""),
        // Two Origin headers: neither is trusted.
        upgrade_request(
            TARGET,
            "Origin: https://app.example.com\r\nOrigin: https://evil.example\r\n",
        ),
        // Not valid UTF-8.
        upgrade_request(TARGET, "Origin: https://app.example.com\u{e9}\r\n"),
    ] {
        let head = raw_http(gateway.addr, &request).await;
        assert_eq!(status_of(&head), 403, "{request:?} -> {head}");
        assert!(head.contains(r#""code":"origin_not_allowed""#), "{head}");
    }
    assert_eq!(upstream.connections(), 0, "nothing may be dialled");
}

#[tokio::test]
async fn requests_without_origin_follow_the_configuration() {
    let upstream = MockUpstream::echo().await.unwrap();
    let allowing = OriginPolicy::allow(["https://app.example.com"]);
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).origins(allowing)).await;
    let head = raw_http(gateway.addr, &upgrade_request(TARGET, "")).await;
    assert_eq!(
        status_of(&head),
        101,
        "missing Origin is allowed by default"
    );
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.requests().len() == 1)
            .await
    );

    let strict = OriginPolicy::allow(["https://app.example.com"]).allow_missing(false);
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).origins(strict)).await;
    let head = raw_http(gateway.addr, &upgrade_request(TARGET, "")).await;
    assert_eq!(status_of(&head), 403, "{head}");
    assert!(head.contains("without an Origin header"), "{head}");
    let head = raw_http(gateway.addr, &with_origin("https://app.example.com")).await;
    assert_eq!(status_of(&head), 101, "{head}");

    // Any origin, but non-browser clients refused.
    let browsers_only = OriginPolicy::any().allow_missing(false);
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).origins(browsers_only)).await;
    assert_eq!(
        status_of(&raw_http(gateway.addr, &upgrade_request(TARGET, "")).await),
        403
    );
    assert_eq!(
        status_of(&raw_http(gateway.addr, &with_origin("https://anything.test")).await),
        101
    );
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.requests().len() == 3)
            .await
    );
    assert_eq!(upstream.connections(), 3, "refusals dialled nothing");
}

#[tokio::test]
async fn the_origin_check_does_not_touch_other_routes() {
    let upstream = MockUpstream::echo().await.unwrap();
    let strict = OriginPolicy::allow(["https://app.example.com"]).allow_missing(false);
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).origins(strict)).await;
    let head = raw_http(
        gateway.addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&head), 200, "{head}");
}
