//! OpenAI client events → Gemini client messages.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use super::response::CallState;
use super::{Backend, GeminiTranslator, Phase};
use crate::translate::audio::{AudioFormat, Converted, InputAudio, OutputAudio};
use crate::usage::scan::{self, Value as Scanned};

const APPEND: &str = "input_audio_buffer.append";

impl GeminiTranslator {
    pub(super) fn on_client(&mut self, bytes: &[u8]) {
        match self.phase {
            Phase::Closed => {}
            Phase::Live => self.live_event(bytes),
            Phase::AwaitingSetup | Phase::Resuming => self.hold(bytes),
            Phase::Configuring => {
                if event_type(bytes).as_deref() == Some("session.update") {
                    self.live_event(bytes);
                } else {
                    self.send_setup();
                    self.hold(bytes);
                }
            }
        }
    }

    /// Sends the one `setup`, with everything configured so far.
    pub(super) fn send_setup(&mut self) {
        let setup = self.session.setup(&self.config, None);
        self.send(&setup);
        self.phase = Phase::AwaitingSetup;
    }

    /// Keeps a client event until the upstream is ready, within bounds.
    fn hold(&mut self, bytes: &[u8]) {
        if event_type(bytes).as_deref() == Some("input_audio_buffer.clear") {
            // Audio held since the last commit will never be sent.
            let keep_from = self
                .held
                .events
                .iter()
                .rposition(|event| {
                    event_type(event).as_deref() == Some("input_audio_buffer.commit")
                })
                .map_or(0, |at| at + 1);
            let mut index = 0;
            let mut dropped = 0;
            self.held.events.retain(|event| {
                let keep = index < keep_from || event_type(event).as_deref() != Some(APPEND);
                index += 1;
                if !keep {
                    dropped += event.len();
                }
                keep
            });
            self.held.bytes -= dropped;
        }
        let (max_events, max_bytes) = self.config.held_limits();
        if self.held.events.len() >= max_events || self.held.bytes + bytes.len() > max_bytes {
            self.fail(
                "server_error",
                "upstream_not_ready",
                "the upstream session was not ready in time for the audio and events sent",
                1011,
            );
            return;
        }
        self.held.bytes += bytes.len();
        self.held.events.push_back(bytes.to_vec());
    }

    /// Translates one event while the upstream is ready (or, for
    /// `session.update`, while configuring).
    pub(super) fn live_event(&mut self, bytes: &[u8]) {
        let kind = event_type(bytes);
        if kind.as_deref() == Some(APPEND) {
            self.append(bytes);
            return;
        }
        let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(bytes) else {
            self.last_client_event = None;
            self.error(
                "invalid_request_error",
                "invalid_json",
                "the event is not a JSON object",
                None,
            );
            return;
        };
        self.last_client_event = event
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let content = match kind.as_deref() {
            Some("response.create") => true,
            Some("conversation.item.create") => {
                event.get("item").and_then(|item| item.get("type")) == Some(&Value::from("message"))
            }
            _ => false,
        };
        if content && self.calls.any_pending() {
            // Gemini takes nothing else until its tool calls are answered.
            self.defer(bytes);
            return;
        }
        match kind.as_deref() {
            Some("session.update") => self.session_update(&event),
            Some("input_audio_buffer.commit") => self.commit(),
            Some("input_audio_buffer.clear") => {
                self.appended = false;
                self.emit("input_audio_buffer.cleared", []);
            }
            Some("conversation.item.create") => self.item_create(&event),
            Some("response.create") => self.response_create(&event),
            Some("response.cancel") => self.response_cancel(),
            Some("conversation.item.truncate") => {
                let field = |name: &str| event.get(name).cloned().unwrap_or(Value::Null);
                self.emit(
                    "conversation.item.truncated",
                    [
                        ("item_id", field("item_id")),
                        ("content_index", field("content_index")),
                        ("audio_end_ms", field("audio_end_ms")),
                    ],
                );
            }
            Some(
                other @ ("conversation.item.delete"
                | "conversation.item.retrieve"
                | "output_audio_buffer.clear"),
            ) => {
                let message = format!("`{other}` is not supported by this model");
                self.error(
                    "invalid_request_error",
                    "unsupported_event",
                    &message,
                    Some("type"),
                );
            }
            other => {
                let message = match other {
                    Some(kind) => format!("unknown event type `{kind}`"),
                    None => "the event has no type".to_owned(),
                };
                self.error(
                    "invalid_request_error",
                    "invalid_event",
                    &message,
                    Some("type"),
                );
            }
        }
    }

    /// `input_audio_buffer.append`: the audio into `realtimeInput`, spliced
    /// when it can go as it is.
    fn append(&mut self, bytes: &[u8]) {
        let mut audio: Option<Cow<'_, [u8]>> = None;
        for (key, value) in scan::members(bytes) {
            if let (b"audio", Scanned::Str(text)) = (key, value) {
                audio = Some(Cow::Borrowed(text.raw));
            }
        }
        let escaped = audio.as_ref().is_none_or(|raw| raw.contains(&b'\\'));
        if escaped {
            // Escapes in base64 are legal JSON but rare: read it properly.
            audio = serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|event| event.get("audio")?.as_str().map(|a| a.as_bytes().to_vec()))
                .map(Cow::Owned);
        }
        let Some(audio) = audio.filter(|audio| audio.iter().all(|&b| is_base64(b))) else {
            self.error(
                "invalid_request_error",
                "invalid_audio",
                "`audio` must be a base64 string",
                Some("audio"),
            );
            return;
        };
        if self.session.manual_turns() && !self.activity_open {
            self.activity_open = true;
            self.send(&json!({"realtimeInput": {"activityStart": {}}}));
        }
        let (rate, data) = match self.input.convert(&audio) {
            Ok(Converted::Splice { rate }) => (rate, audio),
            Ok(Converted::Encoded { rate, data }) => (rate, Cow::Owned(data.into_bytes())),
            Err(_) => {
                self.error(
                    "invalid_request_error",
                    "invalid_audio",
                    "`audio` is not valid base64",
                    Some("audio"),
                );
                return;
            }
        };
        self.appended = true;
        if data.is_empty() {
            return;
        }
        let mut message = String::with_capacity(data.len() + 80);
        message.push_str(r#"{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate="#);
        message.push_str(&rate.to_string());
        message.push_str(r#"","data":""#);
        // Checked above: only base64 characters, nothing to escape.
        message.push_str(std::str::from_utf8(&data).unwrap_or_default());
        message.push_str(r#""}}}"#);
        self.out.push(super::Output::Upstream(message));
    }

    fn session_update(&mut self, event: &Map<String, Value>) {
        let Some(update) = event.get("session").and_then(Value::as_object) else {
            self.error(
                "invalid_request_error",
                "missing_required_parameter",
                "`session` is required",
                Some("session"),
            );
            return;
        };
        let (next, problems) = self.session.merged(update);
        for problem in &problems {
            self.error(
                "invalid_request_error",
                problem.code,
                &problem.message,
                Some(problem.param),
            );
        }
        let configuring = self.phase == Phase::Configuring;
        let reconfigure = !configuring
            && next.setup(&self.config, None) != self.session.setup(&self.config, None);
        let resume = reconfigure
            && self.config.reconfigures()
            && self.can_reconnect
            && self.handle.is_some();
        if reconfigure && !resume {
            self.error(
                "invalid_request_error",
                "unsupported_session_update",
                "this model's configuration (instructions, voice, tools, turn detection, modalities) is fixed once the session has started; only audio formats can change",
                Some("session"),
            );
            return;
        }
        if resume
            && (self.response.is_some() || self.calls.any_pending() || self.phase != Phase::Live)
        {
            self.error(
                "invalid_request_error",
                "session_busy",
                "the session can be reconfigured between responses only; send the update again when the response is done",
                Some("session"),
            );
            return;
        }
        if next.input_format() != self.input.format() {
            self.input = InputAudio::new(next.input_format(), self.config.input_rate());
        }
        if next.output_format() != self.output.format() {
            self.output = OutputAudio::new(next.output_format());
        }
        self.session = next;
        if resume {
            // Gemini applies a new configuration to a resumed session only.
            let handle = self.handle.clone().unwrap_or_default();
            let setup = self.session.setup(&self.config, Some(&handle)).to_string();
            self.phase = Phase::Resuming;
            self.activity_open = false;
            self.updated_on_resume = true;
            self.out
                .push(super::Output::Control(super::Control::Reconnect { setup }));
            return;
        }
        let session = self.session.view();
        self.emit("session.updated", [("session", session)]);
    }

    fn commit(&mut self) {
        if self.session.manual_turns() {
            if !self.activity_open {
                self.error(
                    "invalid_request_error",
                    "input_audio_buffer_commit_empty",
                    "the input audio buffer is empty",
                    None,
                );
                return;
            }
            self.activity_open = false;
            self.send(&json!({"realtimeInput": {"activityEnd": {}}}));
        } else if !self.appended {
            self.error(
                "invalid_request_error",
                "input_audio_buffer_commit_empty",
                "the input audio buffer is empty",
                None,
            );
            return;
        }
        self.user_committed();
    }

    fn item_create(&mut self, event: &Map<String, Value>) {
        let Some(item) = event.get("item").and_then(Value::as_object) else {
            self.error(
                "invalid_request_error",
                "missing_required_parameter",
                "`item` is required",
                Some("item"),
            );
            return;
        };
        match item.get("type").and_then(Value::as_str) {
            Some("message") => self.message_item(item),
            Some("function_call_output") => self.function_output(item),
            other => {
                let message = format!(
                    "items of type `{}` cannot be added with this model",
                    other.unwrap_or("none")
                );
                self.error(
                    "invalid_request_error",
                    "unsupported_item",
                    &message,
                    Some("item.type"),
                );
            }
        }
    }

    fn message_item(&mut self, item: &Map<String, Value>) {
        let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
        let gemini_role = if role == "assistant" { "model" } else { "user" };
        let mut parts = Vec::new();
        for content in item
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = content
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let part = match kind {
                "input_text" | "text" | "output_text" => content
                    .get("text")
                    .and_then(Value::as_str)
                    .map(|text| json!({"text": text})),
                "input_audio" if self.session.input_format() == AudioFormat::Pcm => content
                    .get("audio")
                    .and_then(Value::as_str)
                    .map(|audio| json!({"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": audio}})),
                "input_image" => content
                    .get("image_url")
                    .and_then(Value::as_str)
                    .and_then(|url| url.strip_prefix("data:"))
                    .and_then(|url| url.split_once(";base64,"))
                    .map(|(mime, data)| json!({"inlineData": {"mimeType": mime, "data": data}})),
                _ => None,
            };
            match part {
                Some(part) => parts.push(part),
                None => {
                    let message = format!("content of type `{kind}` cannot be sent to this model");
                    self.error(
                        "invalid_request_error",
                        "unsupported_content",
                        &message,
                        Some("item.content"),
                    );
                    return;
                }
            }
        }
        if parts.is_empty() {
            self.error(
                "invalid_request_error",
                "empty_item",
                "the message has no content",
                Some("item.content"),
            );
            return;
        }
        self.send(&json!({
            "clientContent": {"turns": [{"role": gemini_role, "parts": parts}], "turnComplete": false}
        }));
        if gemini_role == "user" {
            self.pending_text = true;
        }
        self.acknowledge_item(item);
    }

    fn function_output(&mut self, item: &Map<String, Value>) {
        let call_id = item
            .get("call_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(call) = self.calls.get_mut(call_id) else {
            let message =
                format!("no function call with call_id `{call_id}` is waiting for output");
            self.error(
                "invalid_request_error",
                "unknown_call_id",
                &message,
                Some("item.call_id"),
            );
            return;
        };
        if call.state == CallState::Cancelled {
            // Gemini withdrew the call (toolCallCancellation); a late answer
            // can end its session. The client still gets its item back.
            tracing::debug!(
                call_id,
                "output for a cancelled function call not sent upstream"
            );
        } else {
            call.state = CallState::Answered;
            let output = item
                .get("output")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let response = match serde_json::from_str::<Value>(output) {
                Ok(object @ Value::Object(_)) => object,
                _ => json!({ "result": output }),
            };
            let mut answer = Map::new();
            // Vertex refuses `id` on function responses.
            if let (Backend::GeminiApi, Some(id)) = (self.config.backend(), &call.gemini_id) {
                answer.insert("id".into(), id.clone().into());
            }
            answer.insert("name".into(), call.name.clone().into());
            answer.insert("response".into(), response);
            self.send(&json!({"toolResponse": {"functionResponses": [answer]}}));
        }
        self.acknowledge_item(item);
        self.release_deferred();
        self.maybe_reconnect();
    }

    fn defer(&mut self, bytes: &[u8]) {
        let (max_events, _) = self.config.held_limits();
        if self.deferred.len() >= max_events {
            self.error(
                "invalid_request_error",
                "function_call_output_required",
                "answer the pending function calls before sending more content",
                None,
            );
            return;
        }
        self.deferred.push_back(bytes.to_vec());
    }

    /// Sends the content held for tool calls once none is pending.
    pub(super) fn release_deferred(&mut self) {
        while !self.calls.any_pending() && self.phase == Phase::Live {
            let Some(event) = self.deferred.pop_front() else {
                return;
            };
            self.live_event(&event);
        }
    }

    /// `conversation.item.added` and `.done` for an item the client added.
    fn acknowledge_item(&mut self, item: &Map<String, Value>) {
        let mut item = item.clone();
        if !item.get("id").is_some_and(Value::is_string) {
            item.insert("id".into(), self.ids.make("item").into());
        }
        item.insert("object".into(), "realtime.item".into());
        item.insert("status".into(), "completed".into());
        let item = Value::Object(item);
        self.item_added(item.clone());
        self.emit("conversation.item.done", [("item", item)]);
    }

    fn response_create(&mut self, event: &Map<String, Value>) {
        if self.response.is_some() {
            self.error(
                "invalid_request_error",
                "conversation_already_has_active_response",
                "a response is already in progress",
                None,
            );
            return;
        }
        if let Some(response) = event.get("response").and_then(Value::as_object) {
            let unsupported = response.iter().find(|(key, value)| match key.as_str() {
                "metadata" => false,
                "conversation" => *value != "auto",
                "output_modalities" => Some(*value) != self.session.view().get("output_modalities"),
                _ => true,
            });
            if let Some((key, _)) = unsupported {
                let message = format!(
                    "`response.{key}` is not supported by this model; configure the session instead"
                );
                let param = format!("response.{key}");
                self.error(
                    "invalid_request_error",
                    "unsupported_response_parameter",
                    &message,
                    Some(&param),
                );
                return;
            }
            self.metadata = response.get("metadata").cloned().unwrap_or(Value::Null);
        }
        if self.pending_text {
            self.pending_text = false;
            self.send(&json!({"clientContent": {"turnComplete": true}}));
        }
        // Otherwise Gemini answers by itself (after speech or a tool response).
    }

    fn response_cancel(&mut self) {
        match &mut self.response {
            Some(response) if !response.cancelled => response.cancelled = true,
            _ => {
                self.error(
                    "invalid_request_error",
                    "response_cancel_not_active",
                    "there is no active response to cancel",
                    None,
                );
                return;
            }
        }
        if self.session.manual_turns() {
            if !self.activity_open {
                self.activity_open = true;
                self.send(&json!({"realtimeInput": {"activityStart": {}}}));
            }
        } else {
            self.send(&json!({"clientContent": {"turnComplete": false}}));
        }
    }
}

/// The `type` of a client event, unescaped.
fn event_type(bytes: &[u8]) -> Option<Cow<'_, str>> {
    match scan::event_type(bytes) {
        Some(raw) if !raw.contains(&b'\\') => std::str::from_utf8(raw).ok().map(Cow::Borrowed),
        _ => serde_json::from_slice::<Value>(bytes)
            .ok()?
            .get("type")?
            .as_str()
            .map(|kind| Cow::Owned(kind.to_owned())),
    }
}

fn is_base64(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=' | b'-' | b'_')
}
