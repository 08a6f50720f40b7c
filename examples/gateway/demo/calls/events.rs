//! The server events of a demo call, in OpenAI's GA schema: what its
//! sideband and its data channel (`oai-events`) carry.

use serde_json::{Value, json};

use super::super::response::{Tokens, text_tokens, usage};

/// What the demo "says" with its chime, as the transcript of its audio.
const TRANSCRIPT: &str = "(a chime)";

/// The demo's instructions: what every response reads as input.
const INSTRUCTIONS: &str = "Greet the caller with a chime.";

/// Audio tokens per second of output audio (one per 50 ms), as OpenAI counts.
const OUTPUT_AUDIO_TOKENS_PER_SECOND: u64 = 20;

/// Builds the events of one call, numbering them.
#[derive(Debug)]
pub(crate) struct CallEvents {
    suffix: String,
    model: Value,
    next: u64,
}

impl CallEvents {
    /// The events of call `rtc_…`, for `model` (from the offer's `session`, if any).
    pub(crate) fn new(call_id: &str, model: Option<&str>) -> Self {
        Self {
            suffix: call_id.trim_start_matches("rtc_").to_owned(),
            model: model.map_or(Value::Null, Value::from),
            next: 0,
        }
    }

    fn event(&mut self, kind: &str, fields: Value) -> Value {
        let mut event =
            json!({"type": kind, "event_id": format!("event_{}_{}", self.suffix, self.next)});
        self.next += 1;
        if let (Value::Object(event), Value::Object(fields)) = (&mut event, fields) {
            event.extend(fields);
        }
        event
    }

    /// `session.created`, the first event of every call.
    pub(crate) fn session_created(&mut self) -> Value {
        let session = json!({
            "id": format!("sess_{}", self.suffix),
            "object": "realtime.session",
            "type": "realtime",
            "model": self.model,
            "instructions": INSTRUCTIONS,
            "output_modalities": ["audio"],
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}, "turn_detection": null},
                "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"},
            },
        });
        self.event("session.created", json!({"session": session}))
    }

    /// An `error` event, as OpenAI sends for a client event it refuses.
    pub(crate) fn error(&mut self, code: &str, message: &str) -> Value {
        let error = json!({"type": "invalid_request_error", "code": code, "message": message, "param": null, "event_id": null});
        self.event("error", json!({"error": error}))
    }

    /// The events that start response number `number`, before its audio plays.
    pub(crate) fn response_started(&mut self, number: u64) -> Vec<Value> {
        let response = self.response(number, "in_progress", Value::Null);
        let id = response["id"].clone();
        vec![
            self.event("response.created", json!({"response": response})),
            self.event("output_audio_buffer.started", json!({"response_id": id})),
        ]
    }

    /// The events that end response number `number` once `frames` 20 ms
    /// frames of audio were sent, `response.done` with usage last.
    pub(crate) fn response_done(&mut self, number: u64, frames: u64) -> Vec<Value> {
        let input = Tokens {
            text: text_tokens(INSTRUCTIONS),
            audio: 0,
        };
        let output = Tokens {
            text: text_tokens(TRANSCRIPT),
            audio: (frames * 20 * OUTPUT_AUDIO_TOKENS_PER_SECOND).div_ceil(1000),
        };
        let mut response = self.response(number, "completed", usage(input, output));
        response["output"] = json!([{
            "id": self.item_id(number),
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_audio", "transcript": TRANSCRIPT}],
        }]);
        let id = response["id"].clone();
        vec![
            self.event(
                "response.output_audio_transcript.done",
                json!({"response_id": id, "item_id": self.item_id(number), "output_index": 0, "content_index": 0, "transcript": TRANSCRIPT}),
            ),
            self.event("output_audio_buffer.stopped", json!({"response_id": id})),
            self.event("response.done", json!({"response": response})),
        ]
    }

    fn item_id(&self, number: u64) -> String {
        format!("item_{}_{number}", self.suffix)
    }

    fn response(&self, number: u64, status: &str, usage: Value) -> Value {
        json!({
            "object": "realtime.response",
            "id": format!("resp_{}_{number}", self.suffix),
            "status": status,
            "status_details": null,
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "usage": usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_greets_then_reports_usage() {
        let mut events = CallEvents::new("rtc_demo0001", Some("realtime"));
        let created = events.session_created();
        assert_eq!(created["type"], "session.created");
        assert_eq!(created["session"]["model"], "realtime");
        let started = events.response_started(1);
        assert_eq!(started[0]["type"], "response.created");
        assert_eq!(started[0]["response"]["id"], "resp_demo0001_1");
        let done = events.response_done(1, 50);
        let last = done.last().unwrap();
        assert_eq!(last["type"], "response.done");
        assert_eq!(last["event_id"], "event_demo0001_5");
        assert_eq!(last["response"]["output"][0]["id"], "item_demo0001_1");
        assert_eq!(done[0]["item_id"], "item_demo0001_1");
        let usage = &last["response"]["usage"];
        // One second of audio is 20 tokens, "(a chime)" 3.
        assert_eq!(usage["output_token_details"]["audio_tokens"], 20);
        assert_eq!(usage["output_tokens"], 23);
        assert_eq!(usage["input_tokens"], text_tokens(INSTRUCTIONS));
        let error = events.error("conversation_already_has_active_response", "Busy.");
        assert_eq!(error["type"], "error");
        assert_eq!(
            error["error"]["code"],
            "conversation_already_has_active_response"
        );
        assert_eq!(error["event_id"], "event_demo0001_6");
    }
}
