//! Everything that is not a realtime upgrade reaches the wrapped service as sent.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_realtime::RealtimeLayer;
use tower_realtime::testing::MockUpstream;

#[derive(Clone, Debug, PartialEq)]
struct Marker(&'static str);

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    marker: Option<Marker>,
}

#[tokio::test]
async fn non_upgrades_reach_the_inner_service_untouched() {
    let upstream = MockUpstream::echo().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let seen = Arc::clone(&seen);
        service_fn(move |request: Request<Full<Bytes>>| {
            let seen = Arc::clone(&seen);
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                seen.lock().unwrap().push(Seen {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                        .collect(),
                    body,
                    marker: parts.extensions.get::<Marker>().cloned(),
                });
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
            }
        })
    };
    let service = ServiceBuilder::new()
        .map_request(|mut request: Request<Full<Bytes>>| {
            request.extensions_mut().insert(Marker("outer"));
            request
        })
        .layer(RealtimeLayer::new(openai(&upstream)).allow_unauthenticated())
        .service(inner);

    let requests = [
        Request::get("/v1/realtime?model=openai/x").header("x-a", "1"),
        Request::post("/v1/realtime").header("content-type", "application/json"),
        Request::get("/v1/realtime/")
            .header("upgrade", "websocket")
            .header("connection", "upgrade"),
        Request::get("/other?model=openai/x")
            .header("upgrade", "websocket")
            .header("connection", "upgrade"),
        Request::get("/v1/realtime")
            .header("upgrade", "h2c")
            .header("connection", "upgrade"),
        Request::get("/v1/realtime").header("connection", "upgrade"),
    ];
    let mut expected = Vec::new();
    for (index, builder) in requests.into_iter().enumerate() {
        let body = Bytes::from(format!("body {index}"));
        let request = builder.body(Full::new(body.clone())).unwrap();
        expected.push(Seen {
            method: request.method().to_string(),
            uri: request.uri().to_string(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect(),
            body,
            marker: Some(Marker("outer")),
        });
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "inner"
        );
    }
    assert_eq!(*seen.lock().unwrap(), expected);
    assert_eq!(upstream.connections(), 0);
}

#[tokio::test]
async fn axum_routes_still_answer_over_a_socket() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let health = raw_http(gateway.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok"),
        "{health}"
    );
    let plain = raw_http(
        gateway.addr,
        "GET /v1/realtime?model=openai/x HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(plain.ends_with("plain GET on the realtime path"), "{plain}");
    let missing = raw_http(gateway.addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    // A session works on the same server.
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn the_realtime_path_is_configurable() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).path("/voice")).await;
    let url = format!("ws://{}/voice?model=openai/gpt-realtime", gateway.addr);
    let (mut client, _) = connect(&url, &[]).await.unwrap();
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    // The default path is now an ordinary route of the app.
    let plain = raw_http(
        gateway.addr,
        "GET /v1/realtime?model=openai/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(plain.ends_with("plain GET on the realtime path"), "{plain}");
}
