//! Every refusal before the upgrade: a clear status, a JSON body, nothing dialled.

mod common;

use std::time::Duration;

use common::*;
use tower_realtime::provider::OpenAi;
use tower_realtime::testing::{Handshake, MockUpstream};
use tower_realtime::{Providers, RealtimeLayer, Secret};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade(request_line: &str, extra: &str) -> String {
    format!(
        "{request_line}\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn json_body(head: &str) -> serde_json::Value {
    let body = head.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body in {head:?}"))
}

#[tokio::test]
async fn malformed_handshakes_are_refused_without_dialling() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let path = "/v1/realtime?model=openai/gpt-realtime";
    let cases = [
        // (request, status, code)
        (
            upgrade(&format!("POST {path} HTTP/1.1"), "Content-Length: 0\r\n"),
            405,
            "method_not_allowed",
        ),
        (
            upgrade(&format!("GET {path} HTTP/1.0"), ""),
            426,
            "upgrade_required",
        ),
        (
            upgrade(&format!("GET {path} HTTP/1.1"), "")
                .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            426,
            "unsupported_websocket_version",
        ),
        (
            upgrade(&format!("GET {path} HTTP/1.1"), "")
                .replace("Sec-WebSocket-Version: 13\r\n", ""),
            426,
            "unsupported_websocket_version",
        ),
        (
            upgrade(&format!("GET {path} HTTP/1.1"), "").replace(KEY, "c2hvcnQ="),
            400,
            "invalid_handshake",
        ),
        (
            upgrade(&format!("GET {path} HTTP/1.1"), "")
                .replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
            400,
            "invalid_handshake",
        ),
        (
            upgrade(&format!("GET {path} HTTP/1.1"), "")
                .replace("Connection: Upgrade", "Connection: keep-alive"),
            400,
            "invalid_handshake",
        ),
        (
            upgrade("GET /v1/realtime HTTP/1.1", ""),
            400,
            "missing_model",
        ),
        (
            upgrade("GET /v1/realtime?model= HTTP/1.1", ""),
            400,
            "missing_model",
        ),
        (
            upgrade("GET /v1/realtime?model=openai/ HTTP/1.1", ""),
            400,
            "missing_model",
        ),
        (
            upgrade("GET /v1/realtime?model=gpt-realtime HTTP/1.1", ""),
            400,
            "unknown_provider",
        ),
        (
            upgrade("GET /v1/realtime?model=azure/gpt HTTP/1.1", ""),
            400,
            "unknown_provider",
        ),
        (
            upgrade(
                "GET /v1/realtime?model=openai/a&model=openai/b HTTP/1.1",
                "",
            ),
            400,
            "duplicate_parameter",
        ),
        (
            upgrade("GET /v1/realtime?model=openai/a%0D%0AX:1 HTTP/1.1", ""),
            400,
            "invalid_model",
        ),
        (
            upgrade("GET /v1/realtime?model=openai/a%00 HTTP/1.1", ""),
            400,
            "invalid_model",
        ),
        (
            upgrade(
                &format!(
                    "GET /v1/realtime?model=openai/{} HTTP/1.1",
                    "m".repeat(10_000)
                ),
                "",
            ),
            400,
            "invalid_model",
        ),
        (
            upgrade(
                "GET /v1/realtime?model=openai/gpt&intent=speech HTTP/1.1",
                "",
            ),
            400,
            "unsupported_intent",
        ),
    ];
    for (request, status, code) in cases {
        let head = raw_http(gateway.addr, &request).await;
        assert_eq!(status_of(&head), status, "{request:?} -> {head}");
        let body = json_body(&head);
        assert_eq!(body["error"]["code"], code, "{request:?} -> {head}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(body["error"]["type"].is_string());
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
    }
    assert_eq!(
        upstream.connections(),
        0,
        "nothing may be dialled for an invalid request"
    );
}

/// The body's bytes, not only its parsed value: the fields come in the same
/// order whatever `serde_json` features the binary unifies.
#[tokio::test]
async fn a_refusal_body_has_a_fixed_field_order() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let head = raw_http(gateway.addr, &upgrade("GET /v1/realtime HTTP/1.1", "")).await;
    let body = head.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(
        body,
        r#"{"error":{"message":"the `model` query parameter is required, e.g. ?model=openai/gpt-realtime","type":"invalid_request_error","code":"missing_model","param":"model"}}"#
    );
}

#[tokio::test]
async fn version_refusal_names_the_supported_version_and_unknown_provider_lists_nothing() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let head = raw_http(
        gateway.addr,
        &upgrade("GET /v1/realtime?model=openai/m HTTP/1.1", "")
            .replace("Version: 13", "Version: 7"),
    )
    .await;
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );

    let (status, _, body) = refused(&gateway.url("?model=nope/m"), &[]).await;
    assert_eq!(status, 400);
    // Who asks is not known here: the configured providers are not listed.
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(message, "provider `nope` is not configured");
    assert_eq!(body["error"]["param"], "model");
}

/// Models outside a provider's allow-list (in code or `PREFIX_MODELS`) are
/// refused before anything is dialled; listed ones open.
#[tokio::test]
async fn models_outside_the_allow_list_are_refused_without_dialling() {
    for prefix in ["lab", "openai"] {
        let upstream = MockUpstream::echo().await.unwrap();
        let providers = if prefix == "lab" {
            Providers::from_vars([
                ("REALTIME_PROVIDERS", "lab"),
                ("LAB_BASE_URL", upstream.base_url().as_str()),
                ("LAB_API_KEY", PROVIDER_KEY),
                ("LAB_MODELS", "gpt-realtime, gpt-realtime-mini"),
                ("REALTIME_MODEL_ALIASES", "voice=lab/other-model"),
            ])
            .unwrap()
        } else {
            openai(&upstream).allow_models("openai", ["gpt-realtime"])
        };
        let gateway = serve_axum(RealtimeLayer::new(providers)).await;
        let mut refused_models = vec![
            format!("{prefix}/gpt-4o-realtime-preview"),
            format!("{prefix}/GPT-REALTIME"),
            format!("{prefix}/{}", "x".repeat(200)),
        ];
        if prefix == "lab" {
            refused_models.push("voice".to_owned());
        }
        for model in refused_models {
            let (status, _, body) = refused(&gateway.url(&format!("?model={model}")), &[]).await;
            assert_eq!(status, 400, "{model}");
            assert_eq!(body["error"]["code"], "model_not_allowed", "{model}");
            assert_eq!(body["error"]["type"], "invalid_request_error");
            assert_eq!(body["error"]["param"], "model");
            assert!(!body.to_string().contains("gpt-realtime-mini"), "{body}");
        }
        assert_eq!(upstream.connections(), 0, "nothing is dialled for {prefix}");
        let mut client = open(&gateway, &format!("{prefix}/gpt-realtime")).await;
        assert_eq!(next_event(&mut client).await["type"], "session.created");
        assert_eq!(upstream.connections(), 1);
    }
}

async fn refusal_for(handshake: Handshake) -> (u16, http::HeaderMap, serde_json::Value) {
    let upstream = MockUpstream::builder()
        .handshake(handshake)
        .start()
        .await
        .unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let refusal = refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
    assert_eq!(upstream.connections(), 1);
    refusal
}

#[tokio::test]
async fn upstream_refusals_map_to_clear_statuses() {
    let openai_401 = r#"{"error":{"message":"Incorrect API key provided: sk-provider-SECRET-0123456789.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
    let (status, _, body) = refusal_for(Handshake::reject(401, openai_401)).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "upstream_auth_failed");
    // A fixed message: what the upstream says about the key is logged only.
    assert_eq!(
        body["error"]["message"],
        "the upstream provider rejected the gateway's credentials (401 Unauthorized)"
    );
    assert!(!body.to_string().contains(PROVIDER_KEY));

    let (status, _, body) = refusal_for(Handshake::reject(403, "forbidden")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_auth_failed"))
    );

    let (status, _, body) = refusal_for(Handshake::reject(
        404,
        r#"{"error":{"message":"The model `gpt-nope` does not exist"}}"#,
    ))
    .await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The model `gpt-nope` does not exist")
    );

    let (status, headers, body) =
        refusal_for(Handshake::reject(429, "slow down").header("retry-after", "12")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "12");
    assert_eq!(body["error"]["type"], "rate_limit_error");

    for upstream_status in [500, 502, 503] {
        let (status, _, body) = refusal_for(Handshake::reject(upstream_status, "boom")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (502, Some("upstream_unavailable"))
        );
    }

    let (status, _, body) = refusal_for(Handshake::Hangup).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_bad_handshake"))
    );
}

#[tokio::test]
async fn upstream_that_never_answers_is_a_504() {
    let upstream = MockUpstream::builder()
        .handshake(Handshake::Stall)
        .start()
        .await
        .unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).connect_timeout(Duration::from_secs(2));
    let gateway = serve_axum(layer).await;
    let (status, _, body) = refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"]["code"], "upstream_timeout");
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
async fn unreachable_upstreams_are_502() {
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cases = [
        (
            format!("http://127.0.0.1:{port}/v1"),
            "upstream_connect_failed",
        ),
        (
            "http://upstream.invalid/v1".to_owned(),
            "upstream_dns_failed",
        ),
    ];
    for (base, code) in cases {
        let layer = RealtimeLayer::new(provider_at(&base)).connect_timeout(Duration::from_secs(5));
        let gateway = serve_axum(layer).await;
        let (status, _, body) = refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (502, Some(code)),
            "{base}: {body}"
        );
    }
}

#[tokio::test]
async fn tls_failure_is_502() {
    // A plain WebSocket server behind a wss URL: the TLS handshake fails.
    let upstream = MockUpstream::echo().await.unwrap();
    let base = format!("https://localhost:{}/v1", upstream.addr().port());
    let gateway = serve_axum(RealtimeLayer::new(provider_at(&base))).await;
    let (status, _, body) = refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_tls_failed")),
        "{body}"
    );
}
