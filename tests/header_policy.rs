//! What reaches the upstream: provider credentials and an allow-list, never the
//! client's credentials; and which subprotocol the client gets back.

mod common;

use common::*;
use http::{HeaderName, HeaderValue};
use tower::ServiceBuilder;
use tower_realtime::provider::{Provider, TargetFuture, TargetRequest};
use tower_realtime::testing::MockUpstream;
use tower_realtime::{Providers, RealtimeLayer};

const CLIENT_SECRET: &str = "sk-client-SECRET-abcdef";

#[tokio::test]
async fn upstream_gets_provider_credentials_and_the_allow_list_only() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let offered = format!(
        "openai-insecure-api-key.{CLIENT_SECRET}, openai-beta.realtime-v1, openai-organization.org-1, openai-project.proj-1, realtime"
    );
    let bearer = format!("Bearer {CLIENT_SECRET}");
    let (mut client, response) = connect(
        &gateway.url("?model=openai/gpt-realtime&extra=1"),
        &[
            ("authorization", bearer.as_str()),
            ("api-key", CLIENT_SECRET),
            ("x-api-key", CLIENT_SECRET),
            ("cookie", "session=abc"),
            ("openai-organization", "org-1"),
            ("openai-project", "proj-1"),
            ("openai-beta", "realtime=v1"),
            ("origin", "https://app.example.com"),
            (
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits",
            ),
            ("sec-websocket-protocol", offered.as_str()),
            ("user-agent", "test-client/1.0"),
            ("openai-safety-identifier", "user-42"),
            ("x-custom", "not forwarded"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(next_event(&mut client).await["type"], "session.created");

    // The 101 echoes exactly one offered, non-credential subprotocol.
    assert_eq!(response.headers()["sec-websocket-protocol"], "realtime");
    assert!(response.headers().get("sec-websocket-extensions").is_none());
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(request_id.starts_with("req_"), "{request_id}");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    let received = &requests[0];
    assert_eq!(received.path, "/v1/realtime");
    assert_eq!(received.query.as_deref(), Some("model=gpt-realtime"));
    assert_eq!(
        received.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(received.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(received.header("user-agent"), Some("test-client/1.0"));
    assert_eq!(received.header("x-request-id"), Some(request_id.as_str()));
    for absent in [
        // The client's word; the application sets it from its identity.
        "openai-safety-identifier",
        "api-key",
        "x-api-key",
        "cookie",
        "openai-organization",
        "openai-project",
        "openai-beta",
        "origin",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "x-custom",
        // Clients must not choose whom the key owner's abuse reports name.
        "openai-safety-identifier",
    ] {
        assert!(
            received.headers.get(absent).is_none(),
            "{absent} reached the upstream"
        );
    }
    let everything = format!("{:?}", received.headers);
    assert!(
        !everything.contains(CLIENT_SECRET),
        "client secret reached the upstream: {everything}"
    );
    assert!(!everything.contains("org-1") && !everything.contains("proj-1"));
}

#[tokio::test]
async fn client_request_id_is_kept_and_forwarded() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let (_client, response) = connect(
        &gateway.url("?model=openai/m"),
        &[("x-request-id", "trace-77")],
    )
    .await
    .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-77");
    assert_eq!(
        upstream.requests()[0].header("x-request-id"),
        Some("trace-77")
    );
}

#[tokio::test]
async fn credential_only_subprotocols_are_never_echoed() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    // Offering only reserved tokens: the 101 selects none (and a client
    // library then refuses the connection, which is the right outcome).
    let head = raw_http(
        gateway.addr,
        &format!(
            "GET /v1/realtime?model=openai/m HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Protocol: openai-insecure-api-key.{CLIENT_SECRET}, openai-beta.realtime-v1\r\n\r\n"
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{head}"
    );
    assert!(!head.contains(CLIENT_SECRET));
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.requests().len() == 1)
            .await
    );
    assert!(
        upstream.requests()[0]
            .headers
            .get("sec-websocket-protocol")
            .is_none()
    );
}

#[test]
#[should_panic(expected = "never forwarded")]
fn credential_headers_cannot_be_allow_listed() {
    let _ = RealtimeLayer::new(tower_realtime::Providers::new())
        .forward_header(http::header::AUTHORIZATION);
}

#[tokio::test]
async fn extra_headers_can_be_allow_listed() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream))
        .forward_header(http::HeaderName::from_static("x-tenant"));
    let gateway = serve_axum(layer).await;
    let _client = connect(&gateway.url("?model=openai/m"), &[("x-tenant", "acme")])
        .await
        .unwrap();
    assert_eq!(upstream.requests()[0].header("x-tenant"), Some("acme"));
}

/// The application sets `OpenAI-Safety-Identifier` from its own identity of
/// the user (an extension its auth layer set), whatever the client sends.
#[tokio::test]
async fn safety_identifier_comes_from_the_application() {
    #[derive(Clone)]
    struct UserId(&'static str);

    /// The built-in provider, plus the user's safety identifier.
    struct WithUser(std::sync::Arc<dyn Provider>);

    impl Provider for WithUser {
        fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
            Box::pin(async move {
                let target = self.0.target(request).await?;
                Ok(match request.parts().extensions.get::<UserId>() {
                    Some(UserId(user)) => target.header(
                        HeaderName::from_static("openai-safety-identifier"),
                        HeaderValue::from_static(user),
                    ),
                    None => target,
                })
            })
        }
    }

    let upstream = MockUpstream::echo().await.unwrap();
    let openai = openai(&upstream);
    let with_identity = WithUser(openai.get("openai").unwrap().clone());
    let layer = RealtimeLayer::new(Providers::new().with("openai", with_identity))
        // Even allow-listed, the client's value gives way to the application's.
        .forward_header(HeaderName::from_static("openai-safety-identifier"))
        // Authentication happens outside the layer.
        .allow_unauthenticated();
    let service = ServiceBuilder::new()
        // Stands in for the application's authentication layer.
        .map_request(|mut request: axum::extract::Request| {
            request.extensions_mut().insert(UserId("user-42"));
            request
        })
        .layer(layer)
        .service(app());
    let gateway = common::stack::serve_service(service).await;
    let _client = connect(
        &gateway.url("?model=openai/m"),
        &[("openai-safety-identifier", "someone-else")],
    )
    .await
    .unwrap();
    let received = &upstream.requests()[0];
    assert_eq!(
        received
            .headers
            .get_all("openai-safety-identifier")
            .iter()
            .collect::<Vec<_>>(),
        ["user-42"]
    );
}

#[tokio::test]
async fn safety_identifier_is_forwarded_only_when_allow_listed() {
    let upstream = MockUpstream::echo().await.unwrap();
    let header = HeaderName::from_static("openai-safety-identifier");
    for allow_listed in [false, true] {
        let mut layer = RealtimeLayer::new(openai(&upstream));
        if allow_listed {
            layer = layer.forward_header(header.clone());
        }
        let gateway = serve_axum(layer).await;
        let _client = connect(
            &gateway.url("?model=openai/m"),
            &[("openai-safety-identifier", "user-7")],
        )
        .await
        .unwrap();
        let received = upstream.requests().pop().unwrap();
        let expected = allow_listed.then_some("user-7");
        assert_eq!(received.header("openai-safety-identifier"), expected);
    }
}
