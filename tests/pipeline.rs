//! The event pipeline end to end: every verdict in both directions, async
//! verdicts under backpressure, sessions ended by hooks and from outside,
//! ambiguous types, model pinning and the event policy.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tower_realtime::hooks::{
    Close, Direction, ErrorEvent, Event, EventPolicy, Hook, HookContext, Interest, SessionLock,
    Verdict,
};
use tower_realtime::testing::{MockUpstream, UpstreamSession};
use tower_realtime::{ClosedBy, RealtimeLayer, SessionInfo};

fn event(event_type: &str) -> Event {
    Event::json(&json!({ "type": event_type }))
}

/// A hook whose verdict follows the event's type.
struct Scripted {
    gate: Arc<Notify>,
}

impl Hook for Scripted {
    fn interest(&self) -> Interest {
        Interest::new()
            .client_events(["c.inject", "c.drop", "c.reply", "c.end", "c.later"])
            .upstream_events(["u.replace", "u.drop", "u.reply", "u.end", "u.later"])
    }

    fn on_event(&mut self, event: Event, cx: &mut HookContext<'_>) -> Verdict {
        match event.event_type().unwrap() {
            "c.inject" => Verdict::replace([event_named("before"), event, event_named("after")]),
            "c.drop" | "u.drop" => Verdict::discard(),
            "c.reply" => Verdict::reply(
                ErrorEvent::invalid_request("refused", "no")
                    .answering(&event)
                    .to_event(),
            ),
            "u.reply" => {
                assert_eq!(cx.direction(), Direction::UpstreamToClient);
                Verdict::reply(event_named("to.upstream"))
            }
            "u.replace" => Verdict::replace([event_named("one"), event_named("two")]),
            "c.end" => Verdict::end(Close::policy("no more").error(ErrorEvent::invalid_request(
                "session_refused",
                "This session is over.",
            ))),
            "u.end" => Verdict::end(Close::new(4000, "upstream said the word")),
            "c.later" | "u.later" => {
                let gate = Arc::clone(&self.gate);
                Verdict::later(async move {
                    gate.notified().await;
                    Verdict::forward(event)
                })
            }
            other => panic!("not interested in {other}"),
        }
    }
}

fn event_named(name: &str) -> Event {
    event(name)
}

fn scripted_layer(upstream: &MockUpstream, gate: &Arc<Notify>) -> RealtimeLayer {
    let gate = Arc::clone(gate);
    RealtimeLayer::new(openai(upstream)).hook(move |_: &SessionInfo| Scripted {
        gate: Arc::clone(&gate),
    })
}

fn types(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .map(
            |m| match serde_json::from_slice::<Value>(&m.clone().into_data()) {
                Ok(json) => json["type"].as_str().unwrap_or("?").to_owned(),
                Err(_) => "not json".to_owned(),
            },
        )
        .collect()
}

/// Sends the client's answer to the gateway's close frame.
async fn answer_the_close(client: &mut Client) {
    while let Ok(Some(Ok(_))) =
        tokio::time::timeout(PROMPTLY, futures_util::StreamExt::next(client)).await
    {}
}

async fn next_type(client: &mut Client) -> String {
    next_event(client).await["type"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn client_events_are_forwarded_replaced_dropped_or_answered() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gate = Arc::new(Notify::new());
    let gateway = serve_axum(scripted_layer(&upstream, &gate)).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_type(&mut client).await, "session.created");

    // Replies come straight back, forwarded events via the echo: one at a time.
    send_text(&mut client, r#"{"type":"c.inject"}"#).await;
    // Injected before and after, in order.
    for expected in ["before", "c.inject", "after"] {
        assert_eq!(next_type(&mut client).await, expected);
    }
    send_text(&mut client, r#"{"type":"c.drop"}"#).await;
    send_text(&mut client, r#"{"type":"plain"}"#).await;
    assert_eq!(next_type(&mut client).await, "plain");
    send_text(&mut client, r#"{"type":"c.reply","event_id":"evt_1"}"#).await;
    let error = next_event(&mut client).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["code"], "refused");
    assert_eq!(error["error"]["event_id"], "evt_1");
    send_text(&mut client, r#"{"type":"last"}"#).await;
    assert_eq!(next_type(&mut client).await, "last");
    // The dropped and answered ones never arrived.
    assert_eq!(
        types(&upstream.received()),
        ["before", "c.inject", "after", "plain", "last"]
    );
}

#[tokio::test]
async fn upstream_events_are_forwarded_replaced_dropped_or_answered() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gate = Arc::new(Notify::new());
    let gateway = serve_axum(scripted_layer(&upstream, &gate)).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_type(&mut client).await, "session.created");

    // The echo upstream sends each of these back; the hook sees them coming back.
    for sent in ["u.replace", "u.drop", "u.reply"] {
        send_text(&mut client, &json!({ "type": sent }).to_string()).await;
    }
    // `u.reply` is answered to the upstream, which echoes the answer.
    for expected in ["one", "two", "to.upstream"] {
        assert_eq!(next_type(&mut client).await, expected);
    }
    send_text(&mut client, r#"{"type":"last"}"#).await;
    assert_eq!(next_type(&mut client).await, "last");
    assert_eq!(
        types(&upstream.received()),
        ["u.replace", "u.drop", "u.reply", "to.upstream", "last"]
    );
}

#[tokio::test]
async fn a_hook_ends_the_session_from_either_direction() {
    for (trigger, code, reason) in [
        ("c.end", 1008, "no more"),
        ("u.end", 4000, "upstream said the word"),
    ] {
        let upstream = MockUpstream::echo().await.unwrap();
        let gate = Arc::new(Notify::new());
        let (layer, seen) = summaries(scripted_layer(&upstream, &gate));
        let gateway = serve_axum(layer).await;
        let mut client = open(&gateway, "openai/gpt-realtime").await;
        assert_eq!(next_type(&mut client).await, "session.created");
        send_text(&mut client, &json!({ "type": trigger }).to_string()).await;
        if trigger == "c.end" {
            let error = next_event(&mut client).await;
            assert_eq!(error["error"]["code"], "session_refused");
        }
        let frame = close_frame(&mut client).await.expect("a close frame");
        assert_eq!(
            (u16::from(frame.code), frame.reason.as_str()),
            (code, reason)
        );
        answer_the_close(&mut client).await;
        assert!(
            upstream
                .wait_until(PROMPTLY, |u| !u.closes().is_empty())
                .await
        );
        let upstream_close = upstream.closes()[0].clone().expect("a close frame");
        assert_eq!(u16::from(upstream_close.code), code);
        // The ending event reached no one.
        let received = types(&upstream.received());
        assert_eq!(
            received,
            if trigger == "c.end" {
                vec![]
            } else {
                vec!["u.end".to_owned()]
            }
        );
        let deadline = tokio::time::Instant::now() + PROMPTLY;
        while seen.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let end = seen.lock().unwrap()[0].end.clone();
        assert_eq!((end.closed_by, end.code), (ClosedBy::Hook, code));
    }
}

/// An upstream that records what it gets and, once it gets `stream`, sends
/// `count` events.
async fn streaming_upstream(count: usize) -> MockUpstream {
    MockUpstream::with_script(move |mut session: UpstreamSession| async move {
        session.session_created().await;
        while let Some(message) = session.recv().await {
            if message.to_text().unwrap_or_default().contains("\"stream\"") {
                for n in 0..count {
                    session
                        .feed(Message::text(json!({"type": "delta", "n": n}).to_string()))
                        .await;
                }
                session.flush().await;
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_async_verdict_holds_its_direction_only_and_reads_nothing_meanwhile() {
    const MESSAGES: u64 = 400;
    const SIZE: usize = 64 << 10;
    let upstream = streaming_upstream(200).await;
    let gate = Arc::new(Notify::new());
    let gateway = serve_axum(scripted_layer(&upstream, &gate)).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_type(&mut client).await, "session.created");

    send_text(&mut client, r#"{"type":"c.later","n":0}"#).await;
    send_text(&mut client, r#"{"type":"held"}"#).await;
    // The client's direction waits for the verdict. Nothing behind the held
    // event is read: a client that keeps sending is stopped by TCP.
    let (mut sink, mut stream) = futures_util::StreamExt::split(client);
    let sent = Arc::new(AtomicU64::new(0));
    let sender = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            let big = "x".repeat(SIZE);
            for n in 0..MESSAGES {
                let text = format!(r#"{{"type":"bulk","n":{n},"pad":"{big}"}}"#);
                sink.send(Message::text(text)).await.unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
            sink.send(Message::text(r#"{"type":"stream"}"#))
                .await
                .unwrap();
            sink
        }
    });
    let mut last = u64::MAX;
    let mut still = 0;
    while still < 20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = sent.load(Ordering::SeqCst);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    assert!(last < MESSAGES, "the client sent all {last} messages");
    assert!(
        upstream.received().is_empty(),
        "{:?}",
        types(&upstream.received())
    );

    gate.notify_one();
    let mut sink = sender.await.unwrap();
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.received().len() as u64 == MESSAGES + 3)
            .await
    );
    let received = types(&upstream.received());
    assert_eq!(received[..2], ["c.later", "held"]);
    assert!(received[2..received.len() - 1].iter().all(|t| t == "bulk"));
    for n in 0..200 {
        let delta = loop {
            let event = match next_data_from(&mut stream).await {
                Message::Text(text) => serde_json::from_str::<Value>(&text).unwrap(),
                other => panic!("{other:?}"),
            };
            if event["type"] == "delta" {
                break event;
            }
        };
        assert_eq!(delta["n"], n);
    }
    sink.close().await.unwrap();
}

async fn next_data_from(stream: &mut futures_util::stream::SplitStream<Client>) -> Message {
    loop {
        let message = tokio::time::timeout(PROMPTLY, futures_util::StreamExt::next(stream))
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        if message.is_text() || message.is_binary() {
            return message;
        }
    }
}

#[tokio::test]
async fn upstream_events_flow_while_a_client_verdict_waits() {
    let upstream = streaming_upstream(500).await;
    let gate = Arc::new(Notify::new());
    let gateway = serve_axum(scripted_layer(&upstream, &gate)).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_type(&mut client).await, "session.created");
    send_text(&mut client, r#"{"type":"stream"}"#).await;
    send_text(&mut client, r#"{"type":"c.later"}"#).await;
    send_text(&mut client, r#"{"type":"held"}"#).await;
    // All 500 upstream events arrive while the client's direction waits.
    for n in 0..500 {
        let delta = next_event(&mut client).await;
        assert_eq!(
            (delta["type"].as_str(), delta["n"].as_u64()),
            (Some("delta"), Some(n))
        );
    }
    assert_eq!(types(&upstream.received()), ["stream"]);
    gate.notify_one();
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.received().len() == 3)
            .await
    );
    assert_eq!(types(&upstream.received()), ["stream", "c.later", "held"]);
}

#[tokio::test]
async fn escaped_and_repeated_types_cannot_slip_past_a_policy() {
    let upstream = MockUpstream::echo().await.unwrap();
    let layer = RealtimeLayer::new(openai(&upstream)).hook(EventPolicy::deny(["session.update"]));
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_type(&mut client).await, "session.created");

    // What a JSON parser reads as session.update is session.update.
    for (n, disguised) in [
        r#"{"type":"session\u002eupdate","event_id":"e1"}"#,
        r#"{"t\u0079pe":"session.update","event_id":"e2"}"#,
    ]
    .iter()
    .enumerate()
    {
        send_text(&mut client, disguised).await;
        let error = next_event(&mut client).await;
        assert_eq!(error["error"]["code"], "event_not_allowed", "{disguised}");
        assert_eq!(error["error"]["event_id"], format!("e{}", n + 1));
    }
    // Two types: refused before any hook, whichever one a parser would take.
    send_text(
        &mut client,
        r#"{"type":"input_audio_buffer.append","event_id":"e3","type":"session.update","audio":""}"#,
    )
    .await;
    let error = next_event(&mut client).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["code"], "ambiguous_event_type");
    assert_eq!(error["error"]["event_id"], "e3");
    // The session goes on.
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    assert_eq!(next_type(&mut client).await, "response.create");
    assert_eq!(types(&upstream.received()), ["response.create"]);
}

#[tokio::test]
async fn a_repeated_type_from_the_upstream_is_dropped() {
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        session
            .send(Message::text(r#"{"type":"response.done","type":"error"}"#))
            .await;
        session.send(Message::text(r#"{"type":"after"}"#)).await;
        session.echo().await;
    })
    .await
    .unwrap();
    // Any upstream interest turns classification on for upstream events.
    let layer = RealtimeLayer::new(openai(&upstream)).hook(SessionLock::new());
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_type(&mut client).await, "session.created");
    assert_eq!(next_type(&mut client).await, "after");
}

#[tokio::test]
async fn a_session_is_ended_from_outside() {
    let upstream = MockUpstream::echo().await.unwrap();
    let (layer, seen) = summaries(RealtimeLayer::new(openai(&upstream)));
    let live = layer.live_sessions();
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_type(&mut client).await, "session.created");
    assert_eq!(live.len(), 1);
    let session = live
        .find(|info| info.provider() == "openai" && info.model() == "gpt-realtime")
        .pop()
        .expect("the live session");
    assert_eq!(live.get(session.id()).unwrap().id(), session.id());

    // Injected both ways.
    session
        .inject(Direction::UpstreamToClient, event("gateway.notice"))
        .unwrap();
    assert_eq!(next_type(&mut client).await, "gateway.notice");
    session
        .inject(Direction::ClientToUpstream, event("injected.upstream"))
        .unwrap();
    assert_eq!(next_type(&mut client).await, "injected.upstream");

    // A budget decided elsewhere ends it.
    assert!(
        session.close(Close::policy("budget exceeded").error(ErrorEvent::new(
            "insufficient_quota",
            "budget_exceeded",
            "The budget is spent.",
        )))
    );
    let error = next_event(&mut client).await;
    assert_eq!(error["error"]["type"], "insufficient_quota");
    assert_eq!(error["error"]["code"], "budget_exceeded");
    let frame = close_frame(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason, "budget exceeded");
    answer_the_close(&mut client).await;
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    assert_eq!(u16::from(upstream.closes()[0].clone().unwrap().code), 1008);
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while !live.is_empty() || seen.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the session ends");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.lock().unwrap()[0].end.closed_by, ClosedBy::Hook);
    // A handle that outlived its session does nothing.
    assert!(session.is_ended());
    assert!(!session.close(Close::policy("again")));
    assert!(
        session
            .inject(Direction::UpstreamToClient, event("late"))
            .is_err()
    );
}

#[tokio::test]
async fn the_routed_model_is_pinned_unless_turned_off() {
    for pin in [true, false] {
        let upstream = MockUpstream::echo().await.unwrap();
        let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).pin_model(pin)).await;
        let mut client = open(&gateway, "openai/gpt-realtime").await;
        assert_eq!(next_type(&mut client).await, "session.created");
        let update = json!({"type": "session.update", "session": {"model": "gpt-4o-realtime-preview", "type": "realtime"}});
        send_text(&mut client, &update.to_string()).await;
        let create = json!({"type": "response.create", "response": {"model": "o3"}});
        send_text(&mut client, &create.to_string()).await;
        next_event(&mut client).await;
        next_event(&mut client).await;
        let received: Vec<Value> = upstream
            .received()
            .iter()
            .map(|m| serde_json::from_str(m.to_text().unwrap()).unwrap())
            .collect();
        let expected = |asked: &str| {
            if pin {
                "gpt-realtime".to_owned()
            } else {
                asked.to_owned()
            }
        };
        assert_eq!(
            received[0]["session"]["model"],
            expected("gpt-4o-realtime-preview")
        );
        assert_eq!(received[1]["response"]["model"], expected("o3"));
    }
}

#[tokio::test]
async fn the_meter_counts_what_crossed_the_upstream_hop() {
    // Appends a hook drops never reach the upstream and are not counted;
    // usage the upstream reported is counted even if a hook hides it.
    struct Filter;
    impl Hook for Filter {
        fn interest(&self) -> Interest {
            Interest::new()
                .client_events(["input_audio_buffer.append"])
                .upstream_events(["response.done"])
        }
        fn on_event(&mut self, event: Event, _cx: &mut HookContext<'_>) -> Verdict {
            if event.as_text().unwrap().contains("drop-me")
                || event.event_type() == Some("response.done")
            {
                return Verdict::discard();
            }
            Verdict::forward(event)
        }
    }
    let upstream = MockUpstream::echo().await.unwrap();
    let (layer, seen) =
        summaries(RealtimeLayer::new(openai(&upstream)).hook(|_: &SessionInfo| Filter));
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_type(&mut client).await, "session.created");
    // 0.5 s of 24 kHz PCM16 kept, 0.5 s dropped.
    let audio = "A".repeat(32_000);
    let kept = json!({"type": "input_audio_buffer.append", "audio": audio});
    let dropped =
        json!({"type": "input_audio_buffer.append", "audio": audio, "event_id": "drop-me"});
    send_text(&mut client, &dropped.to_string()).await;
    send_text(&mut client, &kept.to_string()).await;
    let done =
        json!({"type": "response.done", "response": {"id": "r", "usage": {"total_tokens": 7}}});
    send_text(&mut client, &done.to_string()).await;
    send_text(&mut client, r#"{"type":"last"}"#).await;
    assert_eq!(next_type(&mut client).await, "input_audio_buffer.append");
    // The echoed response.done is hidden from the client.
    assert_eq!(next_type(&mut client).await, "last");
    client.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while seen.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the session ends");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let summary = seen.lock().unwrap()[0].clone();
    assert_eq!(summary.input_audio_seconds, 0.5);
    assert_eq!(summary.usage.total_tokens, Some(7));
    assert_eq!(summary.responses, 1);
}

#[tokio::test]
async fn client_events_flow_while_an_upstream_verdict_waits() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gate = Arc::new(Notify::new());
    let gateway = serve_axum(scripted_layer(&upstream, &gate)).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_type(&mut client).await, "session.created");
    // The echo of `u.later` waits for its verdict; the client keeps talking.
    send_text(&mut client, r#"{"type":"u.later"}"#).await;
    for n in 0..50 {
        send_text(&mut client, &json!({"type": "x", "n": n}).to_string()).await;
    }
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.received().len() == 51)
            .await
    );
    // Nothing comes back while the verdict waits.
    let early = tokio::time::timeout(
        Duration::from_millis(200),
        futures_util::StreamExt::next(&mut client),
    )
    .await;
    assert!(early.is_err(), "{early:?}");
    gate.notify_one();
    assert_eq!(next_type(&mut client).await, "u.later");
    for n in 0..50 {
        let event = next_event(&mut client).await;
        assert_eq!(
            (event["type"].as_str(), event["n"].as_u64()),
            (Some("x"), Some(n))
        );
    }
}
