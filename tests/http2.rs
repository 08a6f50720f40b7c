//! WebSockets over HTTP/2 (RFC 8441): extended CONNECT from a real hyper
//! HTTP/2 client over cleartext h2c, against `axum::serve` and a hyper-util
//! server, relayed to an HTTP/1.1 upstream.

mod common;

use common::http2::*;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tower_realtime::RealtimeLayer;
use tower_realtime::testing::MockUpstream;

#[tokio::test]
async fn a_session_relays_over_http2_on_both_servers() {
    for hyper_server in [false, true] {
        let upstream = MockUpstream::echo().await.unwrap();
        let layer = RealtimeLayer::new(openai(&upstream));
        let gateway = if hyper_server {
            serve_hyper(layer).await
        } else {
            serve_axum(layer).await
        };
        let connection = H2Connection::connect(gateway.addr).await;
        let (mut socket, response) = connection
            .open_with("?model=openai/gpt-realtime", &[])
            .await;
        assert_eq!(response.version, http::Version::HTTP_2);
        assert_eq!(recv_event(&mut socket).await["type"], "session.created");
        socket.send(Message::text("hello")).await.unwrap();
        assert_eq!(recv_data(&mut socket).await, Message::text("hello"));
        drop(response);
        let _ = socket.next();
    }
}
