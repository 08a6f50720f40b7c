//! The demo provider of the gateway example through a real gateway: the GA
//! event sequences it sends for text, committed audio and detected speech,
//! and its errors. Its own unit tests run here too. And the offline Gemini
//! demo (`gemini-demo`), translated, answering turn after turn.

mod common;
#[path = "../examples/gateway/demo/mod.rs"]
mod demo;
#[path = "../examples/gateway/gemini_demo.rs"]
mod gemini_demo;

use std::time::Duration;

use common::*;
use data_encoding::BASE64;
use demo::{CallsFront, Demo};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tower_realtime::testing::MockUpstream;
use tower_realtime::{Providers, RealtimeLayer};

async fn demo_gateway(upstream: &MockUpstream) -> Gateway {
    let providers = Providers::new().with("demo", upstream.provider());
    serve_axum(RealtimeLayer::new(providers)).await
}

async fn send(client: &mut Client, event: Value) {
    send_text(client, &event.to_string()).await;
}

/// Events up to and including the first of type `last`.
async fn events_until(client: &mut Client, last: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next_event(client).await;
        let done = event["type"] == last;
        events.push(event);
        if done {
            return events;
        }
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn joined(events: &[Value], kind: &str) -> String {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["delta"].as_str().unwrap())
        .collect()
}

/// PCM16 at 24 kHz, base64: `ms` of a tone at `amplitude` (0: silence).
fn pcm(ms: usize, amplitude: f32) -> String {
    let samples = 24 * ms;
    let bytes: Vec<u8> = (0..samples)
        .flat_map(|n| {
            let value = amplitude * (n as f32 * 0.1).sin() * f32::from(i16::MAX);
            (value as i16).to_le_bytes()
        })
        .collect();
    BASE64.encode(&bytes)
}

async fn append(client: &mut Client, ms: usize, amplitude: f32) {
    send(
        client,
        json!({"type": "input_audio_buffer.append", "audio": pcm(ms, amplitude)}),
    )
    .await;
}

#[tokio::test]
async fn a_text_message_gets_a_spoken_reply_with_usage() {
    let upstream = MockUpstream::with_script(Demo::new()).await.unwrap();
    let gateway = demo_gateway(&upstream).await;
    let mut client = open(&gateway, "demo/realtime-mini").await;

    let created = next_event(&mut client).await;
    assert_eq!(created["type"], "session.created");
    assert_eq!(created["session"]["model"], "realtime-mini");
    assert_eq!(created["session"]["output_modalities"], json!(["audio"]));
    let session_id = created["session"]["id"].clone();

    send(&mut client, json!({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}}})).await;
    let updated = next_event(&mut client).await;
    assert_eq!(updated["type"], "session.updated");
    assert_eq!(updated["session"]["id"], session_id);
    assert_eq!(updated["session"]["audio"]["output"]["voice"], "marin");
    assert_eq!(
        updated["session"]["audio"]["input"]["format"]["rate"],
        24000
    );

    send(&mut client, json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello gateway"}]}})).await;
    let added = next_event(&mut client).await;
    assert_eq!(added["type"], "conversation.item.added");
    assert_eq!(added["item"]["content"][0]["text"], "Hello gateway");
    let user_item = added["item"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        next_event(&mut client).await["type"],
        "conversation.item.done"
    );

    send(&mut client, json!({"type": "response.create"})).await;
    let events = events_until(&mut client, "response.done").await;
    let kinds = kinds(&events);
    assert_eq!(
        kinds[..4],
        [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(
        kinds[kinds.len() - 6..],
        [
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done"
        ]
    );
    assert!(!kinds.contains(&"response.output_text.delta"));
    assert_eq!(events[2]["previous_item_id"], user_item.as_str());

    let transcript = joined(&events, "response.output_audio_transcript.delta");
    assert!(
        transcript.starts_with("You said: “Hello gateway”."),
        "{transcript}"
    );
    let audio: usize = events
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .map(|e| {
            BASE64
                .decode(e["delta"].as_str().unwrap().as_bytes())
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(audio, 48_000, "one second of PCM16 at 24 kHz");

    let done = &events.last().unwrap()["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["audio"]["output"]["voice"], "marin");
    assert_eq!(done["output"][0]["content"][0]["transcript"], transcript);
    let usage = &done["usage"];
    let input = usage["input_tokens"].as_u64().unwrap();
    let output = usage["output_tokens"].as_u64().unwrap();
    assert!(input > 0 && output > 0, "{usage}");
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), input + output);
    assert_eq!(usage["output_token_details"]["audio_tokens"], 20);
    assert_eq!(
        usage["output_token_details"]["text_tokens"]
            .as_u64()
            .unwrap()
            + usage["output_token_details"]["audio_tokens"]
                .as_u64()
                .unwrap(),
        output
    );

    // The next response reads the first one as context.
    send(&mut client, json!({"type": "response.create", "response": {"output_modalities": ["text"], "metadata": {"topic": "demo"}}})).await;
    let events = events_until(&mut client, "response.done").await;
    assert!(
        events
            .iter()
            .all(|e| !e["type"].as_str().unwrap().contains("audio"))
    );
    assert!(joined(&events, "response.output_text.delta").starts_with("You said"));
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["metadata"]["topic"], "demo");
    assert!(done["usage"]["input_tokens"].as_u64().unwrap() > input + output - 1);
}

#[tokio::test]
async fn committed_audio_is_transcribed_and_answered_on_request() {
    let upstream = MockUpstream::with_script(Demo::new()).await.unwrap();
    let gateway = demo_gateway(&upstream).await;
    let mut client = open(&gateway, "demo/any").await;
    next_event(&mut client).await;

    send(
        &mut client,
        json!({"type": "session.update", "session": {"audio": {"input": {
            "turn_detection": null,
            "transcription": {"model": "whisper-1"},
        }}}}),
    )
    .await;
    assert_eq!(next_event(&mut client).await["type"], "session.updated");

    for _ in 0..5 {
        append(&mut client, 100, 0.5).await;
    }
    send(&mut client, json!({"type": "input_audio_buffer.commit"})).await;
    let events = events_until(
        &mut client,
        "conversation.item.input_audio_transcription.completed",
    )
    .await;
    assert_eq!(
        kinds(&events),
        [
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "conversation.item.input_audio_transcription.completed"
        ]
    );
    assert_eq!(events[0]["item_id"], events[1]["item"]["id"]);
    assert_eq!(events[1]["item"]["content"][0]["type"], "input_audio");
    assert_eq!(events[3]["transcript"], "(0.5 s of audio)");
    assert_eq!(events[3]["usage"]["seconds"], 0.5);

    // Without turn detection nothing more comes until response.create.
    send(&mut client, json!({"type": "response.create"})).await;
    let events = events_until(&mut client, "response.done").await;
    assert_eq!(events[0]["type"], "response.created");
    let transcript = joined(&events, "response.output_audio_transcript.delta");
    assert!(
        transcript.starts_with("I heard 0.5 seconds of audio."),
        "{transcript}"
    );
    let usage = &events.last().unwrap()["response"]["usage"];
    assert_eq!(usage["input_token_details"]["audio_tokens"], 5);
}

#[tokio::test]
async fn detected_speech_is_committed_and_answered() {
    let upstream = MockUpstream::with_script(Demo::new()).await.unwrap();
    let gateway = demo_gateway(&upstream).await;
    let mut client = open(&gateway, "demo/any").await;
    next_event(&mut client).await;

    // Server VAD is on by default: silence, 800 ms of speech, then silence.
    for _ in 0..4 {
        append(&mut client, 100, 0.0).await;
    }
    for _ in 0..8 {
        append(&mut client, 100, 0.5).await;
    }
    for _ in 0..5 {
        append(&mut client, 100, 0.0).await;
    }
    let events = events_until(&mut client, "response.done").await;
    let kinds = kinds(&events);
    assert_eq!(
        kinds[..5],
        [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done"
        ]
    );
    assert_eq!(
        events[0]["audio_start_ms"], 100,
        "400 ms minus 300 ms padding"
    );
    assert_eq!(events[1]["audio_end_ms"], 1200);
    assert_eq!(events[0]["item_id"], events[2]["item_id"]);
    assert!(
        joined(&events, "response.output_audio_transcript.delta")
            .starts_with("I heard 1.1 seconds of audio.")
    );
}

#[tokio::test]
async fn speech_and_cancel_end_a_response_and_one_response_at_a_time() {
    // Slow deltas keep the response in progress for the whole test.
    let upstream = MockUpstream::with_script(Demo::new().pace(Duration::from_secs(5)))
        .await
        .unwrap();
    let gateway = demo_gateway(&upstream).await;
    let mut client = open(&gateway, "demo/any").await;
    next_event(&mut client).await;

    send(&mut client, json!({"type": "response.create"})).await;
    let created = next_event(&mut client).await;
    assert_eq!(created["type"], "response.created");
    let response_id = created["response"]["id"].clone();

    send(
        &mut client,
        json!({"type": "response.create", "event_id": "evt_2"}),
    )
    .await;
    let busy = events_until(&mut client, "error").await;
    let error = &busy.last().unwrap()["error"];
    assert_eq!(error["code"], "conversation_already_has_active_response");
    assert_eq!(error["event_id"], "evt_2");

    send(&mut client, json!({"type": "response.cancel"})).await;
    let events = events_until(&mut client, "response.done").await;
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["id"], response_id);
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["status_details"]["reason"], "client_cancelled");

    send(&mut client, json!({"type": "response.cancel"})).await;
    assert_eq!(
        next_event(&mut client).await["error"]["code"],
        "response_cancel_not_active"
    );

    // Speech interrupts a response.
    send(&mut client, json!({"type": "response.create"})).await;
    assert_eq!(next_event(&mut client).await["type"], "response.created");
    append(&mut client, 100, 0.5).await;
    let events = events_until(&mut client, "response.done").await;
    assert!(kinds(&events).contains(&"input_audio_buffer.speech_started"));
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["status_details"]["reason"], "turn_detected");
}

#[tokio::test]
async fn mistakes_get_error_events_and_the_session_goes_on() {
    let upstream = MockUpstream::with_script(Demo::new()).await.unwrap();
    let gateway = demo_gateway(&upstream).await;
    let mut client = open(&gateway, "demo/any").await;
    next_event(&mut client).await;

    let cases: Vec<(Message, &str, Value)> = vec![
        (Message::text("{not json"), "invalid_json", Value::Null),
        (
            Message::text(r#"{"type":"nonsense","event_id":"e1"}"#),
            "invalid_value",
            json!("type"),
        ),
        (
            Message::text(r#"{"type":"input_audio_buffer.append","audio":"%%%"}"#),
            "invalid_value",
            json!("audio"),
        ),
        (
            Message::text(r#"{"type":"input_audio_buffer.commit"}"#),
            "input_audio_buffer_commit_empty",
            Value::Null,
        ),
        (
            Message::text(r#"{"type":"conversation.item.create"}"#),
            "missing_required_parameter",
            json!("item"),
        ),
        (
            Message::binary(vec![1u8, 2, 3]),
            "invalid_message",
            Value::Null,
        ),
    ];
    for (message, code, param) in cases {
        client_send(&mut client, message).await;
        let event = next_event(&mut client).await;
        assert_eq!(event["type"], "error");
        assert_eq!(event["error"]["code"], code, "{event}");
        assert_eq!(event["error"]["param"], param, "{event}");
        assert_eq!(event["error"]["type"], "invalid_request_error");
    }
    assert_eq!(
        next_event_after(&mut client, r#"{"type":"nonsense","event_id":"e1"}"#).await["error"]["event_id"],
        "e1"
    );

    append(&mut client, 200, 0.0).await;
    send(&mut client, json!({"type": "input_audio_buffer.clear"})).await;
    assert_eq!(
        next_event(&mut client).await["type"],
        "input_audio_buffer.cleared"
    );
    send(&mut client, json!({"type": "input_audio_buffer.commit"})).await;
    assert_eq!(
        next_event(&mut client).await["error"]["code"],
        "input_audio_buffer_commit_empty"
    );

    // The session still answers.
    send(&mut client, json!({"type": "response.create"})).await;
    let events = events_until(&mut client, "response.done").await;
    assert!(joined(&events, "response.output_audio_transcript.delta").starts_with("Hello!"));
    assert!(
        upstream.received().is_empty(),
        "the demo does not record messages"
    );
    assert_eq!(upstream.requests().len(), 1);
}

async fn client_send(client: &mut Client, message: Message) {
    use futures_util::SinkExt;
    client.send(message).await.unwrap();
}

async fn next_event_after(client: &mut Client, text: &str) -> Value {
    send_text(client, text).await;
    next_event(client).await
}

// WebRTC calls: the demo provider answers an offer from a real WebRTC peer
// (`str0m`, as the offerer a browser would be) over UDP on loopback.

#[path = "common/webrtc_caller.rs"]
mod call;

async fn demo_provider() -> (MockUpstream, CallsFront) {
    let upstream = MockUpstream::with_script(Demo::new()).await.unwrap();
    let front = CallsFront::start(upstream.addr()).await.unwrap();
    (upstream, front)
}

/// Posts `body` as `content_type` to the front's calls endpoint: status,
/// `Location`, body.
async fn post_offer(
    front: &CallsFront,
    content_type: &str,
    body: String,
) -> (u16, Option<String>, String) {
    http_post(front.addr(), "/v1/realtime/calls", content_type, None, body).await
}

/// Hangs call `id` up: status and body.
async fn hang_up(front: &CallsFront, id: &str) -> (u16, String) {
    let path = format!("/v1/realtime/calls/{id}/hangup");
    let (status, _, body) =
        http_post(front.addr(), &path, "application/json", None, String::new()).await;
    (status, body)
}

fn kinds_of(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_webrtc_call_hears_the_chime_and_its_sideband_sees_usage() {
    let (_upstream, front) = demo_provider().await;
    let (caller, offer) = call::Caller::offer().await;
    let (status, location, answer) = post_offer(&front, "application/sdp", offer).await;
    assert_eq!(status, 201, "{answer}");
    let location = location.expect("a Location");
    let id = location
        .strip_prefix("/v1/realtime/calls/rtc_")
        .map(|rest| format!("rtc_{rest}"))
        .unwrap_or_else(|| panic!("Location {location}"));
    // PCMU only: the demo has no Opus encoder.
    assert!(answer.contains("a=rtpmap:0 PCMU/8000"), "{answer}");
    assert!(!answer.contains("opus"), "{answer}");
    assert!(
        answer.contains("127.0.0.1"),
        "a host candidate on loopback: {answer}"
    );

    // A sideband attached before the call is up sees it all.
    let sideband_url = format!("ws://{}/v1/realtime?call_id={id}", front.addr());
    let (mut sideband, _) = connect(&sideband_url, &[])
        .await
        .expect("the sideband attaches");

    let heard = caller.listen(&answer).await;
    // One second of chime: fifty 20 ms frames, most of them not silent.
    assert_eq!(heard.packets, 50, "{heard:?}");
    assert!(heard.loud_bytes > 4_000, "{heard:?}");
    assert_eq!(
        kinds_of(&heard.events),
        [
            "session.created",
            "response.created",
            "output_audio_buffer.started",
            "response.output_audio_transcript.done",
            "output_audio_buffer.stopped",
            "response.done"
        ]
    );

    let events = events_until(&mut sideband, "response.done").await;
    assert_eq!(kinds_of(&events), kinds_of(&heard.events));
    let usage = &events.last().unwrap()["response"]["usage"];
    assert_eq!(usage["output_token_details"]["audio_tokens"], 20);
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);

    // A late sideband replays the call from session.created.
    let (mut late, _) = connect(&sideband_url, &[]).await.unwrap();
    let replayed = events_until(&mut late, "response.done").await;
    assert_eq!(kinds_of(&replayed), kinds_of(&events));

    // A sideband may ask for a response; asking again while it plays is an error.
    send(&mut sideband, json!({"type": "response.create"})).await;
    send(&mut sideband, json!({"type": "response.create"})).await;
    let second = events_until(&mut sideband, "response.done").await;
    assert_eq!(
        kinds_of(&second),
        [
            "response.created",
            "output_audio_buffer.started",
            "error",
            "response.output_audio_transcript.done",
            "output_audio_buffer.stopped",
            "response.done"
        ]
    );
    assert_eq!(
        second[2]["error"]["code"],
        "conversation_already_has_active_response"
    );
    assert_eq!(second[5]["response"]["id"], format!("resp_{}_2", &id[4..]));
    let _ = events_until(&mut late, "response.done").await;

    // Hanging up closes the sidebands; the call is gone after.
    let (status, _) = hang_up(&front, &id).await;
    assert_eq!(status, 200);
    for socket in [&mut sideband, &mut late] {
        let frame = close_frame(socket).await.expect("a close frame");
        assert_eq!(u16::from(frame.code), 1000);
    }
    let (status, body) = hang_up(&front, &id).await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"],
        "call_not_found"
    );
    let refused = connect(&sideband_url, &[])
        .await
        .expect_err("no sideband for an ended call");
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn webrtc_offers_come_as_sdp_json_or_multipart() {
    let (_upstream, front) = demo_provider().await;
    let (_, offer) = call::Caller::offer().await;
    let json = json!({"sdp": offer, "session": {"type": "realtime", "model": "realtime"}});
    let multipart = format!(
        "--B\r\nContent-Disposition: form-data; name=\"sdp\"\r\nContent-Type: application/sdp\r\n\r\n{offer}\r\n\
         --B\r\nContent-Disposition: form-data; name=\"session\"\r\nContent-Type: application/json\r\n\r\n\
         {{\"type\":\"realtime\",\"model\":\"realtime\"}}\r\n--B--\r\n"
    );
    for (content_type, body) in [
        ("application/sdp", offer.clone()),
        ("application/json", json.to_string()),
        ("multipart/form-data; boundary=B", multipart),
    ] {
        let (status, location, answer) = post_offer(&front, content_type, body).await;
        assert_eq!(status, 201, "{content_type}: {answer}");
        assert!(location.unwrap().starts_with("/v1/realtime/calls/rtc_"));
        assert!(answer.starts_with("v=0"));
    }

    // Not an offer: a 400 with an OpenAI-shaped error.
    let (status, _, body) = post_offer(&front, "application/sdp", "hello".into()).await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "invalid_offer");
    assert_eq!(error["error"]["type"], "invalid_request_error");

    // SDP that str0m cannot read, an offer over 64 KiB, another method:
    // refused the same way.
    let garbage = "v=0\r\nm=nonsense\r\n".to_owned();
    let too_large = format!("{offer}a=x:{}\r\n", "y".repeat(64 * 1024));
    for (body, status, code) in [
        (garbage, 400, "invalid_offer"),
        (too_large, 413, "offer_too_large"),
    ] {
        let (got, _, answer) = post_offer(&front, "application/sdp", body).await;
        assert_eq!(got, status, "{answer}");
        let error: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(error["error"]["code"], code);
    }
    let response = raw_http(
        front.addr(),
        "PUT /v1/realtime/calls HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    assert!(response.contains("method_not_allowed"), "{response}");

    // Browsers may post offers straight to it, as to OpenAI: preflights
    // pass, and `Location` is exposed.
    let preflight = raw_http(
        front.addr(),
        "OPTIONS /v1/realtime/calls HTTP/1.1\r\nHost: x\r\nOrigin: http://app.example\r\n\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: authorization, content-type\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    assert!(preflight.starts_with("http/1.1 200"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: *"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-headers: *"),
        "{preflight}"
    );
    let posted = raw_http(
        front.addr(),
        "POST /v1/realtime/calls HTTP/1.1\r\nHost: x\r\nOrigin: http://app.example\r\n\
         Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    .to_ascii_lowercase();
    assert!(posted.starts_with("http/1.1 400"), "{posted}");
    assert!(
        posted.contains("access-control-expose-headers: *"),
        "{posted}"
    );
}

#[tokio::test]
async fn websocket_sessions_still_reach_the_demo_behind_the_calls_front() {
    let (upstream, front) = demo_provider().await;
    let providers = Providers::new().with("demo", front.provider());
    let gateway = serve_axum(RealtimeLayer::new(providers).allow_unauthenticated()).await;
    let mut client = open(&gateway, "demo/realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send(&mut client, json!({"type": "response.create"})).await;
    let events = events_until(&mut client, "response.done").await;
    assert!(
        events.last().unwrap()["response"]["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn a_call_whose_browser_never_connects_is_dropped() {
    let upstream = MockUpstream::with_script(Demo::new()).await.unwrap();
    // The sideband connects within 5 s of the 201, however loaded the machine.
    let front = CallsFront::with_patience(upstream.addr(), Duration::from_secs(5))
        .await
        .unwrap();
    let (_caller, offer) = call::Caller::offer().await;
    let (status, location, _) = post_offer(&front, "application/sdp", offer).await;
    assert_eq!(status, 201);
    let id = location.unwrap().rsplit('/').next().unwrap().to_owned();
    let url = format!("ws://{}/v1/realtime?call_id={id}", front.addr());
    let (mut sideband, _) = connect(&url, &[]).await.expect("the call is live at first");
    assert_eq!(next_event(&mut sideband).await["type"], "session.created");
    // The caller never answers ICE: after 5 s of silence the call ends.
    let frame = tokio::time::timeout(Duration::from_secs(30), close_frame(&mut sideband))
        .await
        .expect("the call is dropped")
        .expect("a close frame");
    assert_eq!(u16::from(frame.code), 1000);
    let (status, _) = hang_up(&front, &id).await;
    assert_eq!(status, 404);
}

/// The offline Gemini demo's answer to one turn: its transcript and how
/// many bytes of audio it carried.
async fn gemini_demo_answer(client: &mut Client) -> (String, usize) {
    let events = events_until(client, "response.done").await;
    let done = events.last().unwrap();
    assert_eq!(done["response"]["status"], "completed", "{done}");
    let audio = events
        .iter()
        .filter(|event| event["type"] == "response.output_audio.delta")
        .map(|event| {
            BASE64
                .decode(event["delta"].as_str().unwrap().as_bytes())
                .unwrap()
                .len()
        })
        .sum();
    let transcript = joined(&events, "response.output_audio_transcript.delta");
    (transcript, audio)
}

#[tokio::test]
async fn the_gemini_demo_answers_every_text_and_voice_turn() {
    let (upstream, gemini) = gemini_demo::start().await.unwrap();
    let providers = Providers::new().with("gemini-demo", gemini);
    let gateway = serve_axum(RealtimeLayer::new(providers)).await;

    // The console: push to talk, and typed messages, in turn, twice.
    let mut client = open(&gateway, gemini_demo::MODEL).await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    let push_to_talk = json!({"type": "session.update", "session": {"type": "realtime",
        "audio": {"input": {"turn_detection": null}}}});
    send(&mut client, push_to_talk).await;
    assert_eq!(next_event(&mut client).await["type"], "session.updated");
    for _ in 0..2 {
        send(
            &mut client,
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "Hello"}]}}),
        )
        .await;
        send(&mut client, json!({"type": "response.create"})).await;
        let (transcript, _) = gemini_demo_answer(&mut client).await;
        assert_eq!(transcript, gemini_demo::TEXT_REPLY);

        for _ in 0..5 {
            append(&mut client, 100, 0.5).await;
        }
        send(&mut client, json!({"type": "input_audio_buffer.commit"})).await;
        send(&mut client, json!({"type": "response.create"})).await;
        let (transcript, audio) = gemini_demo_answer(&mut client).await;
        assert_eq!(transcript, gemini_demo::VOICE_REPLY);
        assert_eq!(audio, 48_000, "a second of audible 24 kHz PCM16");
    }

    // An SDK with server turn detection (the default) streams audio without
    // ending turns: every few seconds of it are answered, again and again.
    let mut client = open(&gateway, gemini_demo::MODEL).await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    let chunks = gemini_demo::SPOKEN_TURN.as_millis() / 100;
    for _ in 0..2 {
        for _ in 0..chunks {
            append(&mut client, 100, 0.5).await;
        }
        let (transcript, _) = gemini_demo_answer(&mut client).await;
        assert_eq!(transcript, gemini_demo::VOICE_REPLY);
    }
    // It serves as long as the gateway does: what it heard is not kept.
    assert_eq!(upstream.connections(), 2);
    assert!(upstream.received().is_empty());
}
