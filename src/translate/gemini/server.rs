//! Gemini server messages → OpenAI events.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::json::{duration_ms, field, flag, object, string};
use super::response::{Call, CallState};
use super::usage::GeminiUsage;
use super::{Control, GeminiTranslator, Output, Phase, TextResponses, close};

/// `turnCompleteReason`s that mean the output was blocked.
const FILTERED: [&str; 5] = [
    "PROHIBITED_INPUT_CONTENT",
    "IMAGE_PROHIBITED_INPUT_CONTENT",
    "INPUT_IMAGE_BLOCKLIST",
    "SAFETY",
    "BLOCKLIST",
];

impl GeminiTranslator {
    pub(super) fn on_upstream(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(bytes) else {
            tracing::warn!(
                len = bytes.len(),
                "upstream message that is not a JSON object dropped"
            );
            return;
        };
        // Usage first, so that a response ended by this same frame carries it.
        if let Some(usage) = object(&message, "usageMetadata", "usage_metadata") {
            let usage = GeminiUsage::read(usage);
            match &mut self.usage {
                Some(pending) => pending.add(&usage),
                None => self.usage = Some(usage),
            }
        }
        if field(&message, "setupComplete", "setup_complete").is_some() {
            self.on_setup_complete();
        }
        if let Some(content) = object(&message, "serverContent", "server_content") {
            self.on_server_content(content);
        }
        if let Some(call) = object(&message, "toolCall", "tool_call") {
            self.on_tool_call(call);
        }
        if let Some(cancellation) =
            object(&message, "toolCallCancellation", "tool_call_cancellation")
        {
            for id in cancellation
                .get("ids")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = id.as_str() {
                    self.calls.cancel(id);
                }
            }
            self.release_deferred();
            self.maybe_reconnect();
        }
        if let Some(activity) = object(&message, "voiceActivity", "voice_activity") {
            self.on_voice_activity(activity);
        }
        if let Some(update) = object(
            &message,
            "sessionResumptionUpdate",
            "session_resumption_update",
        ) {
            self.on_resumption_update(update);
        }
        if let Some(go_away) = object(&message, "goAway", "go_away") {
            let time_left = string(go_away, "timeLeft", "time_left")
                .and_then(duration_ms)
                .map(Duration::from_millis);
            self.go_away = true;
            self.out
                .push(Output::Control(Control::GoAway { time_left }));
            self.maybe_reconnect();
        }
        if let Some(error) = message.get("error").and_then(Value::as_object) {
            self.on_error(error);
        }
    }

    fn on_setup_complete(&mut self) {
        let first = !self.setup_done;
        self.setup_done = true;
        if !matches!(self.phase, Phase::AwaitingSetup | Phase::Resuming) {
            return;
        }
        self.phase = Phase::Live;
        if first || std::mem::take(&mut self.updated_on_resume) {
            let session = self.session.view();
            self.emit("session.updated", [("session", session)]);
        }
        let held = std::mem::take(&mut self.held);
        for event in held.events {
            if self.phase != Phase::Live {
                // A held event began another resumption or ended the
                // session: keep the rest in order.
                self.held.bytes += event.len();
                self.held.events.push_back(event);
                continue;
            }
            self.live_event(&event);
        }
    }

    fn on_server_content(&mut self, content: &Map<String, Value>) {
        if let Some(transcription) = object(content, "inputTranscription", "input_transcription") {
            let text = transcription
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.input_transcript(text, flag(transcription, "finished", "finished"));
        }
        if self.discarding {
            // The rest of a response the client already saw end.
            if flag(content, "turnComplete", "turn_complete") {
                self.discarding = false;
                self.maybe_reconnect();
            }
            return;
        }
        let text_mode = self.session.text_output();
        let native_text = text_mode && self.config.text_mode() == TextResponses::Native;
        if let Some(turn) = object(content, "modelTurn", "model_turn") {
            for part in turn
                .get("parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(part) = part.as_object() else {
                    continue;
                };
                if let Some(data) = object(part, "inlineData", "inline_data") {
                    let mime = string(data, "mimeType", "mime_type").unwrap_or("audio/pcm");
                    if let (true, Some(audio)) = (
                        mime.starts_with("audio/"),
                        data.get("data").and_then(Value::as_str),
                    ) {
                        self.audio_delta(audio);
                    }
                } else if let Some(text) = part.get("text").and_then(Value::as_str) {
                    // Thoughts never reach the client; text parts of an
                    // audio response are not what it says.
                    if native_text && !flag(part, "thought", "thought") {
                        self.text_delta(text);
                    }
                }
            }
        }
        if let Some(transcription) = object(content, "outputTranscription", "output_transcription")
            && !native_text
        {
            let text = transcription
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.text_delta(text);
        }
        if flag(content, "generationComplete", "generation_complete") {
            self.close_message("completed");
        }
        if flag(content, "interrupted", "interrupted") {
            self.on_interrupted();
        }
        if flag(content, "turnComplete", "turn_complete") {
            let reason = string(content, "turnCompleteReason", "turn_complete_reason");
            self.on_turn_complete(reason);
        }
    }

    fn on_interrupted(&mut self) {
        let start = self.input.elapsed_ms();
        if let Some(response) = &mut self.response {
            response.interrupted = true;
        }
        self.close_message("incomplete");
        self.speech_started(start);
    }

    fn on_turn_complete(&mut self, reason: Option<&str>) {
        self.input_transcript_done();
        let Some(response) = &self.response else {
            // A bare turnComplete (after a tool call, or with nothing said):
            // no response to end; its usage waits for the next one.
            self.maybe_reconnect();
            return;
        };
        let (status, details) = if response.cancelled {
            (
                "cancelled",
                json!({"type": "cancelled", "reason": "client_cancelled"}),
            )
        } else if response.interrupted {
            (
                "cancelled",
                json!({"type": "cancelled", "reason": "turn_detected"}),
            )
        } else {
            match reason {
                Some(reason) if FILTERED.contains(&reason) => (
                    "incomplete",
                    json!({"type": "incomplete", "reason": "content_filter"}),
                ),
                Some("MALFORMED_FUNCTION_CALL") => (
                    "failed",
                    json!({"type": "failed", "error": {"type": "server_error", "code": "malformed_function_call"}}),
                ),
                _ => ("completed", Value::Null),
            }
        };
        self.finish_response(status, details);
    }

    fn on_tool_call(&mut self, call: &Map<String, Value>) {
        let calls = field(call, "functionCalls", "function_calls")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if calls.is_empty() {
            return;
        }
        self.close_message("completed");
        for function in calls {
            let Some(function) = function.as_object() else {
                continue;
            };
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let gemini_id = function
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let call_id = gemini_id.clone().unwrap_or_else(|| self.ids.make("call"));
            let arguments = function
                .get("args")
                .cloned()
                .unwrap_or_else(|| json!({}))
                .to_string();
            self.calls.insert(
                call_id.clone(),
                Call {
                    name: name.clone(),
                    gemini_id,
                    state: CallState::Pending,
                },
            );
            self.function_call(&call_id, &name, &arguments);
        }
        self.finish_response("completed", Value::Null);
    }

    fn on_voice_activity(&mut self, activity: &Map<String, Value>) {
        let kind = string(activity, "voiceActivityType", "voice_activity_type")
            .or_else(|| activity.get("type").and_then(Value::as_str));
        let offset = string(activity, "audioOffset", "audio_offset")
            .and_then(duration_ms)
            .unwrap_or_else(|| self.input.elapsed_ms());
        match kind {
            Some("ACTIVITY_START") => self.speech_started(offset),
            Some("ACTIVITY_END") => self.speech_stopped(offset),
            _ => {}
        }
    }

    fn on_resumption_update(&mut self, update: &Map<String, Value>) {
        let handle = string(update, "newHandle", "new_handle").filter(|h| !h.is_empty());
        let resumable =
            field(update, "resumable", "resumable").and_then(Value::as_bool) != Some(false);
        if let (true, Some(handle)) = (resumable, handle) {
            self.handle = Some(handle.to_owned());
            self.out.push(Output::Control(Control::ResumptionHandle(
                handle.to_owned(),
            )));
        }
    }

    fn on_error(&mut self, error: &Map<String, Value>) {
        let status = error.get("code").and_then(Value::as_u64).unwrap_or(500);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the upstream reported an error");
        let message = close::scrub(message);
        if (400..500).contains(&status) {
            self.fail("invalid_request_error", "upstream_rejected", &message, 1008);
        } else {
            self.fail("server_error", "upstream_error", &message, 1011);
        }
    }

    pub(super) fn on_upstream_closed(&mut self, code: Option<u16>, reason: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        let reason = close::scrub(reason);
        if self.go_away && self.phase == Phase::Live && self.handle.is_some() {
            // Gemini's connection limit came before a safe point: resume now.
            self.finish_response(
                "incomplete",
                json!({"type": "incomplete", "reason": "upstream_reconnected"}),
            );
            self.reconnect();
            return;
        }
        let during_setup = !self.setup_done;
        match close::map(code, &reason, during_setup) {
            Some(mapped) => {
                let message = if reason.is_empty() {
                    "the upstream closed the session".to_owned()
                } else {
                    reason
                };
                self.fail(mapped.error_type, mapped.code, &message, mapped.close);
            }
            None => {
                self.finish_response(
                    "incomplete",
                    json!({"type": "incomplete", "reason": "upstream_closed"}),
                );
                self.phase = Phase::Closed;
                self.out
                    .push(Output::Control(Control::Close { code: 1000, reason }));
            }
        }
    }
}
