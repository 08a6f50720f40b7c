//! The limits of a session: how many may be live, how long they may idle or
//! last, how silent peers are found dead, and how big messages may be.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tower_realtime::RealtimeLayer;
use tower_realtime::testing::{MockUpstream, UpstreamSession};

const MODEL: &str = "?model=openai/gpt-realtime";

#[tokio::test]
async fn sessions_over_the_limit_get_503_before_dialling_and_slots_free_up() {
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        // Closes the session itself when asked to.
        while let Some(message) = session.recv().await {
            if message == Message::text("upstream, close") {
                session.close(1000, "as asked").await;
                return;
            }
        }
    })
    .await
    .unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).max_sessions(2);
    let sessions = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;

    let mut first = open(&gateway, "openai/gpt-realtime").await;
    let mut second = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut first).await;
    next_event(&mut second).await;
    assert_eq!(sessions.active_sessions(), 2);

    let (status, headers, body) = refused(&gateway.url(MODEL), &[]).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["error"]["code"], "too_many_sessions");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(upstream.connections(), 2, "the refusal dialled nothing");

    // A slot frees when the client closes ...
    first.close(None).await.unwrap();
    finish_close(&mut first).await;
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| sessions.active_sessions() == 1)
            .await
    );
    let mut third = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut third).await;
    assert_eq!(refused(&gateway.url(MODEL), &[]).await.0, 503);

    // ... when the client vanishes ...
    drop(second);
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| sessions.active_sessions() == 1)
            .await
    );
    let mut fourth = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut fourth).await;
    assert_eq!(refused(&gateway.url(MODEL), &[]).await.0, 503);

    // ... and when the upstream ends the session.
    send_text(&mut fourth, "upstream, close").await;
    assert_eq!(
        close_frame(&mut fourth).await.unwrap().code,
        CloseCode::Normal
    );
    finish_close(&mut fourth).await;
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| sessions.active_sessions() == 1)
            .await
    );
    let mut fifth = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut fifth).await;
    assert_eq!(sessions.active_sessions(), 2);
    assert_eq!(
        upstream.connections(),
        5,
        "one dial per session, none per refusal"
    );
    drop(third);
}

/// Answers the gateway's close frame and reads to the end of the stream, as
/// a well-behaved client does after a close.
async fn finish_close(client: &mut Client) {
    let drain = async { while let Some(Ok(_)) = futures_util::StreamExt::next(client).await {} };
    tokio::time::timeout(PROMPTLY, drain)
        .await
        .expect("the gateway ends the stream");
}

/// Checks that the client gets an `error` event with `code`, then close 1008
/// with `reason`, and that the upstream gets 1008 too.
async fn expect_policy_close(
    client: &mut Client,
    upstream: &MockUpstream,
    code: &str,
    reason: &str,
) {
    let event = next_event(client).await;
    assert_eq!(event["type"], "error", "{event}");
    assert_eq!(event["error"]["code"], code, "{event}");
    assert!(
        event["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    let close = close_frame(client).await.expect("a close code");
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason, reason);
    finish_close(client).await;
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    let upstream_close = upstream.closes()[0].clone().expect("a close code");
    assert_eq!(upstream_close.code, CloseCode::Policy);
    assert_eq!(upstream_close.reason, reason);
}

#[tokio::test]
async fn an_idle_session_gets_an_error_event_then_1008() {
    let upstream = MockUpstream::echo().await.unwrap();
    // Wide margins: a loaded machine may pause for a while between echoes.
    let idle = Duration::from_secs(3);
    let layer = RealtimeLayer::new(openai(&upstream))
        .idle_timeout(idle)
        .keepalive(None);
    let sessions = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");

    // Traffic keeps the session alive well past the timeout ...
    for n in 0..8 {
        send_text(&mut client, &format!("message {n}")).await;
        assert_eq!(
            next_data(&mut client).await,
            Message::text(format!("message {n}"))
        );
        tokio::time::sleep(idle / 15).await;
    }
    // ... and silence ends it.
    expect_policy_close(&mut client, &upstream, "idle_timeout", "idle timeout").await;
    assert_eq!(upstream.received().len(), 8);
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| sessions.active_sessions() == 0)
            .await
    );
}

#[tokio::test]
async fn a_session_over_its_maximum_duration_gets_an_error_event_then_1008() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream))
        .max_session_duration(Duration::from_millis(300))
        .keepalive(None);
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    // The limit holds however busy the session is: keep talking until it ends.
    let event = loop {
        send_text(&mut client, r#"{"type":"input_audio_buffer.append"}"#).await;
        let event = next_event(&mut client).await;
        if event["type"] == "error" {
            break event;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(event["error"]["code"], "session_expired", "{event}");
    let close = close_frame(&mut client).await.expect("a close code");
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason, "maximum session duration reached");
    finish_close(&mut client).await;
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    assert_eq!(
        upstream.closes()[0].clone().unwrap().code,
        CloseCode::Policy
    );
}

#[tokio::test]
async fn an_upstream_that_stops_answering_pings_gives_the_client_an_error_event_and_1011() {
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        // Never read again, so pings go unanswered (the socket stays open).
        let _socket = session.into_socket();
        std::future::pending::<()>().await;
    })
    .await
    .unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).keepalive(Some(Duration::from_millis(500)));
    let sessions = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    // A raw client, to count the pings it answers.
    let mut client =
        RawClient::connect(gateway.addr, "/v1/realtime?model=openai/gpt-realtime").await;
    let mut pings = 0;
    let mut texts = Vec::new();
    let close = loop {
        let frame = client.read_frame().await.expect("a close frame");
        match frame.opcode {
            // The client answers the gateway's pings while it waits.
            9 => {
                pings += 1;
                client.frame(0x8A, &frame.payload, true).await;
            }
            1 => texts.push(String::from_utf8(frame.payload).unwrap()),
            8 => break frame,
            _ => {}
        }
    };
    assert_eq!(close.close_code(), Some(1011));
    assert_eq!(&close.payload[2..], b"upstream connection lost");
    let event: serde_json::Value = serde_json::from_str(texts.last().unwrap()).unwrap();
    assert_eq!(
        event["error"]["code"], "upstream_connection_lost",
        "{event}"
    );
    assert!(
        event["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no answer to 2 keepalive pings"),
        "{event}"
    );
    assert!(pings <= 3, "the client was pinged {pings} times");
    client.frame(0x88, &close.payload[..2], true).await;
    assert_eq!(
        client.read_frame().await,
        None,
        "the gateway ends the stream"
    );
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| sessions.active_sessions() == 0)
            .await
    );
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_closes_the_upstream_with_1011() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).keepalive(Some(Duration::from_millis(500)));
    let sessions = layer.shutdown_handle();
    let gateway = serve_axum(layer).await;
    // A raw client that never reads (so never answers) after its handshake.
    let client = RawClient::connect(gateway.addr, "/v1/realtime?model=openai/gpt-realtime").await;
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    let close = upstream.closes()[0].clone().expect("a close code");
    assert_eq!(close.code, CloseCode::Error);
    assert_eq!(close.reason, "client connection lost");
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| sessions.active_sessions() == 0)
            .await
    );
    drop(client);
}

#[tokio::test]
async fn silent_peers_that_answer_pings_stay_connected() {
    let upstream = MockUpstream::echo().await.unwrap();
    let interval = Duration::from_millis(300);
    let layer = RealtimeLayer::new(openai(&upstream)).keepalive(Some(interval));
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    // Ten intervals of silence, the client reading (and so answering pings).
    let silence = tokio::time::sleep(interval * 10);
    tokio::pin!(silence);
    loop {
        tokio::select! {
            () = &mut silence => break,
            message = futures_util::StreamExt::next(&mut client) => {
                match message {
                    Some(Ok(Message::Ping(_))) => {}
                    other => panic!("only pings while silent, got {other:?}"),
                }
            }
        }
    }
    send_text(&mut client, "still here").await;
    assert_eq!(next_data(&mut client).await, Message::text("still here"));
}

#[tokio::test]
async fn frames_over_the_frame_limit_close_with_1009() {
    // Acknowledges each message with its size (an echo would send one
    // frame over the limit back).
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        while let Some(message) = session.recv().await {
            session
                .send(Message::text(format!("got {}", message.len())))
                .await;
        }
    })
    .await
    .unwrap();
    let layer = RealtimeLayer::new(openai(&upstream))
        .max_frame_size(16 << 10)
        .max_message_size(32 << 10);
    let gateway = serve_axum(layer).await;
    let path = "/v1/realtime?model=openai/gpt-realtime";

    // One frame over the frame limit (the message limit would allow it).
    let mut client = RawClient::connect(gateway.addr, path).await;
    client.read_frame().await.unwrap(); // session.created
    client.frame(0x82, &[1u8; (16 << 10) + 1], true).await;
    assert_eq!(client.read_close().await.close_code(), Some(1009));

    // A frame header that announces an absurd length is refused at once.
    let mut client = RawClient::connect(gateway.addr, path).await;
    client.read_frame().await.unwrap();
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 62).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    client.write(&header).await;
    assert_eq!(client.read_close().await.close_code(), Some(1009));

    // Fragments under the frame limit that add up to more than the message limit.
    let mut client = RawClient::connect(gateway.addr, path).await;
    client.read_frame().await.unwrap();
    client.frame(0x02, &[2u8; 12 << 10], true).await;
    client.frame(0x00, &[2u8; 12 << 10], true).await;
    client.frame(0x80, &[2u8; 12 << 10], true).await;
    assert_eq!(client.read_close().await.close_code(), Some(1009));

    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.closes().len() == 3)
            .await
    );
    for close in upstream.closes() {
        assert_eq!(close.unwrap().code, CloseCode::Size);
    }
    assert!(upstream.received().is_empty(), "nothing was forwarded");

    // Fragments within both limits arrive upstream as one message.
    let mut client = RawClient::connect(gateway.addr, path).await;
    client.read_frame().await.unwrap();
    client.frame(0x02, &[3u8; 12 << 10], true).await;
    client.frame(0x80, &[4u8; 12 << 10], true).await;
    let ack = client.read_frame().await.unwrap();
    assert_eq!(ack.payload, format!("got {}", 24 << 10).as_bytes());
    let mut expected = vec![3u8; 12 << 10];
    expected.extend_from_slice(&[4u8; 12 << 10]);
    assert_eq!(upstream.received(), vec![Message::binary(expected)]);
}

#[tokio::test]
async fn upstream_frames_over_the_frame_limit_close_with_1009() {
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session
            .send(Message::binary(vec![9u8; (16 << 10) + 1]))
            .await;
        session.recv().await;
    })
    .await
    .unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).max_frame_size(16 << 10);
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(
        close_frame(&mut client).await.unwrap().code,
        CloseCode::Size
    );
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    assert_eq!(upstream.closes()[0].clone().unwrap().code, CloseCode::Size);
    let _ = client.close(None).await;
    let _ = client.flush().await;
}

#[tokio::test]
async fn the_largest_write_buffer_size_still_relays() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).write_buffer_size(usize::MAX);
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, "through").await;
    assert_eq!(next_data(&mut client).await, Message::text("through"));
}

#[tokio::test]
async fn durations_too_long_for_a_clock_mean_never() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream))
        .keepalive(Some(Duration::MAX))
        .idle_timeout(Duration::MAX)
        .max_session_duration(Duration::MAX)
        .close_timeout(Duration::MAX)
        .connect_timeout(Duration::MAX);
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, "still here").await;
    assert_eq!(next_data(&mut client).await, Message::text("still here"));
    client.close(None).await.unwrap();
    finish_close(&mut client).await;
}
