//! WebSockets over HTTP/2 (RFC 8441): extended CONNECT from a real hyper
//! HTTP/2 client over cleartext h2c, against `axum::serve` and a hyper-util
//! server, relayed to an HTTP/1.1 upstream.

#![cfg(feature = "http2")]

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use common::http2::*;
use common::*;
use futures_util::SinkExt;
use http::{Method, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::ext::Protocol;
use hyper::upgrade::OnUpgrade;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tower_realtime::provider::OpenAi;
use tower_realtime::testing::{Handshake, MockUpstream, UpstreamSession};
use tower_realtime::{OriginPolicy, Providers, RealtimeLayer, Secret};

const CLIENT_SECRET: &str = "sk-client-SECRET-abcdef";

#[derive(Debug, Clone, Copy)]
enum Server {
    Axum,
    Hyper,
}

async fn serve(server: Server, layer: RealtimeLayer) -> Gateway {
    match server {
        Server::Axum => serve_axum(layer).await,
        Server::Hyper => serve_hyper(layer).await,
    }
}

fn close(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }
}

/// An upstream that echoes, except that `close please` makes it close with
/// 4002 "upstream done".
async fn upstream_that_closes_on_request() -> MockUpstream {
    MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        while let Some(message) = session.recv().await {
            if message == Message::text("close please") {
                session.close(4002, "upstream done").await;
                return;
            }
            if !session.send(message).await {
                return;
            }
        }
    })
    .await
    .unwrap()
}

async fn echoes(socket: &mut H2Socket, text: &str) {
    socket.send(Message::text(text)).await.unwrap();
    assert_eq!(next_data(socket).await, Message::text(text));
}

#[tokio::test]
async fn a_session_relays_over_http2_on_both_servers() {
    for server in [Server::Axum, Server::Hyper] {
        let upstream = MockUpstream::echo().await.unwrap();
        let gateway = serve(server, RealtimeLayer::new(openai(&upstream))).await;
        let connection = H2Connection::connect(gateway.addr).await;
        let (mut socket, response) = connection
            .open_with("?model=openai/gpt-realtime", &[])
            .await;

        // RFC 8441 §5: a 2xx, no Sec-WebSocket-Accept, no HTTP/1.1 upgrade headers.
        assert_eq!(response.status, StatusCode::OK, "{server:?}");
        assert_eq!(response.version, Version::HTTP_2);
        for absent in [
            "sec-websocket-accept",
            "upgrade",
            "connection",
            "content-length",
            "sec-websocket-protocol",
        ] {
            assert!(
                response.headers.get(absent).is_none(),
                "{server:?}: {absent} in {:?}",
                response.headers
            );
        }
        let request_id = response.headers["x-request-id"].to_str().unwrap();
        assert!(request_id.starts_with("req_"), "{request_id}");

        assert_eq!(recv_event(&mut socket).await["type"], "session.created");
        let sent = vec![
            Message::text(r#"{"type":"response.create"}"#),
            Message::binary(vec![0u8, 159, 146, 150, 255]),
            // Larger than every HTTP/2 flow-control window on the way.
            Message::text("a".repeat(3 << 20)),
            Message::binary((0..(3 << 20)).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
            Message::text("é ✓ 😀"),
        ];
        for message in &sent {
            socket.feed(message.clone()).await.unwrap();
        }
        socket.flush().await.unwrap();
        for message in &sent {
            assert_eq!(&next_data(&mut socket).await, message, "{server:?}");
        }
        assert_eq!(upstream.received(), sent);

        // The upstream hop is an ordinary HTTP/1.1 WebSocket handshake.
        let requests = upstream.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].path, "/v1/realtime");
        assert_eq!(requests[0].query.as_deref(), Some("model=gpt-realtime"));
        assert_eq!(
            requests[0].header("authorization"),
            Some(format!("Bearer {PROVIDER_KEY}").as_str())
        );
        assert_eq!(requests[0].header("x-request-id"), Some(request_id));
        assert_eq!(requests[0].header("upgrade"), Some("websocket"));

        // Ordinary requests share the connection with the live session.
        let health = connection
            .send(
                http::Request::get(connection.uri("/healthz"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        assert_eq!(health.into_body().collect().await.unwrap().to_bytes(), "ok");
        echoes(&mut socket, "still here").await;

        socket.close(None).await.unwrap();
        recv_end(&mut socket).await;
        assert!(
            upstream
                .wait_until(PROMPTLY, |u| u.sessions_ended() == 1)
                .await
        );
        assert_eq!(upstream.closes(), vec![None]);
    }
}

#[tokio::test]
async fn close_codes_and_reasons_are_mirrored_both_ways() {
    for server in [Server::Axum, Server::Hyper] {
        let upstream = upstream_that_closes_on_request().await;
        let gateway = serve(server, RealtimeLayer::new(openai(&upstream))).await;
        let connection = H2Connection::connect(gateway.addr).await;

        // The client closes.
        let mut socket = connection.open("openai/gpt-realtime").await;
        recv_event(&mut socket).await;
        socket
            .close(Some(close(4001, "client done")))
            .await
            .unwrap();
        recv_end(&mut socket).await;
        assert!(
            upstream
                .wait_until(PROMPTLY, |u| !u.closes().is_empty())
                .await
        );
        assert_eq!(upstream.closes(), vec![Some(close(4001, "client done"))]);

        // The upstream closes.
        let mut socket = connection.open("openai/gpt-realtime").await;
        recv_event(&mut socket).await;
        socket.send(Message::text("close please")).await.unwrap();
        assert_eq!(
            close_frame(&mut socket).await,
            Some(close(4002, "upstream done")),
            "{server:?}"
        );
        recv_end(&mut socket).await;
        // The client's answer to the close went back upstream.
        assert!(
            upstream
                .wait_until(PROMPTLY, |u| u.closes().len() == 2)
                .await
        );
        assert_eq!(upstream.closes()[1], Some(close(4002, "upstream done")));
    }
}

#[tokio::test]
async fn vanished_peers_end_the_session_with_1011_both_ways() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let connection = H2Connection::connect(gateway.addr).await;

    // The upstream crashes: the client's stream gets 1011.
    let (mut io, _) = connection
        .upgrade_io(connection.websocket_request("?model=openai/m", &[]))
        .await
        .unwrap();
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.requests().len() == 1)
            .await
    );
    upstream.abort_sessions();
    assert_eq!(raw_close_code(&mut io).await, 1011);

    // The client's stream ends without a close frame: the upstream gets 1011.
    let mut socket = connection.open("openai/m").await;
    recv_event(&mut socket).await;
    drop(socket);
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    assert_eq!(
        upstream.closes(),
        vec![Some(close(1011, "client connection lost"))]
    );
}

#[tokio::test]
async fn handshake_and_routing_refusals_match_http1() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let connection = H2Connection::connect(gateway.addr).await;
    let long = format!("?model=openai/{}", "m".repeat(10_000));
    let cases = [
        ("", "missing_model"),
        ("?model=", "missing_model"),
        ("?model=openai/", "missing_model"),
        ("?model=gpt-realtime", "unknown_provider"),
        ("?model=azure/gpt", "unknown_provider"),
        ("?model=openai/a&model=openai/b", "duplicate_parameter"),
        ("?model=openai/a%0D%0AX:1", "invalid_model"),
        ("?model=openai/a%00", "invalid_model"),
        (long.as_str(), "invalid_model"),
        ("?model=openai/gpt&intent=speech", "unsupported_intent"),
    ];
    for (query, code) in cases {
        let h2 = connection.refused(query, &[]).await;
        let (status, headers, body) = refused(&gateway.url(query), &[]).await;
        assert_eq!(h2.status, 400, "{query}");
        assert_eq!(h2.body["error"]["code"], code, "{query}: {}", h2.body);
        assert_eq!(
            (h2.status.as_u16(), &h2.body, &h2.headers["content-type"]),
            (status, &body, &headers["content-type"]),
            "{query}: HTTP/2 and HTTP/1.1 disagree"
        );
    }
    assert_eq!(
        upstream.connections(),
        0,
        "nothing may be dialled for an invalid request"
    );
    // Every refusal was a stream of its own: the connection still opens sessions.
    let mut socket = connection.open("openai/gpt-realtime").await;
    assert_eq!(recv_event(&mut socket).await["type"], "session.created");
}

#[tokio::test]
async fn a_missing_or_wrong_websocket_version_is_a_400_naming_13() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_hyper(RealtimeLayer::new(openai(&upstream))).await;
    let connection = H2Connection::connect(gateway.addr).await;
    let path = "/v1/realtime?model=openai/gpt-realtime";
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[("sec-websocket-version", "8")],
        &[("sec-websocket-version", "13, 8")],
        &[
            ("sec-websocket-version", "13"),
            ("sec-websocket-version", "8"),
        ],
    ];
    // HTTP/1.1 answers 426 (RFC 6455 §4.4); HTTP/2 has no Upgrade to ask
    // for, so the same refusal comes as a 400.
    let http1 = raw_http(
        gateway.addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    )
    .await;
    assert!(http1.starts_with("HTTP/1.1 426"), "{http1}");
    let http1_body: serde_json::Value =
        serde_json::from_str(http1.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    for headers in cases {
        let refusal = connection
            .refused_request(connection.extended_connect(path, "websocket", headers))
            .await;
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST, "{headers:?}");
        assert_eq!(refusal.headers["sec-websocket-version"], "13");
        assert_eq!(refusal.headers["content-type"], "application/json");
        assert_eq!(refusal.body, http1_body, "{headers:?}");
    }
    assert_eq!(upstream.connections(), 0);
}

#[tokio::test]
async fn upstream_failures_match_http1() {
    let openai_401 = r#"{"error":{"message":"Incorrect API key provided: sk-provider-SECRET-0123456789.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
    let cases = [
        (
            Handshake::reject(401, openai_401),
            502,
            "upstream_auth_failed",
        ),
        (
            Handshake::reject(403, "forbidden"),
            502,
            "upstream_auth_failed",
        ),
        (
            Handshake::reject(
                404,
                r#"{"error":{"message":"The model `gpt-nope` does not exist"}}"#,
            ),
            404,
            "upstream_not_found",
        ),
        (
            Handshake::reject(429, "slow down").header("retry-after", "12"),
            429,
            "upstream_rate_limited",
        ),
        (Handshake::reject(500, "boom"), 502, "upstream_unavailable"),
        (Handshake::reject(502, "boom"), 502, "upstream_unavailable"),
        (Handshake::reject(503, "boom"), 502, "upstream_unavailable"),
        (Handshake::Hangup, 502, "upstream_bad_handshake"),
        (Handshake::Stall, 504, "upstream_timeout"),
    ];
    for (handshake, status, code) in cases {
        let upstream = MockUpstream::builder()
            .handshake(handshake)
            .start()
            .await
            .unwrap();
        let layer = RealtimeLayer::new(openai(&upstream)).connect_timeout(Duration::from_secs(2));
        let gateway = serve_axum(layer).await;
        let connection = H2Connection::connect(gateway.addr).await;
        let h2 = connection.refused("?model=openai/gpt-realtime", &[]).await;
        assert_eq!(
            (h2.status.as_u16(), h2.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{}",
            h2.body
        );
        assert!(!h2.body.to_string().contains(PROVIDER_KEY));
        let (http1_status, http1_headers, http1_body) =
            refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
        assert_eq!(
            (h2.status.as_u16(), &h2.body),
            (http1_status, &http1_body),
            "HTTP/2 and HTTP/1.1 disagree"
        );
        assert_eq!(
            h2.headers.get("retry-after"),
            http1_headers.get("retry-after")
        );
        assert_eq!(upstream.connections(), 2);
    }

    // Nothing listens upstream.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let providers = Providers::new().with(
        "openai",
        OpenAi::new(Secret::new(PROVIDER_KEY))
            .base_url(&format!("http://127.0.0.1:{port}/v1"))
            .unwrap(),
    );
    let gateway = serve_hyper(RealtimeLayer::new(providers)).await;
    let connection = H2Connection::connect(gateway.addr).await;
    let h2 = connection.refused("?model=openai/gpt-realtime", &[]).await;
    assert_eq!(
        (h2.status.as_u16(), h2.body["error"]["code"].as_str()),
        (502, Some("upstream_connect_failed"))
    );
    let (status, _, body) = refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
    assert_eq!((h2.status.as_u16(), &h2.body), (status, &body));
}

#[tokio::test]
async fn origin_and_session_limit_refusals_match_http1() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream))
        .origins(OriginPolicy::allow(["https://app.example.com"]))
        .max_sessions(1);
    let shutdown = layer.shutdown_handle();
    let gateway = serve_hyper(layer).await;
    let connection = H2Connection::connect(gateway.addr).await;
    let query = "?model=openai/gpt-realtime";

    let evil = [("origin", "https://evil.example.com")];
    let h2 = connection.refused(query, &evil).await;
    assert_eq!(
        (h2.status.as_u16(), h2.body["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    let (status, _, body) = refused(&gateway.url(query), &evil).await;
    assert_eq!((h2.status.as_u16(), &h2.body), (status, &body));
    assert_eq!(upstream.connections(), 0);

    // One session is the limit; the second stream on the same connection is refused.
    let allowed = [("origin", "https://app.example.com")];
    let (mut first, _) = connection.open_with(query, &allowed).await;
    recv_event(&mut first).await;
    let h2 = connection.refused(query, &allowed).await;
    assert_eq!(
        (h2.status.as_u16(), h2.body["error"]["code"].as_str()),
        (503, Some("too_many_sessions"))
    );
    assert_eq!(h2.headers["retry-after"], "1");
    let (status, headers, body) = refused(&gateway.url(query), &allowed).await;
    assert_eq!((h2.status.as_u16(), &h2.body), (status, &body));
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(upstream.connections(), 1);

    // Once the first ends, its place is free again.
    first.close(None).await.unwrap();
    recv_end(&mut first).await;
    tokio::time::timeout(PROMPTLY, shutdown.drained())
        .await
        .expect("the session ends");
    let (mut second, _) = connection.open_with(query, &allowed).await;
    assert_eq!(recv_event(&mut second).await["type"], "session.created");
}

#[tokio::test]
async fn shutdown_closes_every_stream_with_1001_and_refuses_new_ones() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream));
    let shutdown = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    let connection = H2Connection::connect(gateway.addr).await;
    let mut sockets = [
        connection.open("openai/a").await,
        connection.open("openai/b").await,
    ];
    for socket in &mut sockets {
        recv_event(socket).await;
    }
    assert_eq!(shutdown.active_sessions(), 2);

    shutdown.begin();
    for socket in &mut sockets {
        let event = recv_event(socket).await;
        assert_eq!(event["type"], "error");
        assert_eq!(event["error"]["code"], "gateway_shutting_down");
        assert_eq!(
            close_frame(socket).await,
            Some(close(1001, "gateway shutting down"))
        );
        recv_end(socket).await;
    }
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.closes().len() == 2)
            .await
    );
    assert!(
        upstream
            .closes()
            .iter()
            .all(|frame| frame.as_ref().unwrap().code == CloseCode::Away)
    );
    tokio::time::timeout(PROMPTLY, shutdown.drained())
        .await
        .expect("every session ends");

    let h2 = connection.refused("?model=openai/c", &[]).await;
    assert_eq!(
        (h2.status.as_u16(), h2.body["error"]["code"].as_str()),
        (503, Some("gateway_shutting_down"))
    );
    let (status, _, body) = refused(&gateway.url("?model=openai/c"), &[]).await;
    assert_eq!((h2.status.as_u16(), &h2.body), (status, &body));
    assert_eq!(upstream.connections(), 2);
}

#[tokio::test]
async fn subprotocol_echo_and_header_policy_over_http2() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let connection = H2Connection::connect(gateway.addr).await;
    let offered = format!(
        "openai-insecure-api-key.{CLIENT_SECRET}, openai-beta.realtime-v1, openai-organization.org-1, openai-project.proj-1, realtime"
    );
    let bearer = format!("Bearer {CLIENT_SECRET}");
    let (mut socket, response) = connection
        .open_with(
            "?model=openai/gpt-realtime&extra=1",
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
                ("x-request-id", "trace-h2"),
                ("x-custom", "not forwarded"),
            ],
        )
        .await;
    assert_eq!(recv_event(&mut socket).await["type"], "session.created");
    assert_eq!(response.headers["sec-websocket-protocol"], "realtime");
    assert!(response.headers.get("sec-websocket-extensions").is_none());
    assert_eq!(response.headers["x-request-id"], "trace-h2");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    let received = &requests[0];
    assert_eq!(received.query.as_deref(), Some("model=gpt-realtime"));
    assert_eq!(
        received.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(received.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(received.header("user-agent"), Some("test-client/1.0"));
    assert_eq!(received.header("x-request-id"), Some("trace-h2"));
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

    // Only reserved tokens offered: the 200 selects none.
    let reserved = format!("openai-insecure-api-key.{CLIENT_SECRET}, openai-beta.realtime-v1");
    let (_socket, response) = connection
        .open_with(
            "?model=openai/m",
            &[("sec-websocket-protocol", reserved.as_str())],
        )
        .await;
    assert!(response.headers.get("sec-websocket-protocol").is_none());
    assert!(!format!("{:?}", response.headers).contains(CLIENT_SECRET));
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.requests().len() == 2)
            .await
    );
    assert!(
        upstream.requests()[1]
            .headers
            .get("sec-websocket-protocol")
            .is_none()
    );
}

#[tokio::test]
async fn sessions_multiplexed_on_one_connection_close_on_their_own() {
    for server in [Server::Axum, Server::Hyper] {
        let upstream = upstream_that_closes_on_request().await;
        let layer = RealtimeLayer::new(openai(&upstream));
        let sessions = layer.shutdown_handle();
        let gateway = serve(server, layer).await;
        let connection = H2Connection::connect(gateway.addr).await;

        let mut a = connection.open("openai/model-a").await;
        let mut b = connection.open("openai/model-b").await;
        // Each stream reached its own upstream session.
        assert_eq!(recv_event(&mut a).await["session"]["model"], "model-a");
        assert_eq!(recv_event(&mut b).await["session"]["model"], "model-b");
        a.send(Message::text("a1")).await.unwrap();
        b.send(Message::text("b1")).await.unwrap();
        assert_eq!(next_data(&mut b).await, Message::text("b1"));
        assert_eq!(next_data(&mut a).await, Message::text("a1"));
        assert_eq!(sessions.active_sessions(), 2);

        // The client closes one: the other goes on.
        a.close(Some(close(4001, "a done"))).await.unwrap();
        recv_end(&mut a).await;
        assert!(
            upstream
                .wait_until(PROMPTLY, |u| !u.closes().is_empty())
                .await
        );
        assert_eq!(upstream.closes(), vec![Some(close(4001, "a done"))]);
        echoes(&mut b, "b2").await;

        // The upstream closes another: the other goes on.
        let mut c = connection.open("openai/model-c").await;
        recv_event(&mut c).await;
        c.send(Message::text("close please")).await.unwrap();
        assert_eq!(
            close_frame(&mut c).await,
            Some(close(4002, "upstream done"))
        );
        recv_end(&mut c).await;
        echoes(&mut b, "b3").await;

        // A stream that just ends: its upstream gets 1011, the other goes on.
        let mut d = connection.open("openai/model-d").await;
        recv_event(&mut d).await;
        drop(d);
        assert!(
            upstream
                .wait_until(PROMPTLY, |u| u.closes().len() == 3)
                .await
        );
        assert_eq!(
            upstream.closes()[2],
            Some(close(1011, "client connection lost"))
        );
        echoes(&mut b, "b4").await;
        assert_eq!(sessions.active_sessions(), 1, "{server:?}");

        b.close(None).await.unwrap();
        recv_end(&mut b).await;
        tokio::time::timeout(PROMPTLY, sessions.drained())
            .await
            .expect("every session ends");
        let models: Vec<_> = upstream
            .requests()
            .iter()
            .map(|request| request.query.clone().unwrap())
            .collect();
        assert_eq!(
            models,
            [
                "model=model-a",
                "model=model-b",
                "model=model-c",
                "model=model-d"
            ]
        );
        assert_eq!(
            upstream.received(),
            ["a1", "b1", "b2", "close please", "b3", "b4"]
                .map(Message::text)
                .to_vec()
        );
    }
}

#[tokio::test]
async fn a_cut_connection_ends_its_sessions_and_no_others() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream));
    let sessions = layer.shutdown_handle();
    let gateway = serve_hyper(layer).await;
    let doomed = H2Connection::connect(gateway.addr).await;
    let other = H2Connection::connect(gateway.addr).await;
    let mut a = doomed.open("openai/a").await;
    let mut b = doomed.open("openai/b").await;
    let mut c = other.open("openai/c").await;
    for socket in [&mut a, &mut b, &mut c] {
        recv_event(socket).await;
    }

    doomed.cut();
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.closes().len() == 2)
            .await
    );
    assert_eq!(
        upstream.closes(),
        vec![Some(close(1011, "client connection lost")); 2]
    );
    echoes(&mut c, "still here").await;
    assert_eq!(sessions.active_sessions(), 1);
}

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: Method,
    uri: String,
    version: Version,
    protocol: Option<String>,
    can_upgrade: bool,
    header: Option<String>,
    body: Bytes,
}

#[tokio::test]
async fn other_http2_requests_fall_through_untouched() {
    let upstream = MockUpstream::echo().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let seen = Arc::clone(&seen);
        Router::new().fallback(move |request: Request| {
            let seen = Arc::clone(&seen);
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                seen.lock().unwrap().push(Seen {
                    method: parts.method,
                    uri: parts.uri.to_string(),
                    version: parts.version,
                    protocol: parts
                        .extensions
                        .get::<Protocol>()
                        .map(|p| p.as_str().to_owned()),
                    can_upgrade: parts.extensions.get::<OnUpgrade>().is_some(),
                    header: parts
                        .headers
                        .get("x-a")
                        .map(|v| v.to_str().unwrap().to_owned()),
                    body,
                });
                Ok::<_, Infallible>(
                    http::Response::builder()
                        .status(StatusCode::IM_A_TEAPOT)
                        .body(Body::from("inner"))
                        .unwrap(),
                )
            }
        })
    };
    let gateway = serve_router(RealtimeLayer::new(openai(&upstream)), inner).await;
    let connection = H2Connection::connect(gateway.addr).await;
    let realtime = connection.uri("/v1/realtime?model=openai/x");
    let version = [("sec-websocket-version", "13"), ("x-a", "1")];

    let get = http::Request::get(&realtime)
        .header("x-a", "1")
        .body(Full::default())
        .unwrap();
    let post = http::Request::post(&realtime)
        .header("x-a", "1")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let plain_connect = http::Request::builder()
        .method(Method::CONNECT)
        .uri("example.com:443")
        .header("x-a", "1")
        .body(Full::default())
        .unwrap();
    let requests = [
        get,
        post,
        plain_connect,
        connection.extended_connect("/v1/realtime?model=openai/x", "connect-udp", &version),
        connection.extended_connect("/other?model=openai/x", "websocket", &version),
        connection.extended_connect("/v1/realtime/?model=openai/x", "websocket", &version),
    ];
    let expected = vec![
        Seen {
            method: Method::GET,
            uri: realtime.clone(),
            version: Version::HTTP_2,
            protocol: None,
            can_upgrade: false,
            header: Some("1".into()),
            body: Bytes::new(),
        },
        Seen {
            method: Method::POST,
            uri: realtime.clone(),
            version: Version::HTTP_2,
            protocol: None,
            can_upgrade: false,
            header: Some("1".into()),
            body: Bytes::from_static(b"payload"),
        },
        Seen {
            method: Method::CONNECT,
            uri: "example.com:443".into(),
            version: Version::HTTP_2,
            protocol: None,
            can_upgrade: true,
            header: Some("1".into()),
            body: Bytes::new(),
        },
        Seen {
            method: Method::CONNECT,
            uri: realtime.clone(),
            version: Version::HTTP_2,
            protocol: Some("connect-udp".into()),
            can_upgrade: true,
            header: Some("1".into()),
            body: Bytes::new(),
        },
        Seen {
            method: Method::CONNECT,
            uri: connection.uri("/other?model=openai/x"),
            version: Version::HTTP_2,
            protocol: Some("websocket".into()),
            can_upgrade: true,
            header: Some("1".into()),
            body: Bytes::new(),
        },
        Seen {
            method: Method::CONNECT,
            uri: connection.uri("/v1/realtime/?model=openai/x"),
            version: Version::HTTP_2,
            protocol: Some("websocket".into()),
            can_upgrade: true,
            header: Some("1".into()),
            body: Bytes::new(),
        },
    ];
    for request in requests {
        let response = connection.send(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "inner"
        );
    }
    assert_eq!(*seen.lock().unwrap(), expected);
    assert_eq!(upstream.connections(), 0);
}

#[tokio::test]
async fn a_server_without_the_connect_protocol_refuses_extended_connect() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_hyper_with(RealtimeLayer::new(openai(&upstream)), |_| {}).await;
    let connection = H2Connection::handshake(gateway.addr).await;
    let health = connection
        .send(
            http::Request::get(connection.uri("/healthz"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // The server's SETTINGS came before its response, without the setting.
    assert!(!connection.connect_protocol_enabled());
    // Sent anyway, the stream is reset before the layer sees it.
    let error = connection
        .send(connection.websocket_request("?model=openai/m", &[]))
        .await
        .expect_err("the stream is reset");
    assert!(format!("{error:?}").contains("PROTOCOL_ERROR"), "{error:?}");
    assert_eq!(upstream.connections(), 0);
}

/// A session whose upstream stops reading stops reading its client stream
/// too (backpressure). Over HTTP/2 the unread data of that stream holds up
/// to one stream window of the connection's shared window, so with a
/// connection window wider than the stream window the other sessions on the
/// connection go on. (With hyper's defaults, 1 MiB each, they would stall.)
#[tokio::test]
async fn a_stalled_session_does_not_stall_its_neighbours_given_a_wider_connection_window() {
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        if session.model().as_deref() == Some("stalled") {
            std::future::pending::<()>().await;
        }
        session.echo().await;
    })
    .await
    .unwrap();
    let gateway = serve_hyper_with(RealtimeLayer::new(openai(&upstream)), |builder| {
        builder
            .http2()
            .enable_connect_protocol()
            .initial_stream_window_size(256 * 1024)
            .initial_connection_window_size(8 * 1024 * 1024);
    })
    .await;
    let connection = H2Connection::connect(gateway.addr).await;
    let mut stalled = connection.open("openai/stalled").await;
    let mut neighbour = connection.open("openai/fine").await;
    recv_event(&mut stalled).await;
    recv_event(&mut neighbour).await;

    // Write to the stalled session until nothing moves any more: every
    // buffer on the way (socket buffers, the stream window) is full.
    const LIMIT: usize = 512;
    let (progress_tx, mut progress) = watch::channel(0usize);
    let writer = tokio::spawn(async move {
        for sent in 1..=LIMIT {
            stalled
                .send(Message::binary(vec![7u8; 1 << 20]))
                .await
                .unwrap();
            progress_tx.send_replace(sent);
        }
    });
    let stalled_at = tokio::time::timeout(PROMPTLY * 6, async {
        loop {
            let before = *progress.borrow_and_update();
            match tokio::time::timeout(Duration::from_secs(1), progress.changed()).await {
                Err(_quiet) => return before,
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    panic!("{LIMIT} MiB went through a session whose upstream reads nothing")
                }
            }
        }
    })
    .await
    .expect("the stalled session stops taking data");

    echoes(&mut neighbour, "still moving").await;
    let mut newcomer = connection.open("openai/fine").await;
    recv_event(&mut newcomer).await;
    echoes(&mut newcomer, "me too").await;
    assert_eq!(
        *progress.borrow(),
        stalled_at,
        "the stalled session was still stalled"
    );
    writer.abort();
}

/// The documented graceful shutdown (close sessions with the handle inside
/// axum's shutdown signal) also ends HTTP/2 sessions, which are streams of
/// connections axum waits for.
#[tokio::test]
async fn axum_graceful_shutdown_with_the_handle_ends_http2_sessions() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream));
    let shutdown = layer.shutdown_handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = app().layer(layer.allow_unauthenticated());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                assert!(shutdown.shutdown(PROMPTLY).await, "sessions drained");
            })
            .await
            .unwrap();
    });
    let connection = H2Connection::connect(addr).await;
    let mut sockets = [
        connection.open("openai/a").await,
        connection.open("openai/b").await,
    ];
    for socket in &mut sockets {
        recv_event(socket).await;
    }

    stop.send(()).unwrap();
    for socket in &mut sockets {
        assert_eq!(
            recv_event(socket).await["error"]["code"],
            "gateway_shutting_down"
        );
        assert_eq!(close_frame(socket).await.unwrap().code, CloseCode::Away);
        recv_end(socket).await;
    }
    tokio::time::timeout(PROMPTLY, server)
        .await
        .expect("the server ends")
        .unwrap();
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.closes().len() == 2)
            .await
    );
}
