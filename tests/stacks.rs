//! The layer composes with any inner body type: tower-http's `TraceLayer` and
//! `CompressionLayer`, `BoxBody` and `UnsyncBoxBody` inside it, under
//! `axum::serve`, serve sessions, refusals and fall-through requests alike.

mod common;

use std::convert::Infallible;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use common::stack::serve_service;
use common::*;
use http::{HeaderMap, Request, Response};
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::Message;
use tower::{Service, ServiceBuilder};
use tower_http::ServiceBuilderExt;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;
use tower_realtime::RealtimeLayer;
use tower_realtime::testing::MockUpstream;

/// A body large enough for `CompressionLayer` to compress.
const BIG: &str = "realtime relay fall-through body, repeated to be worth compressing. ";

fn router() -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/big", get(|| async { BIG.repeat(20) }))
}

/// The same routes as a `service_fn` whose body (`Full`) is `Sync`, as
/// `BoxBody` needs (axum's body is not).
fn sync_service() -> impl Service<
    Request<axum::body::Body>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|request: Request<axum::body::Body>| async move {
        let (status, body) = match request.uri().path() {
            "/healthz" => (200, "ok".to_owned()),
            "/big" => (200, BIG.repeat(20)),
            _ => (404, String::new()),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        Ok(response)
    })
}

/// A plain `GET path` with `headers`: status, headers and the whole body.
async fn get_request(
    gateway: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Bytes) {
    let stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::get(path).header("host", "gateway.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(
        PROMPTLY,
        sender.send_request(request.body(Empty::<Bytes>::new()).unwrap()),
    )
    .await
    .expect("a response in time")
    .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status.as_u16(), parts.headers, body)
}

/// A session through the stack relays both ways, a refusal keeps its JSON
/// body, and other requests fall through to the router.
async fn serves_sessions_refusals_and_fallthrough(gateway: &Gateway, upstream: &MockUpstream) {
    let mut client = open(gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    assert_eq!(
        next_data(&mut client).await,
        Message::text(r#"{"type":"response.create"}"#)
    );
    client.close(None).await.unwrap();
    assert_eq!(upstream.requests().len(), 1, "one session dialled");

    let (status, _, body) = refused(&gateway.url(""), &[]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "missing_model");

    let (status, _, body) = get_request(gateway, "/healthz", &[]).await;
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
}

#[tokio::test]
async fn trace_layer_inside_the_layer() {
    let upstream = MockUpstream::echo().await.unwrap();
    let service = ServiceBuilder::new()
        .layer(RealtimeLayer::new(openai(&upstream)).allow_unauthenticated())
        .layer(TraceLayer::new_for_http())
        .service(router());
    let gateway = serve_service(service).await;
    serves_sessions_refusals_and_fallthrough(&gateway, &upstream).await;
}

#[tokio::test]
async fn compression_layer_inside_the_layer() {
    let upstream = MockUpstream::echo().await.unwrap();
    let service = ServiceBuilder::new()
        .layer(RealtimeLayer::new(openai(&upstream)).allow_unauthenticated())
        .layer(CompressionLayer::new())
        .service(router());
    let gateway = serve_service(service).await;
    serves_sessions_refusals_and_fallthrough(&gateway, &upstream).await;

    // The inner body is the compressed one, passed on untouched.
    let (status, headers, body) =
        get_request(&gateway, "/big", &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-encoding"], "gzip");
    assert!(
        body.len() < BIG.len() * 20,
        "compressed: {} bytes",
        body.len()
    );
}

#[tokio::test]
async fn box_body_inside_the_layer() {
    let upstream = MockUpstream::echo().await.unwrap();
    let service = ServiceBuilder::new()
        .layer(RealtimeLayer::new(openai(&upstream)).allow_unauthenticated())
        .map_response_body(BoxBody::new)
        .service(sync_service());
    let gateway = serve_service(service).await;
    serves_sessions_refusals_and_fallthrough(&gateway, &upstream).await;
}

#[tokio::test]
async fn unsync_box_body_inside_the_layer() {
    let upstream = MockUpstream::echo().await.unwrap();
    let service = ServiceBuilder::new()
        .layer(RealtimeLayer::new(openai(&upstream)).allow_unauthenticated())
        .map_response_body(UnsyncBoxBody::new)
        .service(sync_service());
    let gateway = serve_service(service).await;
    serves_sessions_refusals_and_fallthrough(&gateway, &upstream).await;
}

/// All of them at once, with `TraceLayer` outside the layer too.
#[tokio::test]
async fn layer_between_tower_http_layers() {
    let upstream = MockUpstream::echo().await.unwrap();
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(CompressionLayer::new())
        .layer(RealtimeLayer::new(openai(&upstream)).allow_unauthenticated())
        .layer(TraceLayer::new_for_http())
        .layer(CompressionLayer::new())
        .map_response_body(BoxBody::new)
        .service(sync_service());
    let gateway = serve_service(service).await;
    serves_sessions_refusals_and_fallthrough(&gateway, &upstream).await;
}

/// axum's own `Router::layer` takes the layer as it is.
#[tokio::test]
async fn router_layer() {
    let upstream = MockUpstream::echo().await.unwrap();
    let service = router()
        .layer(TraceLayer::new_for_http())
        .layer(RealtimeLayer::new(openai(&upstream)).allow_unauthenticated());
    let gateway = serve_service(service).await;
    serves_sessions_refusals_and_fallthrough(&gateway, &upstream).await;
}

/// A service with a body that is neither `Default` nor `From<Bytes>`.
#[tokio::test]
async fn any_body_type_under_oneshot() {
    let upstream = MockUpstream::echo().await.unwrap();
    let inner = tower::service_fn(|_request: Request<Empty<Bytes>>| async {
        let body =
            http_body_util::Full::new(Bytes::from_static(b"inner")).map_err(|never| match never {});
        Ok::<_, Infallible>(Response::new(BoxBody::<Bytes, Infallible>::new(body)))
    });
    let mut service = ServiceBuilder::new()
        .layer(RealtimeLayer::new(openai(&upstream)).allow_unauthenticated())
        .service(inner);
    let response = service
        .call(Request::get("/elsewhere").body(Empty::new()).unwrap())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "inner");
}
