//! One demo session's state, and what it does with each client event.

use serde_json::{Value, json};

use super::audio;
use super::outbox::Outbox;
use super::response::{INPUT_AUDIO_TOKENS_PER_SECOND, Reply, Tokens, text_tokens};
use super::settings::Settings;
use super::turns::{InputBuffer, Turn};

/// The client events the demo understands.
const SUPPORTED: &str = "session.update, input_audio_buffer.append, input_audio_buffer.commit, \
     input_audio_buffer.clear, conversation.item.create, response.create, response.cancel";

/// How the demo introduces itself after answering what it heard.
const SIGNATURE: &str =
    "This answer comes from the tower-realtime demo provider, through your gateway.";

/// What the next reply answers.
#[derive(Debug)]
enum Heard {
    Nothing,
    Text(String),
    Audio { ms: u64 },
}

/// The state of one demo session.
#[derive(Debug)]
pub(crate) struct Conversation {
    settings: Settings,
    suffix: String,
    ids: u64,
    last_item: Option<String>,
    heard: Heard,
    buffer: InputBuffer,
    /// The item that the speech in the buffer will become.
    speech_item: Option<String>,
    /// The conversation so far, as the model reads it.
    context: Tokens,
    last_reply: Option<Reply>,
}

impl Conversation {
    /// A session with id `id` (`sess_…`) for `model`.
    pub(crate) fn new(id: &str, model: Option<String>) -> Self {
        Self {
            settings: Settings::new(id, model),
            suffix: id.trim_start_matches("sess_").to_owned(),
            ids: 0,
            last_item: None,
            heard: Heard::Nothing,
            buffer: InputBuffer::default(),
            speech_item: None,
            context: Tokens::default(),
            last_reply: None,
        }
    }

    /// Queues `session.created`.
    pub(crate) fn greet(&self, out: &mut Outbox) {
        out.push(
            "session.created",
            json!({"session": self.settings.session()}),
        );
    }

    /// Handles one text message from the client.
    pub(crate) fn handle(&mut self, text: &str, out: &mut Outbox) {
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            let message = "The event is not valid JSON.";
            return error(out, "invalid_json", message, None, &Value::Null);
        };
        let client_event_id = &event["event_id"];
        match event["type"].as_str().unwrap_or_default() {
            "session.update" => {
                self.settings.update(&event["session"]);
                out.push(
                    "session.updated",
                    json!({"session": self.settings.session()}),
                );
            }
            "input_audio_buffer.append" => self.append(&event, out),
            "input_audio_buffer.commit" => {
                let ms = self.buffer.ms(self.input_bytes_per_second());
                if self.commit(None, ms, client_event_id, out)
                    && self
                        .settings
                        .turn_detection()
                        .is_some_and(|vad| vad.create_response)
                {
                    self.respond(&Value::Null, client_event_id, out);
                }
            }
            "input_audio_buffer.clear" => {
                self.buffer.clear();
                out.push("input_audio_buffer.cleared", json!({}));
            }
            "conversation.item.create" => self.create_item(&event, out),
            "response.create" => self.respond(&event["response"], client_event_id, out),
            "response.cancel" => {
                if !self.cancel("client_cancelled", out) {
                    let message = "Cancellation failed: no active response found.";
                    error(
                        out,
                        "response_cancel_not_active",
                        message,
                        None,
                        client_event_id,
                    );
                }
            }
            other => {
                let message =
                    format!("Invalid value: '{other}'. The demo provider supports: {SUPPORTED}.");
                error(
                    out,
                    "invalid_value",
                    &message,
                    Some("type"),
                    client_event_id,
                );
            }
        }
    }

    /// Handles a binary message, which the realtime API does not take.
    pub(crate) fn binary(&self, out: &mut Outbox) {
        let message = "Binary messages are not supported; send JSON events as text.";
        error(out, "invalid_message", message, None, &Value::Null);
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}_{}_{}", self.suffix, self.ids)
    }

    fn input_bytes_per_second(&self) -> usize {
        audio::bytes_per_second(self.settings.input_format())
    }

    fn append(&mut self, event: &Value, out: &mut Outbox) {
        let Some(audio) = event["audio"].as_str().and_then(audio::decode) else {
            let message = "Invalid 'audio'. Expected base64-encoded audio.";
            return error(
                out,
                "invalid_value",
                message,
                Some("audio"),
                &event["event_id"],
            );
        };
        let ms = audio.len() as u64 * 1000 / self.input_bytes_per_second() as u64;
        let vad = self.settings.turn_detection();
        // Loudness is measured on PCM16 only.
        let level = (self.settings.input_format() == "audio/pcm").then(|| audio::level(&audio));
        match self.buffer.append(audio.len(), ms, vad.zip(level)) {
            None => {}
            Some(Turn::Started { audio_start_ms }) => {
                let item_id = self.next_id("item");
                self.speech_item = Some(item_id.clone());
                out.push(
                    "input_audio_buffer.speech_started",
                    json!({"audio_start_ms": audio_start_ms, "item_id": item_id}),
                );
                if vad.is_some_and(|vad| vad.interrupt_response) {
                    self.cancel("turn_detected", out);
                }
            }
            Some(Turn::Stopped {
                audio_end_ms,
                audio_ms,
            }) => {
                let item_id = self.speech_item.take();
                out.push(
                    "input_audio_buffer.speech_stopped",
                    json!({"audio_end_ms": audio_end_ms, "item_id": item_id}),
                );
                if self.commit(item_id, audio_ms, &Value::Null, out)
                    && vad.is_some_and(|vad| vad.create_response)
                {
                    self.respond(&Value::Null, &Value::Null, out);
                }
            }
        }
    }

    /// Turns `ms` of buffered audio into a user item; `false` (and an
    /// `error` event) when there is less than 100 ms of it.
    fn commit(
        &mut self,
        item_id: Option<String>,
        ms: u64,
        client_event_id: &Value,
        out: &mut Outbox,
    ) -> bool {
        if ms < 100 {
            let message = format!(
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has {ms}ms of audio."
            );
            error(
                out,
                "input_audio_buffer_commit_empty",
                &message,
                None,
                client_event_id,
            );
            return false;
        }
        self.buffer.clear();
        let item_id = item_id.unwrap_or_else(|| self.next_id("item"));
        let previous = self.last_item.replace(item_id.clone());
        out.push(
            "input_audio_buffer.committed",
            json!({"previous_item_id": previous, "item_id": item_id}),
        );
        let item = json!({
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": null}],
        });
        out.push(
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": item}),
        );
        out.push(
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": item}),
        );
        if self.settings.transcribes_input() {
            let seconds = ms as f64 / 1000.0;
            out.push(
                "conversation.item.input_audio_transcription.completed",
                json!({
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": format!("({seconds:.1} s of audio)"),
                    "usage": {"type": "duration", "seconds": seconds},
                }),
            );
        }
        self.context.audio += (ms as f64 / 1000.0 * INPUT_AUDIO_TOKENS_PER_SECOND).round() as u64;
        self.heard = Heard::Audio { ms };
        true
    }

    fn create_item(&mut self, event: &Value, out: &mut Outbox) {
        let Some(fields) = event["item"].as_object() else {
            let message = "Missing required parameter: 'item'.";
            return error(
                out,
                "missing_required_parameter",
                message,
                Some("item"),
                &event["event_id"],
            );
        };
        let mut item = Value::Object(fields.clone());
        if !item["id"].is_string() {
            item["id"] = self.next_id("item").into();
        }
        item["object"] = "realtime.item".into();
        item["status"] = "completed".into();
        let text: Vec<&str> = fields
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|part| part["text"].as_str())
            .collect();
        let text = text.join(" ");
        self.context.text += text_tokens(&text);
        if fields.get("role").and_then(Value::as_str) == Some("user") && !text.is_empty() {
            self.heard = Heard::Text(text);
        }
        let previous = match &event["previous_item_id"] {
            Value::String(previous) => Some(previous.clone()),
            _ => self.last_item.clone(),
        };
        self.last_item = item["id"].as_str().map(str::to_owned);
        out.push(
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": item}),
        );
        out.push(
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": item}),
        );
    }

    /// Queues a response; `options` is the `response` of a `response.create`.
    fn respond(&mut self, options: &Value, client_event_id: &Value, out: &mut Outbox) {
        if out.responding() {
            let active = self
                .last_reply
                .as_ref()
                .map_or("", |reply| reply.id.as_str());
            let message = format!(
                "Conversation already has an active response in progress: {active}. Wait until the response is finished before creating a new one."
            );
            return error(
                out,
                "conversation_already_has_active_response",
                &message,
                None,
                client_event_id,
            );
        }
        let modalities = options
            .get("output_modalities")
            .unwrap_or(self.settings.output_modalities());
        let audio = modalities
            .as_array()
            .is_none_or(|modalities| modalities.iter().any(|modality| modality == "audio"));
        let in_conversation = options.get("conversation").and_then(Value::as_str) != Some("none");
        let instructions = options
            .get("instructions")
            .and_then(Value::as_str)
            .unwrap_or(self.settings.instructions());
        let input = Tokens {
            text: text_tokens(instructions) + self.context.text,
            audio: self.context.audio,
        };
        let reply = Reply {
            id: self.next_id("resp"),
            item_id: self.next_id("item"),
            previous_item_id: self.last_item.clone().filter(|_| in_conversation),
            conversation_id: in_conversation.then(|| format!("conv_{}", self.suffix)),
            text: self.reply_text(),
            audio,
            voice: self.settings.session()["audio"]["output"]["voice"].clone(),
            metadata: options.get("metadata").cloned().unwrap_or_default(),
            input,
        };
        let output = reply.send(out);
        if in_conversation {
            self.context.text += output.text;
            self.context.audio += output.audio;
            self.last_item = Some(reply.item_id.clone());
        }
        self.last_reply = Some(reply);
    }

    /// Stops the response being sent, if any, with `response.done` (`cancelled`).
    fn cancel(&mut self, reason: &str, out: &mut Outbox) -> bool {
        let Some(reply) = self.last_reply.as_ref().filter(|_| out.cancel_response()) else {
            return false;
        };
        let mut response = reply.object("cancelled", json!([]), Value::Null);
        response["status_details"] = json!({"type": "cancelled", "reason": reason});
        out.push("response.done", json!({"response": response}));
        true
    }

    fn reply_text(&self) -> String {
        let opening = match &self.heard {
            Heard::Nothing => "Hello!".to_owned(),
            Heard::Text(text) => format!("You said: “{}”.", clip(text, 120)),
            Heard::Audio { ms } => format!("I heard {:.1} seconds of audio.", *ms as f64 / 1000.0),
        };
        format!("{opening} {SIGNATURE}")
    }
}

/// Queues an `error` event for the client event `client_event_id`.
fn error(
    out: &mut Outbox,
    code: &str,
    message: &str,
    param: Option<&str>,
    client_event_id: &Value,
) {
    out.push(
        "error",
        json!({"error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        }}),
    );
}

/// The first `max` characters of `text`, with `…` when it was longer.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_on_character_boundaries() {
        assert_eq!(clip("héllo", 10), "héllo");
        assert_eq!(clip("héllo", 2), "hé…");
    }
}
