//! A relayed session end to end: messages both ways, close codes, abrupt ends.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tower_realtime::RealtimeLayer;
use tower_realtime::testing::{MockUpstream, UpstreamSession};

#[tokio::test]
async fn messages_pass_both_ways_unchanged_and_in_order() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;

    let created = next_event(&mut client).await;
    assert_eq!(created["type"], "session.created");

    let big_text = "a".repeat(1 << 20);
    let big_binary: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    let sent = vec![
        Message::text(r#"{"type":"response.create"}"#),
        Message::binary(vec![0u8, 159, 146, 150, 255]),
        Message::text(big_text),
        Message::binary(big_binary),
        Message::text("é ✓ 😀"),
    ];
    for message in &sent {
        client.feed(message.clone()).await.unwrap();
    }
    client.flush().await.unwrap();
    for message in &sent {
        assert_eq!(&next_data(&mut client).await, message);
    }
    assert_eq!(upstream.received(), sent);
}

#[tokio::test]
async fn a_hyper_server_relays_too() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_hyper(RealtimeLayer::new(openai(&upstream))).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, "ping").await;
    assert_eq!(next_data(&mut client).await, Message::text("ping"));

    let health = raw_http(gateway.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok"),
        "{health}"
    );
}

#[tokio::test]
async fn client_close_code_and_reason_reach_the_upstream() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;

    let frame = CloseFrame {
        code: CloseCode::Library(4001),
        reason: "client done".into(),
    };
    client.close(Some(frame.clone())).await.unwrap();
    // The client's close is answered; the stream then ends.
    while let Some(Ok(_)) = client.next().await {}
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    assert_eq!(upstream.closes(), vec![Some(frame)]);
}

#[tokio::test]
async fn upstream_close_code_and_reason_reach_the_client() {
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        if session.recv().await.is_some() {
            session.close(4002, "upstream done").await;
        }
    })
    .await
    .unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    send_text(&mut client, "bye please").await;
    let frame = close_frame(&mut client).await.expect("a close code");
    assert_eq!(frame.code, CloseCode::Library(4002));
    assert_eq!(frame.reason, "upstream done");
    // The client's answer to the close goes back upstream.
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.sessions_ended() == 1)
            .await
    );
}

#[tokio::test]
async fn close_without_code_is_mirrored_without_code() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    assert_eq!(upstream.closes(), vec![None]);
}

#[tokio::test]
async fn vanished_upstream_gives_the_client_an_error_event_and_1011() {
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        // Read one message, then vanish without a close frame.
        session.recv().await;
        drop(session.into_socket());
    })
    .await
    .unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    // A tungstenite client: it sees the code and the reason as they were sent.
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, "hello").await;
    let event = expect_upstream_lost(&mut client).await;
    assert!(
        event["error"]["message"]
            .as_str()
            .unwrap()
            .contains("without a close frame"),
        "{event}"
    );
}

#[tokio::test]
async fn crashed_upstream_gives_the_client_an_error_event_and_1011() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    upstream.abort_sessions();
    expect_upstream_lost(&mut client).await;
}

#[tokio::test]
async fn vanished_client_closes_the_upstream_with_1011() {
    for reset in [false, true] {
        let upstream = MockUpstream::echo().await.unwrap();
        let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
        let mut client =
            RawClient::connect(gateway.addr, "/v1/realtime?model=openai/gpt-realtime").await;
        client.read_frame().await.unwrap();
        if reset {
            client.reset();
        } else {
            drop(client);
        }
        assert!(
            upstream
                .wait_until(PROMPTLY, |u| !u.closes().is_empty())
                .await,
            "reset: {reset}"
        );
        let close = upstream.closes()[0].clone().expect("a close code");
        assert_eq!(close.code, CloseCode::Error, "reset: {reset}");
        assert_eq!(close.reason, "client connection lost");
    }
}

#[tokio::test]
async fn each_hop_answers_its_own_pings() {
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        session.send(Message::Ping("from-upstream".into())).await;
        session.echo().await;
    })
    .await
    .unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    client
        .send(Message::Ping("from-client".into()))
        .await
        .unwrap();
    // The gateway answers the client's ping itself and forwards neither ping.
    let pong = tokio::time::timeout(PROMPTLY, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong("from-client".into()));
    send_text(&mut client, "after pings").await;
    assert_eq!(next_data(&mut client).await, Message::text("after pings"));
    assert_eq!(upstream.received(), vec![Message::text("after pings")]);
}

#[tokio::test]
async fn messages_over_the_limit_close_with_1009() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).max_message_size(64 * 1024);
    let gateway = serve_axum(layer).await;

    // From the client.
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    let _ = client.send(Message::binary(vec![7u8; 65 * 1024])).await;
    assert_eq!(
        close_frame(&mut client).await.unwrap().code,
        CloseCode::Size
    );
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    assert_eq!(upstream.closes()[0].as_ref().unwrap().code, CloseCode::Size);
    assert!(
        upstream.received().is_empty(),
        "nothing of it was forwarded"
    );

    // From the upstream.
    let flooding = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.send(Message::text("x".repeat(65 * 1024))).await;
        session.recv().await;
    })
    .await
    .unwrap();
    let gateway =
        serve_axum(RealtimeLayer::new(openai(&flooding)).max_message_size(64 * 1024)).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(
        close_frame(&mut client).await.unwrap().code,
        CloseCode::Size
    );
    assert!(
        flooding
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    assert_eq!(flooding.closes()[0].as_ref().unwrap().code, CloseCode::Size);
}

#[tokio::test]
async fn a_slow_upgrade_client_does_not_leave_the_upstream_open() {
    // The client sends the upgrade and disappears before reading the 101.
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream));
    let shutdown = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    let head = raw_http(
        gateway.addr,
        "GET /v1/realtime?model=openai/m HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // raw_http dropped its socket: the session must end on its own.
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.sessions_ended() == 1)
            .await
    );
    tokio::time::timeout(PROMPTLY, shutdown.drained())
        .await
        .unwrap();
    assert_eq!(shutdown.active_sessions(), 0);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn large_messages_travel_as_bounded_fragments_and_arrive_whole() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let mut client =
        RawClient::connect(gateway.addr, "/v1/realtime?model=openai/gpt-realtime").await;
    client.read_frame().await.unwrap();

    // One unfragmented 200 KB frame from the client ...
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    client.frame(0x82, &payload, true).await;
    // ... reaches the upstream as the same message ...
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.received().len() == 1)
            .await
    );
    assert_eq!(upstream.received(), vec![Message::binary(payload.clone())]);
    // ... and its echo (one 200 KB frame from the upstream) reaches the
    // client as fragments of at most 16 KiB.
    let mut echoed = Vec::new();
    let mut opcodes = Vec::new();
    loop {
        let frame = client.read_frame().await.unwrap();
        assert!(
            frame.payload.len() <= 16 * 1024,
            "a {} byte frame",
            frame.payload.len()
        );
        opcodes.push(frame.opcode);
        echoed.extend_from_slice(&frame.payload);
        if frame.fin {
            break;
        }
    }
    assert_eq!(echoed, payload);
    assert_eq!(opcodes[0], 2);
    assert!(opcodes[1..].iter().all(|&op| op == 0), "{opcodes:?}");
    assert_eq!(opcodes.len(), 200_000usize.div_ceil(16 * 1024 - 4));
}

#[tokio::test]
async fn an_upstream_close_reason_naming_the_key_is_scrubbed() {
    use std::sync::{Arc, Mutex};
    use tower_realtime::usage::Observation;

    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        if session.recv().await.is_some() {
            session
                .close(4001, &format!("bad key {PROVIDER_KEY}"))
                .await;
        }
    })
    .await
    .unwrap();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let layer = RealtimeLayer::new(openai(&upstream)).observer({
        let ends = Arc::clone(&ends);
        move |observation: Observation<'_>| {
            if let Observation::SessionEnd(summary) = observation {
                ends.lock().unwrap().push(summary.end.clone());
            }
        }
    });
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    send_text(&mut client, "go").await;
    let frame = close_frame(&mut client).await.expect("a close code");
    assert_eq!(frame.code, CloseCode::Library(4001));
    assert_eq!(frame.reason, "bad key ***");
    // Answer the close, so the session ends without waiting.
    while let Some(Ok(_)) = client.next().await {}
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| !ends.lock().unwrap().is_empty())
            .await
    );
    assert_eq!(ends.lock().unwrap()[0].reason, "bad key ***");
}
