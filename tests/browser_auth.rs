//! Browsers authenticate with a subprotocol token: `SubprotocolTokenLayer`
//! lifts it into `Authorization`, the user's own auth layer checks it, and
//! the token never reaches the upstream nor comes back to the client.

mod common;

use common::stack::{serve_service, status_of, upgrade_request};
use common::*;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceBuilder;
use tower_http::validate_request::ValidateRequestHeaderLayer;
use tower_realtime::testing::{MockUpstream, RecordedRequest};
use tower_realtime::{RealtimeLayer, SubprotocolTokenLayer};

/// The gateway token browsers present.
const TOKEN: &str = "gw-token-BROWSER-4242";

/// `SubprotocolTokenLayer` -> `ValidateRequestHeaderLayer::bearer` -> `RealtimeLayer`.
// tower-http deprecates `bearer` as too basic for real applications; it is
// the simplest auth layer that reads `Authorization`, which is all this shows.
#[allow(deprecated)]
async fn authenticated_gateway(upstream: &MockUpstream) -> Gateway {
    let service = ServiceBuilder::new()
        .layer(SubprotocolTokenLayer::new())
        .layer(ValidateRequestHeaderLayer::bearer(TOKEN))
        // Authentication happens outside the layer.
        .layer(RealtimeLayer::new(openai(upstream)).allow_unauthenticated())
        .service(app());
    serve_service(service).await
}

fn assert_token_absent(request: &RecordedRequest) {
    for (name, value) in &request.headers {
        assert!(
            !String::from_utf8_lossy(value.as_bytes()).contains(TOKEN),
            "the token reached the upstream in `{name}`"
        );
    }
    assert!(!request.query.clone().unwrap_or_default().contains(TOKEN));
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str()),
        "the upstream gets the provider's key, not the client's"
    );
    assert_eq!(request.header("sec-websocket-protocol"), None);
}

#[tokio::test]
async fn a_browser_token_in_the_subprotocol_opens_the_session() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = authenticated_gateway(&upstream).await;
    let offered = format!("realtime, openai-insecure-api-key.{TOKEN}");
    let (mut client, response) = connect(
        &gateway.url("?model=openai/gpt-realtime"),
        &[("sec-websocket-protocol", &offered)],
    )
    .await
    .expect("the token is accepted");
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["sec-websocket-protocol"], "realtime");
    for (name, value) in response.headers() {
        assert!(
            !String::from_utf8_lossy(value.as_bytes()).contains(TOKEN),
            "the token was echoed in `{name}`"
        );
    }

    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, "hello").await;
    assert_eq!(next_data(&mut client).await, Message::text("hello"));

    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    assert_token_absent(&requests[0]);
}

#[tokio::test]
async fn a_token_only_offer_opens_without_echoing_a_subprotocol() {
    // Some browser code offers the token alone: the 101 must not echo it.
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = authenticated_gateway(&upstream).await;
    let head = raw_http(
        gateway.addr,
        &upgrade_request(
            "/v1/realtime?model=openai/gpt-realtime",
            &format!("Sec-WebSocket-Protocol: openai-insecure-api-key.{TOKEN}\r\n"),
        ),
    )
    .await;
    assert_eq!(status_of(&head), 101, "{head}");
    assert!(!head.contains(TOKEN), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("sec-websocket-protocol"),
        "{head}"
    );
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.requests().len() == 1)
            .await
    );
    assert_token_absent(&upstream.requests()[0]);
}

#[tokio::test]
async fn an_authorization_header_works_too_and_stays_here() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = authenticated_gateway(&upstream).await;
    let bearer = format!("Bearer {TOKEN}");
    let (mut client, _) = connect(
        &gateway.url("?model=openai/gpt-realtime"),
        &[("authorization", &bearer)],
    )
    .await
    .expect("the header is accepted");
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    assert_token_absent(&upstream.requests()[0]);
}

#[tokio::test]
async fn wrong_or_missing_tokens_get_401_and_nothing_is_dialled() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = authenticated_gateway(&upstream).await;
    let wrong = "gw-token-WRONG-0000";
    let cases = [
        format!("Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.{wrong}\r\n"),
        format!("Sec-WebSocket-Protocol: openai-insecure-api-key.{TOKEN}x\r\n"),
        "Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.\r\n".to_owned(),
        // The token as a plain subprotocol, without the prefix, is no token.
        format!("Sec-WebSocket-Protocol: realtime, {TOKEN}\r\n"),
        "Sec-WebSocket-Protocol: realtime\r\n".to_owned(),
        String::new(),
        format!("Authorization: Bearer {wrong}\r\n"),
        // A wrong header wins over a right subprotocol: the header is never replaced.
        format!(
            "Authorization: Bearer {wrong}\r\nSec-WebSocket-Protocol: openai-insecure-api-key.{TOKEN}\r\n"
        ),
    ];
    for extra in cases {
        let head = raw_http(
            gateway.addr,
            &upgrade_request("/v1/realtime?model=openai/gpt-realtime", &extra),
        )
        .await;
        assert_eq!(status_of(&head), 401, "{extra:?} -> {head}");
        assert!(!head.contains(wrong) && !head.contains(TOKEN), "{head}");
    }
    assert_eq!(upstream.connections(), 0, "nothing may be dialled");
}
