//! The translator against the message shapes in Google's SDK types and
//! documented captures (each test names its fixture).

use serde_json::{Value, json};

use super::*;

const MODEL: &str = "models/gemini-3.1-flash-live-preview";

fn fresh() -> GeminiTranslator {
    GeminiTranslator::new(GeminiConfig::new(Backend::GeminiApi, MODEL))
}

fn client(translator: &mut GeminiTranslator, event: Value) -> Vec<Output> {
    translator.client_event(event.to_string().as_bytes())
}

/// Gemini's way: a binary frame of pretty-printed JSON.
fn gemini(translator: &mut GeminiTranslator, message: Value) -> Vec<Output> {
    let pretty = serde_json::to_string_pretty(&message).unwrap();
    translator.upstream_message(pretty.as_bytes())
}

fn to_client(outputs: &[Output]) -> Vec<Value> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Client(event) => {
                Some(serde_json::from_str(event).expect("client events are JSON"))
            }
            _ => None,
        })
        .collect()
}

fn to_upstream(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Upstream(message) => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn controls(outputs: &[Output]) -> Vec<Control> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Control(control) => Some(control.clone()),
            _ => None,
        })
        .collect()
}

/// Gemini reads JSON, not bytes: compares the messages as JSON values.
fn assert_json(sent: &[String], expected: &[&str]) {
    let parse = |text: &str| serde_json::from_str::<Value>(text).expect("JSON");
    let sent: Vec<Value> = sent.iter().map(|text| parse(text)).collect();
    let expected: Vec<Value> = expected.iter().map(|text| parse(text)).collect();
    assert_eq!(sent, expected);
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect()
}

fn append(audio: &str) -> Value {
    json!({"type": "input_audio_buffer.append", "audio": audio})
}

/// A translator past `setupComplete`, with `updates` applied first.
fn live_with(mut translator: GeminiTranslator, updates: &[Value]) -> GeminiTranslator {
    translator.start();
    for update in updates {
        client(
            &mut translator,
            json!({"type": "session.update", "session": update}),
        );
    }
    translator.configuration_timeout();
    gemini(&mut translator, json!({"setupComplete": {}}));
    translator
}

fn live() -> GeminiTranslator {
    live_with(fresh(), &[])
}

fn audio_part(data: &str) -> Value {
    json!({"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}})
}

#[test]
fn session_created_at_once_in_the_ga_shape() {
    let mut translator = fresh();
    let events = to_client(&translator.start());
    assert_eq!(types(&events), ["session.created"]);
    let session = &events[0]["session"];
    assert_eq!(session["type"], "realtime");
    assert_eq!(session["object"], "realtime.session");
    assert!(session["id"].as_str().unwrap().starts_with("sess_"));
    assert_eq!(session["model"], "gemini-3.1-flash-live-preview");
    assert_eq!(
        session["audio"]["input"]["format"],
        json!({"type": "audio/pcm", "rate": 24000})
    );
}

#[test]
fn every_update_before_content_is_merged_into_one_setup() {
    // Fixture: the first client→Gemini message of §13, byte for byte.
    let mut translator = fresh();
    translator.start();
    let updates = [
        json!({"instructions": "You are terse.", "audio": {"output": {"voice": "coral"}}}),
        json!({"tools": [{"type": "function", "name": "get_weather", "description": "Get weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}),
        json!({"max_output_tokens": 1024, "audio": {"input": {"transcription": {"model": "whisper-1"}}}}),
    ];
    for update in updates {
        let outputs = client(
            &mut translator,
            json!({"type": "session.update", "session": update}),
        );
        assert!(
            to_upstream(&outputs).is_empty(),
            "nothing upstream before content"
        );
        assert_eq!(types(&to_client(&outputs)), ["session.updated"]);
    }
    let outputs = client(&mut translator, append("AAAA"));
    assert_json(
        &to_upstream(&outputs),
        &[
            r#"{"setup":{"model":"models/gemini-3.1-flash-live-preview","generationConfig":{"responseModalities":["AUDIO"],"speechConfig":{"voiceConfig":{"prebuiltVoiceConfig":{"voiceName":"Aoede"}}},"maxOutputTokens":1024},"systemInstruction":{"parts":[{"text":"You are terse."}]},"tools":[{"functionDeclarations":[{"name":"get_weather","description":"Get weather","parametersJsonSchema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]}],"realtimeInputConfig":{"automaticActivityDetection":{"disabled":false,"prefixPaddingMs":300,"silenceDurationMs":500}},"inputAudioTranscription":{},"outputAudioTranscription":{},"sessionResumption":{},"contextWindowCompression":{"slidingWindow":{}}}}"#,
        ],
    );
    // The audio waits for setupComplete, then goes spliced.
    let outputs = gemini(&mut translator, json!({"setupComplete": {}}));
    assert_eq!(
        to_upstream(&outputs),
        [r#"{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=24000","data":"AAAA"}}}"#]
    );
    let events = to_client(&outputs);
    assert_eq!(
        types(&events),
        ["session.updated"],
        "never a second session.created"
    );
    assert_eq!(events[0]["session"]["instructions"], "You are terse.");
}

#[test]
fn content_first_gets_the_default_setup_and_odd_values_are_left_out() {
    let mut translator = fresh();
    translator.start();
    client(
        &mut translator,
        json!({"type": "session.update", "session": {"max_output_tokens": "inf", "tool_choice": "none",
        "tools": [{"type": "function", "name": "f"}], "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}}),
    );
    let outputs = client(
        &mut translator,
        json!({"type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}}),
    );
    let setup: Value = serde_json::from_str(&to_upstream(&outputs)[0]).unwrap();
    let setup = &setup["setup"];
    assert!(
        setup["generationConfig"].get("maxOutputTokens").is_none(),
        "\"inf\" closes Gemini with 1007"
    );
    assert!(setup.get("tools").is_none(), "tool_choice none");
    assert!(
        setup.get("realtimeInputConfig").is_none(),
        "semantic_vad keeps Gemini's defaults"
    );
    assert!(
        setup["generationConfig"].get("speechConfig").is_none(),
        "no voice chosen"
    );
    let outputs = gemini(&mut translator, json!({"setupComplete": {}}));
    assert_json(
        &to_upstream(&outputs),
        &[
            r#"{"clientContent":{"turns":[{"role":"user","parts":[{"text":"hello"}]}],"turnComplete":false}}"#,
        ],
    );
    assert_eq!(
        types(&to_client(&outputs)),
        [
            "session.updated",
            "conversation.item.added",
            "conversation.item.done"
        ]
    );
    let outputs = client(&mut translator, json!({"type": "response.create"}));
    assert_eq!(
        to_upstream(&outputs),
        [r#"{"clientContent":{"turnComplete":true}}"#]
    );
}

#[test]
fn held_input_is_bounded_and_clear_drops_held_audio() {
    let mut translator = fresh();
    translator.start();
    client(&mut translator, append("AAAA"));
    client(&mut translator, append("BBBB"));
    client(&mut translator, json!({"type": "input_audio_buffer.clear"}));
    client(&mut translator, append("CCCC"));
    let outputs = gemini(&mut translator, json!({"setupComplete": {}}));
    let sent = to_upstream(&outputs);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("CCCC"));
    assert_eq!(
        types(&to_client(&outputs)),
        ["session.updated", "input_audio_buffer.cleared"]
    );

    let mut small =
        GeminiTranslator::new(GeminiConfig::new(Backend::GeminiApi, MODEL).max_held(2, 1 << 20));
    small.start();
    client(&mut small, append("AAAA"));
    client(&mut small, append("AAAA"));
    let outputs = client(&mut small, append("AAAA"));
    let events = to_client(&outputs);
    assert_eq!(events[0]["error"]["code"], "upstream_not_ready");
    assert!(matches!(
        &controls(&outputs)[..],
        [Control::Close { code: 1011, .. }]
    ));
    assert!(small.is_closed());
    assert!(client(&mut small, append("AAAA")).is_empty());
}

#[test]
fn an_audio_turn_with_transcripts_and_usage() {
    // Fixtures 2, 3, 4, 5, 6 and 7.
    let mut translator = live();
    client(&mut translator, append("AAAA"));
    let mut events = Vec::new();
    for message in [
        json!({"serverContent": {"inputTranscription": {"text": "hello "}}}),
        json!({"serverContent": {"inputTranscription": {"text": "there", "finished": true}}}),
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQADAAQAEgA=")]}}}),
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD"), audio_part("BAUG")]}}}),
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQADAAQAEgA=")]}, "outputTranscription": {"text": "One, two,"}}}),
        json!({"serverContent": {"generationComplete": true}}),
        json!({"serverContent": {"turnComplete": true}, "usageMetadata": {"promptTokenCount": 145, "responseTokenCount": 45, "totalTokenCount": 190}}),
    ] {
        let outputs = gemini(&mut translator, message);
        assert!(to_upstream(&outputs).is_empty());
        events.extend(to_client(&outputs));
    }
    assert_eq!(
        types(&events),
        [
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
            "response.output_audio.delta",
            "response.output_audio.delta",
            "response.output_audio.delta",
            "response.output_audio.delta",
            "response.output_audio_transcript.delta",
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
    );
    let user_item = events[2]["item"]["id"].as_str().unwrap();
    assert_eq!(events[5]["item_id"], user_item);
    assert_eq!(events[5]["transcript"], "hello there");
    let response_id = events[6]["response"]["id"].as_str().unwrap();
    let item_id = events[7]["item"]["id"].as_str().unwrap();
    assert_eq!(events[8]["previous_item_id"], user_item);
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .collect();
    assert_eq!(
        deltas
            .iter()
            .map(|e| e["delta"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["AQADAAQAEgA=", "AQAD", "BAUG", "AQADAAQAEgA="],
        "one delta per part, data verbatim"
    );
    for event in &events[7..] {
        if let Some(id) = event.get("response_id") {
            assert_eq!(id, response_id);
        }
        if let Some(id) = event.get("item_id") {
            assert_eq!(id, item_id);
        }
    }
    let done = &events[20]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["output"][0]["content"][0],
        json!({"type": "output_audio", "transcript": "One, two,"})
    );
    assert_eq!(done["usage"]["input_tokens"], 145);
    assert_eq!(done["usage"]["output_tokens"], 45);
    assert_eq!(done["usage"]["total_tokens"], 190);
    let event_ids: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(event_ids.len(), events.len(), "every event_id is unique");
}

#[test]
fn the_last_chunk_and_the_end_in_one_frame() {
    // Fixture 8.
    let mut translator = live();
    let outputs = gemini(
        &mut translator,
        json!({"serverContent": {"turnComplete": true,
        "modelTurn": {"parts": [{"text": "final words"}]}, "outputTranscription": {"text": "final words"}}}),
    );
    let events = to_client(&outputs);
    let kinds = types(&events);
    let delta = kinds
        .iter()
        .position(|k| *k == "response.output_audio_transcript.delta")
        .unwrap();
    assert_eq!(kinds.last(), Some(&"response.done"));
    assert!(delta < kinds.len() - 1);
    assert_eq!(
        events.last().unwrap()["response"]["output"][0]["content"][0]["transcript"],
        "final words"
    );
    assert!(
        !kinds.contains(&"response.output_text.delta"),
        "text parts of an audio response are not spoken"
    );
}

#[test]
fn barge_in_is_speech_started_then_a_cancelled_response() {
    // Fixture 12: interrupted, then turnComplete, no generationComplete.
    let mut translator = live();
    gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD")]}}}),
    );
    client(&mut translator, append("AAAAAAAA"));
    let mut events = to_client(&gemini(
        &mut translator,
        json!({"serverContent": {"interrupted": true}}),
    ));
    events.extend(to_client(&gemini(
        &mut translator,
        json!({"serverContent": {"turnComplete": true}}),
    )));
    let kinds = types(&events);
    assert_eq!(kinds.first(), Some(&"response.output_audio.done"));
    let started = kinds
        .iter()
        .position(|k| *k == "input_audio_buffer.speech_started")
        .unwrap();
    let done = kinds.iter().position(|k| *k == "response.done").unwrap();
    assert!(started < done);
    let response = &events[done]["response"];
    assert_eq!(response["status"], "cancelled");
    assert_eq!(
        response["status_details"],
        json!({"type": "cancelled", "reason": "turn_detected"})
    );
    assert_eq!(response["output"][0]["status"], "incomplete");
}

#[test]
fn parallel_tool_calls_and_their_outputs() {
    // Fixtures 14, 15 (usage in the same frame) and 16 (a trailing bare turnComplete).
    let mut translator = live();
    let outputs = gemini(
        &mut translator,
        json!({
            "toolCall": {"functionCalls": [
                {"id": "call-1", "name": "get_weather", "args": {"city": "SF"}},
                {"id": "call-2", "name": "get_time", "args": {"tz": "UTC"}},
            ]},
            "usageMetadata": {"promptTokenCount": 10, "responseTokenCount": 4, "totalTokenCount": 14},
        }),
    );
    let events = to_client(&outputs);
    let items: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.done")
        .map(|e| &e["item"])
        .collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["type"], "function_call");
    assert_eq!(items[0]["call_id"], "call-1");
    assert_eq!(items[0]["arguments"], r#"{"city":"SF"}"#);
    assert_eq!(items[1]["name"], "get_time");
    let added = types(&events)
        .iter()
        .position(|k| *k == "conversation.item.added")
        .unwrap();
    let arguments_done = types(&events)
        .iter()
        .position(|k| *k == "response.function_call_arguments.done")
        .unwrap();
    assert!(
        added < arguments_done,
        "pipecat registers the call at conversation.item.added"
    );
    let done = events.last().unwrap();
    assert_eq!(done["type"], "response.done");
    assert_eq!(done["response"]["output"].as_array().unwrap().len(), 2);
    assert_eq!(done["response"]["usage"]["total_tokens"], 14);
    // The trailing bare turnComplete ends nothing; its usage waits.
    let outputs = gemini(
        &mut translator,
        json!({"serverContent": {"turnComplete": true}, "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}),
    );
    assert!(to_client(&outputs).is_empty());

    let output = |call_id: &str, output: &str| json!({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": call_id, "output": output}});
    let outputs = client(&mut translator, output("call-1", r#"{"tempC":21}"#));
    assert_eq!(
        to_upstream(&outputs),
        [
            r#"{"toolResponse":{"functionResponses":[{"id":"call-1","name":"get_weather","response":{"tempC":21}}]}}"#
        ]
    );
    assert_eq!(
        types(&to_client(&outputs)),
        ["conversation.item.added", "conversation.item.done"]
    );
    let outputs = client(&mut translator, output("call-2", "plain text"));
    assert_eq!(
        to_upstream(&outputs),
        [
            r#"{"toolResponse":{"functionResponses":[{"id":"call-2","name":"get_time","response":{"result":"plain text"}}]}}"#
        ]
    );
    // response.create after a tool response is Gemini's own business.
    assert!(to_upstream(&client(&mut translator, json!({"type": "response.create"}))).is_empty());
    // The next response carries the pending usage.
    let events = to_client(&gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD")]}, "turnComplete": true}}),
    ));
    assert_eq!(
        events.last().unwrap()["response"]["usage"]["input_tokens"],
        5
    );
    let events = to_client(&client(&mut translator, output("nope", "x")));
    assert_eq!(events[0]["error"]["code"], "unknown_call_id");
}

#[test]
fn a_cancelled_call_gets_no_late_answer_and_vertex_gets_no_id() {
    // Fixtures 13 and 17.
    let mut translator = live_with(
        GeminiTranslator::new(GeminiConfig::new(
            Backend::Vertex,
            "projects/p/locations/l/publishers/google/models/m",
        )),
        &[],
    );
    gemini(
        &mut translator,
        json!({"toolCall": {"functionCalls": [
            {"id": "function-call-6216", "name": "ask_momo", "args": {"request": "Bugün takvimimde ne var?"}},
            {"id": "function-call-7", "name": "ask_momo", "args": {}},
        ]}}),
    );
    gemini(
        &mut translator,
        json!({"toolCallCancellation": {"ids": ["function-call-6216"]}}),
    );
    let outputs = client(
        &mut translator,
        json!({"type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "function-call-6216", "output": "{}"}}),
    );
    assert!(to_upstream(&outputs).is_empty());
    assert_eq!(
        types(&to_client(&outputs)),
        ["conversation.item.added", "conversation.item.done"]
    );
    let outputs = client(
        &mut translator,
        json!({"type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "function-call-7", "output": "{\"ok\":true}"}}),
    );
    assert_eq!(
        to_upstream(&outputs),
        [r#"{"toolResponse":{"functionResponses":[{"name":"ask_momo","response":{"ok":true}}]}}"#]
    );
}

#[test]
fn go_away_resumes_at_the_next_safe_point_with_the_latest_handle() {
    // Fixtures 18 and 19.
    let mut translator = live();
    let outputs = gemini(
        &mut translator,
        json!({"sessionResumptionUpdate": {"newHandle": "H1", "resumable": true}}),
    );
    assert_eq!(controls(&outputs), [Control::ResumptionHandle("H1".into())]);
    assert!(
        controls(&gemini(
            &mut translator,
            json!({"sessionResumptionUpdate": {"resumable": false}})
        ))
        .is_empty()
    );
    gemini(
        &mut translator,
        json!({"session_resumption_update": {"new_handle": "H2", "resumable": true, "lastConsumedClientMessageIndex": "42"}}),
    );
    // Mid-response: wait for the end of the turn.
    gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD")]}}}),
    );
    let outputs = gemini(&mut translator, json!({"goAway": {"timeLeft": "30s"}}));
    assert_eq!(
        controls(&outputs),
        [Control::GoAway {
            time_left: Some(Duration::from_secs(30))
        }]
    );
    let outputs = gemini(
        &mut translator,
        json!({"serverContent": {"turnComplete": true}}),
    );
    let setup = match &controls(&outputs)[..] {
        [Control::Reconnect { setup }] => setup.clone(),
        other => panic!("{other:?}"),
    };
    let setup: Value = serde_json::from_str(&setup).unwrap();
    assert_eq!(setup["setup"]["sessionResumption"], json!({"handle": "H2"}));
    assert_eq!(setup["setup"]["model"], MODEL);
    // Client input waits for the new connection, then flows in order.
    assert!(client(&mut translator, append("AAAA")).is_empty());
    assert!(client(&mut translator, append("BBBB")).is_empty());
    let outputs = gemini(&mut translator, json!({"setupComplete": {}}));
    let sent = to_upstream(&outputs);
    assert!(sent[0].contains("AAAA") && sent[1].contains("BBBB"));
    assert!(to_client(&outputs).is_empty(), "the client notices nothing");
    // A failed resumption ends the session with a retryable code.
    let outputs = translator.resumption_failed();
    assert_eq!(
        to_client(&outputs)[0]["error"]["code"],
        "session_resumption_failed"
    );
    assert!(matches!(
        &controls(&outputs)[..],
        [Control::Close { code: 1011, .. }]
    ));
}

#[test]
fn a_tool_answer_after_go_away_goes_out_before_the_resumption() {
    let mut translator = live();
    gemini(
        &mut translator,
        json!({"sessionResumptionUpdate": {"newHandle": "H1", "resumable": true}}),
    );
    gemini(
        &mut translator,
        json!({"toolCall": {"functionCalls": [{"id": "a", "name": "f", "args": {}}]}}),
    );
    gemini(&mut translator, json!({"goAway": {"timeLeft": "30s"}}));
    let outputs = client(
        &mut translator,
        json!({"type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "a", "output": "{}"}}),
    );
    let sent = to_upstream(&outputs);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with(r#"{"toolResponse""#));
    assert!(
        controls(&outputs).is_empty(),
        "Gemini answers the tool on this connection: no resumption yet"
    );
    // The answer's turn ends: now it resumes.
    gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [{"text": "done"}]}}}),
    );
    let outputs = gemini(
        &mut translator,
        json!({"serverContent": {"turnComplete": true}}),
    );
    assert!(matches!(
        &controls(&outputs)[..],
        [Control::Reconnect { .. }]
    ));
}

#[test]
fn go_away_without_a_handle_only_tells_the_caller() {
    let mut translator = live();
    let outputs = gemini(&mut translator, json!({"goAway": {}}));
    assert_eq!(controls(&outputs), [Control::GoAway { time_left: None }]);
    assert_eq!(
        to_upstream(&client(&mut translator, append("AAAA"))).len(),
        1
    );
}

#[test]
fn voice_activity_in_both_spellings() {
    // Fixture 20.
    let mut translator = live();
    let events = to_client(&gemini(
        &mut translator,
        json!({"voiceActivity": {"voiceActivityType": "ACTIVITY_START", "audioOffset": "1.250s"}}),
    ));
    assert_eq!(events[0]["type"], "input_audio_buffer.speech_started");
    assert_eq!(events[0]["audio_start_ms"], 1250);
    let events = to_client(&gemini(
        &mut translator,
        json!({"voiceActivity": {"type": "ACTIVITY_END", "audioOffset": "2.1s"}}),
    ));
    assert_eq!(events[0]["type"], "input_audio_buffer.speech_stopped");
    assert_eq!(events[0]["audio_end_ms"], 2100);
}

#[test]
fn safety_ends_incomplete_and_waiting_is_silent() {
    // Fixtures 21 and 22.
    let mut translator = live();
    assert!(
        gemini(
            &mut translator,
            json!({"serverContent": {"waitingForInput": true}})
        )
        .is_empty()
    );
    gemini(
        &mut translator,
        json!({"serverContent": {"outputTranscription": {"text": "I"}}}),
    );
    let events = to_client(&gemini(
        &mut translator,
        json!({"serverContent": {"turnComplete": true,
        "turnCompleteReason": "PROHIBITED_INPUT_CONTENT", "interactionStatus": "IDLE"}}),
    ));
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["status"], "incomplete");
    assert_eq!(done["status_details"]["reason"], "content_filter");
}

#[test]
fn close_codes_become_error_events_and_client_closes() {
    // Fixture 23, and a normal close mid-response.
    let cases = [
        (
            Some(1007),
            "Request contains an invalid argument.",
            "invalid_request",
            1008,
        ),
        (
            Some(1008),
            "models/x is not found for API version v1beta, or is not supported for bidiGenerateContent",
            "model_not_found",
            1008,
        ),
        (
            Some(1011),
            "Internal error occurred.",
            "upstream_error",
            1011,
        ),
        (
            Some(1011),
            "The service is currently unavailable.",
            "upstream_error",
            1011,
        ),
        (None, "", "upstream_error", 1011),
    ];
    for (code, reason, error_code, close) in cases {
        let mut translator = live();
        let outputs = translator.upstream_closed(code, reason);
        let events = to_client(&outputs);
        assert_eq!(events[0]["error"]["code"], error_code, "{code:?}");
        match &controls(&outputs)[..] {
            [Control::Close { code, .. }] => assert_eq!(*code, close),
            other => panic!("{other:?}"),
        }
    }
    let mut configuring = fresh();
    configuring.start();
    client(&mut configuring, append("AAAA"));
    let events = to_client(&configuring.upstream_closed(
        Some(1007),
        "Request contains an invalid argument. key=AIzaLEAK",
    ));
    assert_eq!(events[0]["error"]["code"], "invalid_session_config");
    assert!(!events[0].to_string().contains("AIzaLEAK"));

    let mut translator = live();
    gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD")]}}}),
    );
    let outputs = translator.upstream_closed(Some(1000), "");
    let events = to_client(&outputs);
    assert_eq!(events.last().unwrap()["response"]["status"], "incomplete");
    assert!(matches!(
        &controls(&outputs)[..],
        [Control::Close { code: 1000, .. }]
    ));
}

#[test]
fn a_vertex_error_during_setup_ends_the_session() {
    // Fixture 24.
    let mut translator = fresh();
    translator.start();
    client(&mut translator, append("AAAA"));
    let outputs = gemini(
        &mut translator,
        json!({"error": {"code": 400, "message": "Invalid model", "status": "INVALID_ARGUMENT"}}),
    );
    assert_eq!(
        to_client(&outputs)[0]["error"]["type"],
        "invalid_request_error"
    );
    assert!(matches!(
        &controls(&outputs)[..],
        [Control::Close { code: 1008, .. }]
    ));
}

#[test]
fn text_sessions_via_the_transcript_or_natively() {
    let update = json!({"output_modalities": ["text"]});
    let mut translator = fresh();
    translator.start();
    client(
        &mut translator,
        json!({"type": "session.update", "session": update}),
    );
    let setup = to_upstream(&translator.configuration_timeout())[0].clone();
    assert!(
        setup.contains(r#""responseModalities":["AUDIO"]"#)
            && setup.contains("outputAudioTranscription")
    );
    gemini(&mut translator, json!({"setupComplete": {}}));
    let events = to_client(&gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD")]},
        "outputTranscription": {"text": "Hi"}, "turnComplete": true}}),
    ));
    let kinds = types(&events);
    assert!(!kinds.contains(&"response.output_audio.delta"));
    assert!(kinds.contains(&"response.output_text.delta"));
    assert_eq!(
        events.last().unwrap()["response"]["output"][0]["content"][0],
        json!({"type": "output_text", "text": "Hi"})
    );

    let native = GeminiTranslator::new(
        GeminiConfig::new(Backend::GeminiApi, MODEL).text_responses(TextResponses::Native),
    );
    let mut native = live_with(native, &[update]);
    let events = to_client(&gemini(
        &mut native,
        json!({"serverContent": {"modelTurn": {"parts": [{"text": "Hel"}, {"text": "thinking", "thought": true}, {"text": "lo"}]}, "turnComplete": true}}),
    ));
    let deltas: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["Hel", "lo"]);
}

#[test]
fn manual_turns_send_activity_signals() {
    let mut translator = live_with(
        fresh(),
        &[json!({"audio": {"input": {"turn_detection": null}}})],
    );
    let outputs = client(&mut translator, append("AAAA"));
    assert_eq!(
        to_upstream(&outputs),
        [
            r#"{"realtimeInput":{"activityStart":{}}}"#,
            r#"{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=24000","data":"AAAA"}}}"#,
        ]
    );
    assert_eq!(
        to_upstream(&client(&mut translator, append("BBBB"))).len(),
        1
    );
    let outputs = client(
        &mut translator,
        json!({"type": "input_audio_buffer.commit"}),
    );
    assert_eq!(
        to_upstream(&outputs),
        [r#"{"realtimeInput":{"activityEnd":{}}}"#]
    );
    assert_eq!(
        types(&to_client(&outputs)),
        ["input_audio_buffer.committed", "conversation.item.added"]
    );
    let events = to_client(&client(
        &mut translator,
        json!({"type": "input_audio_buffer.commit"}),
    ));
    assert_eq!(
        events[0]["error"]["code"],
        "input_audio_buffer_commit_empty"
    );
}

#[test]
fn response_cancel_interrupts_and_ends_cancelled() {
    let mut translator = live();
    let events = to_client(&client(&mut translator, json!({"type": "response.cancel"})));
    assert_eq!(events[0]["error"]["code"], "response_cancel_not_active");
    gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD")]}}}),
    );
    let outputs = client(
        &mut translator,
        json!({"type": "response.cancel", "event_id": "evt_9"}),
    );
    assert_eq!(
        to_upstream(&outputs),
        [r#"{"clientContent":{"turnComplete":false}}"#]
    );
    let events = to_client(&gemini(
        &mut translator,
        json!({"serverContent": {"interrupted": true, "turnComplete": true}}),
    ));
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["status_details"]["reason"], "client_cancelled");
}

#[test]
fn session_updates_after_setup_apply_or_are_refused_never_dropped() {
    let mut translator = live();
    let events = to_client(&client(
        &mut translator,
        json!({"type": "session.update", "event_id": "evt_1", "session": {"instructions": "Now be verbose."}}),
    ));
    assert_eq!(types(&events), ["error"]);
    assert_eq!(events[0]["error"]["code"], "unsupported_session_update");
    assert_eq!(events[0]["error"]["event_id"], "evt_1");
    // The audio format is the gateway's business: it can change.
    let events = to_client(&client(
        &mut translator,
        json!({"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}}),
    ));
    assert_eq!(types(&events), ["session.updated"]);
    let events = to_client(&client(
        &mut translator,
        json!({"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/opus"}}}}}),
    ));
    assert_eq!(events[0]["error"]["code"], "unsupported_audio_format");
    let mut configuring = fresh();
    let events = to_client(&client(
        &mut configuring,
        json!({"type": "session.update", "session": {
        "audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": false}}},
        "tools": [{"type": "mcp", "server_label": "x"}]}}),
    ));
    assert_eq!(types(&events), ["error", "error", "session.updated"]);
    assert_eq!(events[0]["error"]["code"], "unsupported_turn_detection");
    assert_eq!(events[1]["error"]["code"], "unsupported_tool");
}

#[test]
fn g711_clients_are_decoded_in_and_encoded_out() {
    let mut translator = live_with(
        fresh(),
        &[json!({"audio": {
        "input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcmu"}}}})],
    );
    // 80 μ-law bytes: 10 ms at 8 kHz.
    let ulaw = data_encoding::BASE64.encode(&[0xFF; 80]);
    let sent = to_upstream(&client(&mut translator, append(&ulaw)));
    let message: Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(
        message["realtimeInput"]["audio"]["mimeType"],
        "audio/pcm;rate=8000"
    );
    let pcm = data_encoding::BASE64
        .decode(
            message["realtimeInput"]["audio"]["data"]
                .as_str()
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(pcm, vec![0; 160]);
    // 100 ms of model audio at 24 kHz comes out as 800 G.711 bytes.
    let model_audio = data_encoding::BASE64.encode(&[0; 4800]);
    let events = to_client(&gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part(&model_audio)]}}}),
    ));
    let delta = events
        .iter()
        .find(|e| e["type"] == "response.output_audio.delta")
        .unwrap();
    // Less the resampler's delay (under 2 ms).
    let bytes = data_encoding::BASE64
        .decode(delta["delta"].as_str().unwrap().as_bytes())
        .unwrap()
        .len();
    assert!((784..=800).contains(&bytes), "{bytes}");
}

#[test]
fn vertex_gets_16k_audio_and_the_full_model_name() {
    let model = "projects/p/locations/us-central1/publishers/google/models/gemini-live-2.5-flash";
    let mut translator = GeminiTranslator::new(GeminiConfig::new(Backend::Vertex, model));
    let created = to_client(&translator.start());
    assert_eq!(created[0]["session"]["model"], "gemini-live-2.5-flash");
    let pcm = data_encoding::BASE64.encode(&[0; 960]);
    let setup = to_upstream(&client(&mut translator, append(&pcm)))[0].clone();
    let parsed: Value = serde_json::from_str(&setup).unwrap();
    assert_eq!(parsed["setup"]["model"], model);
    let sent = to_upstream(&gemini(&mut translator, json!({"setupComplete": {}})));
    let message: Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(
        message["realtimeInput"]["audio"]["mimeType"],
        "audio/pcm;rate=16000"
    );
    gemini(
        &mut translator,
        json!({"sessionResumptionUpdate": {"newHandle": "H1", "resumable": true}}),
    );
    let outputs = gemini(&mut translator, json!({"goAway": {"timeLeft": "10s"}}));
    let Some(Control::Reconnect { setup }) = controls(&outputs).pop() else {
        panic!()
    };
    assert!(setup.contains(r#""sessionResumption":{"handle":"H1","transparent":true}"#));
}

#[test]
fn snake_case_messages_and_url_safe_audio() {
    let mut translator = live();
    let events = to_client(&gemini(
        &mut translator,
        json!({
            "server_content": {"model_turn": {"parts": [{"inline_data": {"mime_type": "audio/pcm;rate=24000", "data": "AQ-_"}}]}, "turn_complete": true},
            "usage_metadata": {"prompt_token_count": 3, "response_token_count": 2},
        }),
    ));
    let delta = events
        .iter()
        .find(|e| e["type"] == "response.output_audio.delta")
        .unwrap();
    assert_eq!(delta["delta"], "AQ+/");
    assert_eq!(
        events.last().unwrap()["response"]["usage"]["total_tokens"],
        5
    );
}

#[test]
fn unknown_and_broken_client_events_get_errors() {
    let mut translator = live();
    let events = to_client(&translator.client_event(b"not json"));
    assert_eq!(events[0]["error"]["code"], "invalid_json");
    let events = to_client(&client(
        &mut translator,
        json!({"type": "conversation.item.delete", "item_id": "x"}),
    ));
    assert_eq!(events[0]["error"]["code"], "unsupported_event");
    let events = to_client(&client(&mut translator, json!({"type": "nope"})));
    assert_eq!(events[0]["error"]["code"], "invalid_event");
    let events = to_client(&client(&mut translator, append("not base64!")));
    assert_eq!(events[0]["error"]["code"], "invalid_audio");
    let events = to_client(&client(
        &mut translator,
        json!({"type": "response.create", "response": {"instructions": "x"}}),
    ));
    assert_eq!(events[0]["error"]["code"], "unsupported_response_parameter");
    // Escaped base64 is read properly, not spliced.
    let sent = to_upstream(
        &translator.client_event(br#"{"type":"input_audio_buffer.append","audio":"AA\/A"}"#),
    );
    assert_eq!(
        sent,
        [r#"{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=24000","data":"AA/A"}}}"#]
    );
}

#[test]
fn gemini_frames_never_reach_the_client_raw() {
    let mut translator = live();
    for message in [
        json!({"serverContent": {"groundingMetadata": {"x": 1}}}),
        json!({"somethingNew": {"a": 1}}),
        json!({"toolCall": {}}),
    ] {
        assert!(to_client(&gemini(&mut translator, message)).is_empty());
    }
    assert!(translator.upstream_message(b"\x00\x01 not json").is_empty());
}

#[test]
fn a_cancel_gemini_does_not_answer_ends_on_the_callers_timer() {
    let mut translator = live();
    gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD")]}}}),
    );
    assert!(
        to_client(&translator.cancel_timeout()).is_empty(),
        "nothing to time out yet"
    );
    client(&mut translator, json!({"type": "response.cancel"}));
    let events = to_client(&translator.cancel_timeout());
    assert_eq!(events.last().unwrap()["response"]["status"], "cancelled");
    // Late content of that response is dropped, up to Gemini's end of turn.
    assert!(
        gemini(
            &mut translator,
            json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD")]}}})
        )
        .is_empty()
    );
    assert!(
        gemini(
            &mut translator,
            json!({"serverContent": {"turnComplete": true}})
        )
        .is_empty()
    );
    let events = to_client(&gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("BBBB")]}}}),
    ));
    assert_eq!(
        events[0]["type"], "response.created",
        "the next turn is a new response"
    );
}

#[test]
fn content_waits_until_every_tool_call_is_answered() {
    let mut translator = live();
    gemini(
        &mut translator,
        json!({"toolCall": {"functionCalls": [
        {"id": "a", "name": "f", "args": {}}, {"id": "b", "name": "g", "args": {}}]}}),
    );
    let text = json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "and also"}]}});
    assert!(client(&mut translator, text).is_empty());
    assert!(client(&mut translator, json!({"type": "response.create"})).is_empty());
    let output = |id: &str| json!({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": id, "output": "{}"}});
    assert_eq!(to_upstream(&client(&mut translator, output("a"))).len(), 1);
    let sent = to_upstream(&client(&mut translator, output("b")));
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[0].starts_with(r#"{"toolResponse""#));
    assert!(sent[1].contains("and also"));
    assert_eq!(sent[2], r#"{"clientContent":{"turnComplete":true}}"#);
}

#[test]
fn a_mid_session_update_can_be_applied_by_resuming() {
    let config = GeminiConfig::new(Backend::GeminiApi, MODEL).reconfigure_by_resuming(true);
    let mut translator = live_with(GeminiTranslator::new(config), &[]);
    let update = json!({"type": "session.update", "session": {"instructions": "Speak French."}});
    // Without a handle there is nothing to resume.
    let events = to_client(&client(&mut translator, update.clone()));
    assert_eq!(events[0]["error"]["code"], "unsupported_session_update");
    gemini(
        &mut translator,
        json!({"sessionResumptionUpdate": {"newHandle": "H7", "resumable": true}}),
    );
    // Not while a response streams.
    gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD")]}}}),
    );
    assert_eq!(
        to_client(&client(&mut translator, update.clone()))[0]["error"]["code"],
        "session_busy"
    );
    gemini(
        &mut translator,
        json!({"serverContent": {"turnComplete": true}}),
    );
    let outputs = client(&mut translator, update);
    let Some(Control::Reconnect { setup }) = controls(&outputs).pop() else {
        panic!("{outputs:?}")
    };
    assert!(
        setup.contains("Speak French.") && setup.contains(r#""sessionResumption":{"handle":"H7"}"#)
    );
    assert!(
        to_client(&outputs).is_empty(),
        "session.updated waits for the new setup"
    );
    assert!(client(&mut translator, append("AAAA")).is_empty());
    let outputs = gemini(&mut translator, json!({"setupComplete": {}}));
    let events = to_client(&outputs);
    assert_eq!(types(&events), ["session.updated"]);
    assert_eq!(events[0]["session"]["instructions"], "Speak French.");
    assert_eq!(to_upstream(&outputs).len(), 1);
}

#[test]
fn a_connection_that_ends_before_a_safe_point_is_resumed_anyway() {
    let mut translator = live();
    gemini(
        &mut translator,
        json!({"sessionResumptionUpdate": {"newHandle": "H3", "resumable": true}}),
    );
    gemini(
        &mut translator,
        json!({"serverContent": {"modelTurn": {"parts": [audio_part("AQAD")]}}}),
    );
    gemini(&mut translator, json!({"goAway": {"timeLeft": "1s"}}));
    let outputs = translator.upstream_closed(Some(1000), "");
    let events = to_client(&outputs);
    assert_eq!(events.last().unwrap()["response"]["status"], "incomplete");
    assert!(
        matches!(&controls(&outputs)[..], [Control::Reconnect { setup }] if setup.contains("H3"))
    );
    assert!(!translator.is_closed());
}

/// Client items and content Gemini cannot take are refused with an `error`
/// event naming them; nothing goes upstream.
#[test]
fn items_gemini_cannot_take_are_refused_by_name() {
    let message = |content: Value| {
        json!({"type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": content}})
    };
    let cases = [
        (
            json!({"type": "conversation.item.create", "item": {"type": "reasoning"}}),
            "unsupported_item",
            "item.type",
        ),
        (
            message(json!([{"type": "input_video", "video": "…"}])),
            "unsupported_content",
            "item.content",
        ),
        (message(json!([])), "empty_item", "item.content"),
    ];
    for (event, code, param) in cases {
        let mut translator = live();
        let outputs = client(&mut translator, event.clone());
        assert!(to_upstream(&outputs).is_empty(), "{event}");
        let events = to_client(&outputs);
        assert_eq!(types(&events), ["error"], "{event}");
        assert_eq!(events[0]["error"]["code"], code, "{event}");
        assert_eq!(events[0]["error"]["param"], param, "{event}");
    }
}

/// Content held while tool calls wait is bounded: past the limit, the client
/// is told to answer the calls first.
#[test]
fn content_held_for_pending_tool_calls_is_bounded() {
    let mut translator = live_with(
        GeminiTranslator::new(GeminiConfig::new(Backend::GeminiApi, MODEL).max_held(2, 1 << 20)),
        &[],
    );
    gemini(
        &mut translator,
        json!({"toolCall": {"functionCalls": [{"id": "a", "name": "f", "args": {}}]}}),
    );
    let text = json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "meanwhile"}]}});
    assert!(client(&mut translator, text.clone()).is_empty());
    assert!(client(&mut translator, text.clone()).is_empty());
    let events = to_client(&client(&mut translator, text));
    assert_eq!(types(&events), ["error"]);
    assert_eq!(events[0]["error"]["code"], "function_call_output_required");
}

/// A turn Gemini ends for a malformed function call is a failed response.
#[test]
fn a_malformed_function_call_fails_the_response() {
    let mut translator = live();
    gemini(
        &mut translator,
        json!({"serverContent": {"outputTranscription": {"text": "Let me"}}}),
    );
    let outputs = gemini(
        &mut translator,
        json!({"serverContent": {"turnComplete": true, "turnCompleteReason": "MALFORMED_FUNCTION_CALL"}}),
    );
    let events = to_client(&outputs);
    let done = events
        .iter()
        .find(|event| event["type"] == "response.done")
        .expect("a response.done");
    assert_eq!(done["response"]["status"], "failed", "{done}");
    assert_eq!(
        done["response"]["status_details"]["error"]["code"],
        "malformed_function_call"
    );
}
