//! Gemini Live sessions end to end: an OpenAI realtime client through the
//! layer, the translator in the relay, and the scripted Gemini upstream.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use data_encoding::BASE64;
use serde_json::{Value, json};
use tower_realtime::provider::{
    Gemini, Provider, ServiceAccount, TargetError, TargetFuture, TargetRequest, Vertex,
    VertexCredential,
};
use tower_realtime::testing::{
    GeminiLive, Handshake, MockUpstream, Step, TokenEndpoint, Trigger, UpstreamSession,
};
use tower_realtime::usage::{Observation, SessionSummary};
use tower_realtime::{Providers, RealtimeLayer, Secret};

use common::{Client, Gateway, PROMPTLY, close_frame, open, refused, send_text, serve_axum};

const KEY: &str = "AIza-test-SECRET";
const MODEL: &str = "gemini/gemini-live-2.5-flash-preview";

fn layer(upstream: &MockUpstream) -> RealtimeLayer {
    let gemini = Gemini::new(Secret::new(KEY))
        .base_url(&format!("http://{}", upstream.addr()))
        .unwrap();
    RealtimeLayer::new(Providers::new().with("gemini", gemini))
}

async fn gateway(upstream: &MockUpstream) -> Gateway {
    serve_axum(layer(upstream)).await
}

/// What the client reads until `stop` says so: events, and the close code if any.
async fn read_until(
    client: &mut Client,
    stop: impl Fn(&Value) -> bool,
) -> (Vec<Value>, Option<u16>) {
    common::read_events_until(client, stop).await
}

fn is_done(event: &Value) -> bool {
    event["type"] == "response.done"
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

/// What Gemini received, as JSON.
fn received(upstream: &MockUpstream) -> Vec<Value> {
    upstream
        .received()
        .iter()
        .map(|message| serde_json::from_slice(&message.clone().into_data()).unwrap())
        .collect()
}

fn append(audio: &str) -> String {
    json!({"type": "input_audio_buffer.append", "audio": audio}).to_string()
}

fn say(text: &str) -> String {
    json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": text}]}})
    .to_string()
}

#[tokio::test]
async fn a_text_turn_through_the_layer() {
    let script = GeminiLive::new().reply(Trigger::TurnComplete, GeminiLive::text_turn("Hi!", 3, 2));
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let gateway = gateway(&upstream).await;
    let mut client = open(&gateway, MODEL).await;
    send_text(&mut client, &say("Hello")).await;
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    let (events, close) = read_until(&mut client, is_done).await;
    assert_eq!(close, None);
    assert_eq!(kinds(&events)[0], "session.created");
    let response = &events.last().unwrap()["response"];
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["content"][0]["transcript"], "Hi!");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].headers["x-goog-api-key"], KEY);
    let received = received(&upstream);
    assert_eq!(
        received[0]["setup"]["model"],
        "models/gemini-live-2.5-flash-preview"
    );
    assert_eq!(
        received[1]["clientContent"]["turns"][0]["parts"][0]["text"],
        "Hello"
    );
    assert!(
        received.iter().all(|message| message.get("type").is_none()),
        "no OpenAI event reaches Gemini: {received:?}"
    );
}

#[tokio::test]
async fn a_voice_turn_with_both_transcripts() {
    let mut turn = vec![
        GeminiLive::input_transcript("What time", false),
        GeminiLive::input_transcript(" is it?", true),
        GeminiLive::audio("AQADAAQAEgA="),
        GeminiLive::output_transcript("It is noon."),
    ];
    turn.extend(GeminiLive::text_turn("", 30, 9));
    let upstream = MockUpstream::with_script(GeminiLive::new().reply(Trigger::AudioChunk(2), turn))
        .await
        .unwrap();
    let gateway = gateway(&upstream).await;
    let mut client = open(&gateway, MODEL).await;
    let update = json!({"type": "session.update", "session": {"audio": {"input": {"transcription": {"model": "whisper-1"}}}}});
    send_text(&mut client, &update.to_string()).await;
    send_text(&mut client, &append("AAAA")).await;
    send_text(&mut client, &append("BBBB")).await;
    let (events, close) = read_until(&mut client, is_done).await;
    assert_eq!(close, None);
    let completed = events
        .iter()
        .find(|event| event["type"] == "conversation.item.input_audio_transcription.completed")
        .expect("the input transcript");
    assert_eq!(completed["transcript"], "What time is it?");
    assert!(kinds(&events).contains(&"response.output_audio.delta"));
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["output"][0]["content"][0]["transcript"], "It is noon.");

    let received = received(&upstream);
    assert_eq!(received.len(), 3, "one setup, two appends");
    assert_eq!(received[0]["setup"]["inputAudioTranscription"], json!({}));
    assert_eq!(received[2]["realtimeInput"]["audio"]["data"], "BBBB");
}

#[tokio::test]
async fn session_updates_before_content_merge_into_one_setup() {
    let script = GeminiLive::new().reply(Trigger::TurnComplete, GeminiLive::text_turn("Ok.", 3, 2));
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let gateway = gateway(&upstream).await;
    let mut client = open(&gateway, MODEL).await;
    let first = json!({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}});
    let second = json!({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "echo"}}}});
    send_text(&mut client, &first.to_string()).await;
    send_text(&mut client, &second.to_string()).await;
    send_text(&mut client, &say("Hello")).await;
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    let (events, close) = read_until(&mut client, is_done).await;
    assert_eq!(close, None);
    let updated: Vec<&Value> = events
        .iter()
        .filter(|event| event["type"] == "session.updated")
        .collect();
    // One per update (and one when Gemini confirms the setup).
    assert!(updated.len() >= 2, "{events:?}");
    let last = &updated.last().unwrap()["session"];
    assert_eq!(last["instructions"], "Be brief.");
    assert_eq!(last["audio"]["output"]["voice"], "echo");

    let setups: Vec<Value> = received(&upstream)
        .into_iter()
        .filter(|message| message.get("setup").is_some())
        .collect();
    assert_eq!(setups.len(), 1, "a single setup");
    let setup = &setups[0]["setup"];
    assert_eq!(
        setup["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"],
        "Puck"
    );
}

/// Gemini with resumption that answers a text turn on any connection:
/// "Hi!" on the first, "Salut !" once resumed.
fn answering_resumed() -> GeminiLive {
    GeminiLive::new()
        .resumption()
        .reply(Trigger::TurnComplete, GeminiLive::text_turn("Hi!", 3, 2))
        .reply_when_resumed(
            Trigger::TurnComplete,
            GeminiLive::text_turn("Salut !", 3, 2),
        )
}

/// Says `text`, asks for a response, and returns its transcript.
async fn ask(client: &mut Client, text: &str) -> Value {
    send_text(client, &say(text)).await;
    send_text(client, r#"{"type":"response.create"}"#).await;
    let (events, close) = read_until(client, is_done).await;
    assert_eq!(close, None);
    events.last().unwrap()["response"]["output"][0]["content"][0]["transcript"].clone()
}

#[tokio::test]
async fn a_session_update_after_content_is_applied_by_resuming() {
    let upstream = MockUpstream::with_script(answering_resumed())
        .await
        .unwrap();
    let gateway = gateway(&upstream).await;
    let mut client = open(&gateway, MODEL).await;
    assert_eq!(ask(&mut client, "Hello").await, "Hi!");

    let update = json!({"type": "session.update", "session": {"type": "realtime", "instructions": "Speak French."}});
    send_text(&mut client, &update.to_string()).await;
    let (events, close) = read_until(&mut client, |event| {
        event["type"] == "session.updated" || event["type"] == "error"
    })
    .await;
    assert_eq!(close, None);
    let updated = events.last().unwrap();
    assert_eq!(updated["type"], "session.updated", "{events:?}");
    assert_eq!(updated["session"]["instructions"], "Speak French.");

    assert_eq!(upstream.requests().len(), 2, "a second connection");
    let setups: Vec<Value> = received(&upstream)
        .into_iter()
        .filter(|message| message.get("setup").is_some())
        .collect();
    assert_eq!(setups.len(), 2);
    let resumed = &setups[1]["setup"];
    assert_eq!(
        resumed["systemInstruction"],
        json!({"parts": [{"text": "Speak French."}]})
    );
    assert_eq!(
        resumed["sessionResumption"],
        json!({"handle": "handle-sess_mock000001"})
    );
    // The conversation goes on, on the resumed connection.
    assert_eq!(ask(&mut client, "Bonjour").await, "Salut !");
}

#[tokio::test]
async fn with_resumption_turned_off_such_an_update_is_refused() {
    let script = GeminiLive::new()
        .resumption()
        .reply_every(Trigger::TurnComplete, GeminiLive::text_turn("Hi!", 3, 2));
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let gemini = Gemini::new(Secret::new(KEY))
        .base_url(&format!("http://{}", upstream.addr()))
        .unwrap()
        .reconfigure_by_resuming(false);
    let gateway = serve_axum(RealtimeLayer::new(Providers::new().with("gemini", gemini))).await;
    let mut client = open(&gateway, MODEL).await;
    assert_eq!(ask(&mut client, "Hello").await, "Hi!");

    let update = json!({"type": "session.update", "event_id": "evt_fr", "session": {"type": "realtime", "instructions": "Speak French."}});
    send_text(&mut client, &update.to_string()).await;
    let (events, close) = read_until(&mut client, |event| event["type"] == "error").await;
    assert_eq!(close, None);
    let error = &events.last().unwrap()["error"];
    assert_eq!(error["code"], "unsupported_session_update");
    assert_eq!(error["event_id"], "evt_fr");
    // The session goes on as it was, on the same connection.
    assert_eq!(ask(&mut client, "Hello again").await, "Hi!");
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn barge_in_is_speech_started_and_a_cancelled_response() {
    let mut turn = vec![GeminiLive::audio("AQAD")];
    turn.extend(GeminiLive::interrupted());
    let upstream = MockUpstream::with_script(GeminiLive::new().reply(Trigger::AudioChunk(1), turn))
        .await
        .unwrap();
    let gateway = gateway(&upstream).await;
    let mut client = open(&gateway, MODEL).await;
    send_text(&mut client, &append("AAAA")).await;
    let (events, close) = read_until(&mut client, is_done).await;
    assert_eq!(close, None);
    let kinds = kinds(&events);
    let started = kinds
        .iter()
        .position(|kind| *kind == "input_audio_buffer.speech_started")
        .expect("speech_started");
    assert!(started < kinds.len() - 1);
    let response = &events.last().unwrap()["response"];
    assert_eq!(response["status"], "cancelled");
    assert_eq!(response["status_details"]["reason"], "turn_detected");
}

#[tokio::test]
async fn a_tool_call_and_its_output() {
    let script = GeminiLive::new()
        .reply(
            Trigger::AudioChunk(1),
            [
                GeminiLive::tool_call([("call-1", "get_weather", json!({"city": "SF"}))]),
                Step::Send(json!({"serverContent": {"turnComplete": true}})),
            ],
        )
        .reply(
            Trigger::ToolResponse,
            GeminiLive::text_turn("It is 21 degrees.", 8, 5),
        );
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let gateway = gateway(&upstream).await;
    let mut client = open(&gateway, MODEL).await;
    let tools = json!({"type": "session.update", "session": {"type": "realtime", "tools": [{
        "type": "function", "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}});
    send_text(&mut client, &tools.to_string()).await;
    send_text(&mut client, &append("AAAA")).await;
    let (events, close) = read_until(&mut client, is_done).await;
    assert_eq!(close, None);
    let call = &events.last().unwrap()["response"]["output"][0];
    assert_eq!(call["type"], "function_call");
    assert_eq!(call["call_id"], "call-1");
    assert_eq!(call["arguments"], r#"{"city":"SF"}"#);

    let output = json!({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call-1", "output": r#"{"tempC":21}"#}});
    send_text(&mut client, &output.to_string()).await;
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    let (events, close) = read_until(&mut client, is_done).await;
    assert_eq!(close, None);
    assert_eq!(
        events.last().unwrap()["response"]["output"][0]["content"][0]["transcript"],
        "It is 21 degrees."
    );
    let received = received(&upstream);
    assert_eq!(
        received[0]["setup"]["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    let response = received
        .iter()
        .find(|message| message.get("toolResponse").is_some())
        .expect("the tool's output reached Gemini");
    assert_eq!(
        response["toolResponse"]["functionResponses"][0],
        json!({"id": "call-1", "name": "get_weather", "response": {"tempC": 21}})
    );
}

/// Gemini with session resumption: it answers the first turn, goes away
/// at the first audio chunk, and answers "Still here." once resumed.
fn going_away_once() -> GeminiLive {
    GeminiLive::new()
        .resumption()
        .reply(Trigger::TurnComplete, GeminiLive::text_turn("First.", 3, 2))
        .reply(Trigger::AudioChunk(1), [GeminiLive::go_away("10s")])
        .reply_when_resumed(
            Trigger::AudioChunk(1),
            GeminiLive::text_turn("Still here.", 5, 3),
        )
}

/// Waits for the relay to dial Gemini again, while the client hears nothing.
async fn resumed_unheard(client: &mut Client, upstream: &MockUpstream) {
    tokio::select! {
        _ = read_until(client, |_| false) => panic!("the client heard of it"),
        resumed = upstream.wait_until(PROMPTLY, |upstream| upstream.requests().len() == 2) => assert!(resumed),
    }
}

/// Reads the resumed session's answer: "Still here.", with no error event
/// since the `first` response, and no close.
async fn answered_after_resumption(client: &mut Client, first: &[Value]) {
    let (events, close) = read_until(client, is_done).await;
    assert_eq!(close, None);
    assert!(
        first
            .iter()
            .chain(&events)
            .all(|event| event["type"] != "error"),
        "{events:?}"
    );
    assert_eq!(
        events.last().unwrap()["response"]["output"][0]["content"][0]["transcript"],
        "Still here."
    );
}

#[tokio::test]
async fn go_away_resumes_mid_conversation_unnoticed() {
    let upstream = MockUpstream::with_script(going_away_once()).await.unwrap();
    let gateway = gateway(&upstream).await;
    let mut client = open(&gateway, MODEL).await;
    send_text(&mut client, &say("Hello")).await;
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    let (first, _) = read_until(&mut client, is_done).await;
    send_text(&mut client, &append("AAAA")).await;
    // Gemini's goAway: the relay dials again while the client reads on.
    resumed_unheard(&mut client, &upstream).await;
    send_text(&mut client, &append("BBBB")).await;
    answered_after_resumption(&mut client, &first).await;
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "a second connection");
    assert_eq!(
        requests[1].headers["x-goog-api-key"], KEY,
        "dialled through the provider again"
    );
    let setups: Vec<Value> = received(&upstream)
        .into_iter()
        .filter(|message| message.get("setup").is_some())
        .collect();
    assert_eq!(setups.len(), 2);
    assert_eq!(
        setups[1]["setup"]["sessionResumption"],
        json!({"handle": "handle-sess_mock000001"})
    );
}

#[tokio::test]
async fn a_gemini_close_code_is_an_error_event_and_a_close() {
    let script = GeminiLive::new().reply(
        Trigger::AudioChunk(1),
        [Step::Close(
            1011,
            "The service is currently unavailable.".into(),
        )],
    );
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let gateway = gateway(&upstream).await;
    let mut client = open(&gateway, MODEL).await;
    send_text(&mut client, &append("AAAA")).await;
    let (events, close) = read_until(&mut client, |_| false).await;
    let error = events
        .iter()
        .find(|event| event["type"] == "error")
        .expect("an error event");
    assert_eq!(error["error"]["code"], "upstream_error");
    assert_eq!(close, Some(1011));
    assert!(!events.iter().any(|event| event.to_string().contains(KEY)));
}

#[tokio::test]
async fn usage_reaches_the_observer_in_openai_shape() {
    let script =
        GeminiLive::new().reply(Trigger::TurnComplete, GeminiLive::text_turn("Hi!", 13, 21));
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let seen: Arc<Mutex<Vec<SessionSummary>>> = Arc::default();
    let into = Arc::clone(&seen);
    let layer = layer(&upstream).observer(move |observation: Observation<'_>| {
        if let Observation::SessionEnd(summary) = observation {
            into.lock().unwrap().push(summary.clone());
        }
    });
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, MODEL).await;
    send_text(&mut client, &say("Hello")).await;
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    let (events, _) = read_until(&mut client, is_done).await;
    assert_eq!(
        events.last().unwrap()["response"]["usage"]["total_tokens"],
        34
    );
    client.close(None).await.unwrap();
    let _ = close_frame(&mut client).await;
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while seen.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the session ends");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let summary = seen.lock().unwrap()[0].clone();
    assert_eq!(summary.provider, "gemini");
    assert_eq!(summary.responses, 1);
    assert_eq!(summary.usage.input_tokens, Some(13));
    assert_eq!(summary.usage.output_tokens, Some(21));
    assert_eq!(summary.usage.total_tokens, Some(34));
}

/// A provider whose first target is Gemini's and whose next ones are refused.
struct RefusesResumption {
    gemini: Gemini,
    calls: AtomicUsize,
}

impl Provider for RefusesResumption {
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        match self.calls.fetch_add(1, Ordering::SeqCst) {
            0 => self.gemini.target(request),
            _ => Box::pin(std::future::ready(Err(TargetError::unavailable(
                "no_capacity",
                "no capacity left",
            )))),
        }
    }
}

#[tokio::test]
async fn a_failed_resumption_is_an_error_event_and_a_close() {
    let script = GeminiLive::new()
        .resumption()
        .reply(Trigger::AudioChunk(1), [GeminiLive::go_away("10s")]);
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let gemini = Gemini::new(Secret::new(KEY))
        .base_url(&format!("http://{}", upstream.addr()))
        .unwrap();
    // The provider serves the first dial and refuses the resumption's.
    let provider = RefusesResumption {
        gemini,
        calls: AtomicUsize::new(0),
    };
    let gateway = serve_axum(RealtimeLayer::new(
        Providers::new().with("gemini", provider),
    ))
    .await;
    let mut client = open(&gateway, MODEL).await;
    send_text(&mut client, &append("AAAA")).await;
    let (events, close) = read_until(&mut client, |_| false).await;
    let error = events
        .iter()
        .find(|event| event["type"] == "error")
        .expect("an error event");
    assert_eq!(error["error"]["code"], "session_resumption_failed");
    assert_eq!(close, Some(1011));
    assert_eq!(upstream.connections(), 1, "no second connection");
}

/// Base64 of `samples` as 16-bit little-endian PCM.
fn pcm(samples: &[i16]) -> String {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    BASE64.encode(&bytes)
}

#[tokio::test]
async fn a_g711_client_hears_g711_and_gemini_hears_pcm() {
    // 100 ms of 24 kHz model audio per chunk: 2400 samples, 800 at 8 kHz.
    let tone: Vec<i16> = (0..2400)
        .map(|n| ((n as f32 * 0.05).sin() * 8000.0) as i16)
        .collect();
    let chunk = pcm(&tone);
    let mut turn = vec![GeminiLive::audio(&chunk), GeminiLive::audio(&chunk)];
    turn.extend(GeminiLive::text_turn("", 4, 2));
    let upstream = MockUpstream::with_script(GeminiLive::new().reply(Trigger::AudioChunk(2), turn))
        .await
        .unwrap();
    let gateway = gateway(&upstream).await;
    let mut client = open(&gateway, MODEL).await;
    let update = json!({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcmu"}},
        "output": {"format": {"type": "audio/pcmu"}}}}});
    send_text(&mut client, &update.to_string()).await;
    // 20 ms of μ-law each: full-scale positive and negative samples.
    let ulaw: Vec<u8> = [0x80u8, 0x00].repeat(80);
    send_text(&mut client, &append(&BASE64.encode(&ulaw))).await;
    send_text(&mut client, &append(&BASE64.encode(&ulaw))).await;
    let (events, close) = read_until(&mut client, is_done).await;
    assert_eq!(close, None);
    let updated = events
        .iter()
        .rfind(|event| event["type"] == "session.updated")
        .expect("session.updated");
    assert_eq!(
        updated["session"]["audio"]["input"]["format"],
        json!({"type": "audio/pcmu"})
    );
    assert_eq!(
        updated["session"]["audio"]["output"]["format"],
        json!({"type": "audio/pcmu"})
    );
    let deltas: Vec<Vec<u8>> = events
        .iter()
        .filter(|event| event["type"] == "response.output_audio.delta")
        .map(|event| {
            BASE64
                .decode(event["delta"].as_str().unwrap().as_bytes())
                .unwrap()
        })
        .collect();
    // One μ-law byte per 8 kHz sample, a third of the 24 kHz samples. The
    // turn's own 4-sample chunk is less than the resampler's 10 ms block:
    // held, not sent as an empty delta.
    assert_eq!(deltas.len(), 2, "{events:?}");
    // The first is short of the resampling filter's delay (under 2 ms).
    assert!((784..800).contains(&deltas[0].len()), "{}", deltas[0].len());
    assert_eq!(deltas[1].len(), 800);
    assert!(
        deltas[1].iter().any(|&byte| byte != 0xFF),
        "the tone is heard, not silence"
    );

    let audio: Vec<Value> = received(&upstream)
        .into_iter()
        .filter_map(|message| message.pointer("/realtimeInput/audio").cloned())
        .collect();
    assert_eq!(audio.len(), 2);
    for chunk in &audio {
        // Gemini takes any rate it is told: 8 kHz PCM16, decoded from μ-law.
        assert_eq!(chunk["mimeType"], "audio/pcm;rate=8000");
        let bytes = BASE64
            .decode(chunk["data"].as_str().unwrap().as_bytes())
            .unwrap();
        assert_eq!(bytes.len(), 320, "160 samples of 16 bits");
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        assert_eq!(&samples[..2], [32124, -32124]);
    }
}

#[tokio::test]
async fn parallel_tool_calls_with_outputs_and_a_cancelled_call() {
    let script = GeminiLive::new()
        .reply(
            Trigger::AudioChunk(1),
            [
                GeminiLive::tool_call([
                    ("call-1", "get_weather", json!({"city": "SF"})),
                    ("call-2", "get_weather", json!({"city": "Paris"})),
                    ("call-3", "get_time", json!({"zone": "CET"})),
                ]),
                // The user spoke over the third call: Gemini withdraws it.
                GeminiLive::tool_call_cancellation(["call-3"]),
                Step::Send(json!({"serverContent": {"turnComplete": true}})),
            ],
        )
        .reply(Trigger::ToolResponse, [])
        .reply(
            Trigger::ToolResponse,
            GeminiLive::text_turn("Sunny in both.", 9, 4),
        );
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let gateway = gateway(&upstream).await;
    let mut client = open(&gateway, MODEL).await;
    let function =
        |name: &str| json!({"type": "function", "name": name, "parameters": {"type": "object"}});
    let tools = json!({"type": "session.update", "session": {"type": "realtime",
        "tools": [function("get_weather"), function("get_time")]}});
    send_text(&mut client, &tools.to_string()).await;
    send_text(&mut client, &append("AAAA")).await;
    let (events, close) = read_until(&mut client, is_done).await;
    assert_eq!(close, None);
    let response = &events.last().unwrap()["response"];
    assert_eq!(response["status"], "completed");
    let calls: Vec<(&str, &str, &str)> = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item["type"], "function_call");
            (
                item["call_id"].as_str().unwrap(),
                item["name"].as_str().unwrap(),
                item["arguments"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("call-1", "get_weather", r#"{"city":"SF"}"#),
            ("call-2", "get_weather", r#"{"city":"Paris"}"#),
            ("call-3", "get_time", r#"{"zone":"CET"}"#),
        ]
    );
    // Each call streams as its own item, added before its arguments are done.
    for (index, call_id) in ["call-1", "call-2", "call-3"].iter().enumerate() {
        let position = |kind: &str| {
            events
                .iter()
                .position(|event| {
                    event["type"] == kind
                        && (event["item"]["call_id"] == *call_id || event["call_id"] == *call_id)
                })
                .unwrap_or_else(|| panic!("{kind} for {call_id}: {events:?}"))
        };
        let added = position("response.output_item.added");
        let arguments = position("response.function_call_arguments.done");
        let done = position("response.output_item.done");
        assert!(added < arguments && arguments < done, "{call_id}");
        assert_eq!(events[added]["output_index"], index);
    }

    // The late answer to the withdrawn call first, then the other two.
    let output = |call_id: &str, output: &str| {
        json!({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call_id, "output": output}})
        .to_string()
    };
    send_text(&mut client, &output("call-3", r#"{"time":"12:00"}"#)).await;
    send_text(&mut client, &output("call-1", r#"{"sky":"sunny"}"#)).await;
    send_text(&mut client, &output("call-2", r#"{"sky":"sunny"}"#)).await;
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    let (events, close) = read_until(&mut client, is_done).await;
    assert_eq!(close, None);
    assert!(
        events.iter().all(|event| event["type"] != "error"),
        "{events:?}"
    );
    let acknowledged: Vec<&str> = events
        .iter()
        .filter(|event| event["type"] == "conversation.item.done")
        .map(|event| event["item"]["call_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(acknowledged[..3], ["call-3", "call-1", "call-2"]);
    assert_eq!(
        events.last().unwrap()["response"]["output"][0]["content"][0]["transcript"],
        "Sunny in both."
    );
    let answered: Vec<Value> = received(&upstream)
        .into_iter()
        .filter_map(|message| message.get("toolResponse").cloned())
        .collect();
    assert_eq!(
        answered,
        [
            json!({"functionResponses": [{"id": "call-1", "name": "get_weather", "response": {"sky": "sunny"}}]}),
            json!({"functionResponses": [{"id": "call-2", "name": "get_weather", "response": {"sky": "sunny"}}]}),
        ],
        "no answer to the cancelled call reaches Gemini"
    );
}

#[tokio::test]
async fn a_vertex_resumption_dials_with_a_fresh_token() {
    let endpoint = TokenEndpoint::start().await.unwrap();
    // Tokens that expire a second after they are granted.
    endpoint.set_expires_in(1);
    let mut key: Value =
        serde_json::from_str(include_str!("fixtures/service-account.json")).unwrap();
    key["token_uri"] = endpoint.url().into();
    let account = ServiceAccount::from_json(&key.to_string())
        .unwrap()
        .refresh_before(Duration::ZERO);
    let upstream = MockUpstream::with_script(going_away_once()).await.unwrap();
    let vertex = Vertex::new(
        "test-project",
        "us-central1",
        VertexCredential::ServiceAccount(account.clone()),
    )
    .unwrap()
    .base_url(&format!("http://{}", upstream.addr()))
    .unwrap();
    let gateway = serve_axum(RealtimeLayer::new(Providers::new().with("vertex", vertex))).await;
    let mut client = open(&gateway, "vertex/gemini-live-2.5-flash").await;
    // 20 ms of 24 kHz PCM: Vertex hears it resampled to 16 kHz.
    let speech = pcm(&[0; 480]);
    send_text(&mut client, &say("Hello")).await;
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    let (first, _) = read_until(&mut client, is_done).await;
    // The session's token expires while it talks.
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while account.cached_token().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the token expires");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send_text(&mut client, &append(&speech)).await;
    resumed_unheard(&mut client, &upstream).await;
    send_text(&mut client, &append(&speech)).await;
    answered_after_resumption(&mut client, &first).await;
    let requests = upstream.requests();
    let bearer = |n: usize| {
        requests[n].headers["authorization"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(bearer(0), "Bearer token-1");
    assert_eq!(
        bearer(1),
        format!("Bearer token-{}", endpoint.issued()),
        "the resumption dialled with the newest token"
    );
    assert_ne!(bearer(0), bearer(1));
    assert!(
        requests[1]
            .path
            .ends_with("LlmBidiService/BidiGenerateContent"),
        "{}",
        requests[1].path
    );
    let setups: Vec<Value> = received(&upstream)
        .into_iter()
        .filter(|message| message.get("setup").is_some())
        .collect();
    assert_eq!(
        setups[1]["setup"]["model"],
        "projects/test-project/locations/us-central1/publishers/google/models/gemini-live-2.5-flash"
    );
    assert_eq!(
        setups[1]["setup"]["sessionResumption"]["handle"],
        "handle-sess_mock000001"
    );
}

/// The research's close table, row by row, through the layer: what Gemini
/// does after the `101`, and what the client gets. (The `goAway` row, a
/// failed resumption, is `a_failed_resumption_is_an_error_event_and_a_close`.)
#[tokio::test]
async fn each_gemini_close_reaches_the_client_per_the_close_table() {
    struct Row {
        upstream: &'static str,
        /// `None`: the connection drops without a close frame (1006).
        code: Option<u16>,
        reason: &'static str,
        /// Closed in answer to `setup`, before `setupComplete`.
        during_setup: bool,
        /// The `error` event's type and code, if one is due.
        error: Option<(&'static str, &'static str)>,
        close: u16,
    }
    let rows = [
        Row {
            upstream: "1007 during setup",
            code: Some(1007),
            reason: "Request contains an invalid argument.",
            during_setup: true,
            error: Some(("invalid_request_error", "invalid_session_config")),
            close: 1008,
        },
        Row {
            upstream: "1007 after setup",
            code: Some(1007),
            reason: "Request contains an invalid argument.",
            during_setup: false,
            error: Some(("invalid_request_error", "invalid_request")),
            close: 1008,
        },
        Row {
            upstream: "1008 unknown model",
            code: Some(1008),
            reason: "models/x is not found for API version v1, or is not supported for bidiGenerateContent",
            during_setup: true,
            error: Some(("invalid_request_error", "model_not_found")),
            close: 1008,
        },
        Row {
            upstream: "1008 other policy",
            code: Some(1008),
            reason: "Requested entity was not permitted",
            during_setup: false,
            error: Some(("invalid_request_error", "policy_violation")),
            close: 1008,
        },
        Row {
            upstream: "1011 internal",
            code: Some(1011),
            reason: "Internal error occurred.",
            during_setup: false,
            error: Some(("server_error", "upstream_error")),
            close: 1011,
        },
        Row {
            upstream: "1011 unavailable, with a key in the reason",
            code: Some(1011),
            reason: "The service is currently unavailable. wss://h/ws?key=AIza-test-SECRET",
            during_setup: false,
            error: Some(("server_error", "upstream_error")),
            close: 1011,
        },
        Row {
            upstream: "abnormal drop (1006)",
            code: None,
            reason: "",
            during_setup: false,
            error: Some(("server_error", "upstream_error")),
            close: 1011,
        },
        Row {
            upstream: "1000",
            code: Some(1000),
            reason: "",
            during_setup: false,
            error: None,
            close: 1000,
        },
    ];
    for row in rows {
        let name = row.upstream;
        let upstream = if row.during_setup {
            let (code, reason) = (row.code.unwrap(), row.reason);
            MockUpstream::with_script(move |mut session: UpstreamSession| async move {
                let _setup = session.recv().await;
                session.close(code, reason).await;
            })
            .await
        } else {
            let mut steps = vec![GeminiLive::audio("AQAD")];
            steps.push(match row.code {
                Some(code) => Step::Close(code, row.reason.into()),
                None => Step::Pause(Duration::from_secs(3600)),
            });
            MockUpstream::with_script(GeminiLive::new().reply(Trigger::AudioChunk(1), steps)).await
        }
        .unwrap();
        let gateway = gateway(&upstream).await;
        let mut client = open(&gateway, MODEL).await;
        if row.during_setup {
            send_text(&mut client, &say("Hello")).await;
        } else {
            send_text(&mut client, &append("AAAA")).await;
        }
        if row.code.is_none() {
            let heard = upstream
                .wait_until(PROMPTLY, |upstream| upstream.received().len() == 2)
                .await;
            assert!(heard, "{name}: the audio reached Gemini");
            upstream.abort_sessions();
        }
        let (events, close) = read_until(&mut client, |_| false).await;
        assert_eq!(close, Some(row.close), "{name}: {events:?}");
        let errors: Vec<&Value> = events
            .iter()
            .filter(|event| event["type"] == "error")
            .collect();
        match row.error {
            Some((kind, code)) => {
                assert_eq!(errors.len(), 1, "{name}: {events:?}");
                assert_eq!(errors[0]["error"]["type"], kind, "{name}");
                assert_eq!(errors[0]["error"]["code"], code, "{name}");
            }
            None => {
                assert!(errors.is_empty(), "{name}: {events:?}");
                let done = events
                    .iter()
                    .rfind(|event| is_done(event))
                    .unwrap_or_else(|| panic!("{name}: the open response ends: {events:?}"));
                assert_eq!(done["response"]["status"], "incomplete", "{name}");
            }
        }
        let text = serde_json::to_string(&events).unwrap();
        assert!(!text.contains("SECRET"), "{name}: {text}");
    }
}

/// Refusals before the `101`: an HTTP status and an OpenAI-shaped body, as
/// for every provider (the gateway's own key being refused is a 502: the
/// client's credentials were fine).
#[tokio::test]
async fn gemini_handshake_refusals_are_http_statuses() {
    for (status, body, expected, code) in [
        (
            401,
            r#"{"error":{"code":401,"message":"API key not valid. key=AIza-test-SECRET"}}"#,
            502,
            "upstream_auth_failed",
        ),
        (403, "PERMISSION_DENIED", 502, "upstream_auth_failed"),
        (
            404,
            r#"{"error":{"code":404,"message":"models/x is not found"}}"#,
            404,
            "upstream_not_found",
        ),
        (429, "RESOURCE_EXHAUSTED", 429, "upstream_rate_limited"),
        (500, "INTERNAL", 502, "upstream_unavailable"),
        (503, "UNAVAILABLE", 502, "upstream_unavailable"),
    ] {
        let upstream = MockUpstream::builder()
            .handshake(Handshake::reject(status, body))
            .start()
            .await
            .unwrap();
        let gateway = gateway(&upstream).await;
        let (got, _, json) = refused(&gateway.url(&format!("?model={MODEL}")), &[]).await;
        assert_eq!(got, expected, "{status}: {json}");
        assert_eq!(json["error"]["code"], code, "{status}: {json}");
        assert!(json["error"]["type"].is_string(), "{status}: {json}");
        assert!(!json.to_string().contains("SECRET"), "{status}: {json}");
        assert_eq!(upstream.connections(), 1, "{status}");
    }
}
