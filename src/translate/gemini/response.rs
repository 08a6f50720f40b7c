//! The OpenAI response lifecycle, built from Gemini's turns.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Control, GeminiTranslator, Output, Phase};

/// The response being streamed to the client.
#[derive(Debug)]
pub(super) struct Response {
    id: String,
    /// Finished output items, for `response.done`.
    output: Vec<Value>,
    message: Option<Message>,
    /// Gemini said `interrupted` (barge-in).
    pub(super) interrupted: bool,
    /// The client sent `response.cancel`.
    pub(super) cancelled: bool,
    metadata: Value,
}

/// The assistant message item of the open response.
#[derive(Debug)]
struct Message {
    id: String,
    output_index: usize,
    /// Text rather than audio (a text-only session).
    text: bool,
    /// The transcript (audio) or the text (text) so far.
    content: String,
}

/// The user's current spoken turn.
#[derive(Debug, Default)]
pub(super) struct UserTurn {
    /// The item id, once the turn is known (speech, transcription, commit).
    item_id: Option<String>,
    /// `input_audio_buffer.committed` and `conversation.item.added` were sent.
    committed: bool,
    /// `input_audio_buffer.speech_stopped` was sent.
    stopped: bool,
    transcript: String,
}

/// What became of a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    Pending,
    Answered,
    Cancelled,
}

/// A tool call Gemini made.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub(super) name: String,
    /// Gemini's id, if it gave one (the OpenAI `call_id` is then the same).
    pub(super) gemini_id: Option<String>,
    pub(super) state: CallState,
}

/// Tool calls by OpenAI `call_id`, the most recent 256.
#[derive(Debug, Default)]
pub(super) struct Calls {
    calls: HashMap<String, Call>,
    order: std::collections::VecDeque<String>,
}

impl Calls {
    const KEEP: usize = 256;

    pub(super) fn insert(&mut self, call_id: String, call: Call) {
        if self.order.len() == Self::KEEP
            && let Some(oldest) = self.order.pop_front()
        {
            self.calls.remove(&oldest);
        }
        self.order.push_back(call_id.clone());
        self.calls.insert(call_id, call);
    }

    pub(super) fn get_mut(&mut self, call_id: &str) -> Option<&mut Call> {
        self.calls.get_mut(call_id)
    }

    /// Marks the calls Gemini cancelled (by Gemini id).
    pub(super) fn cancel(&mut self, gemini_id: &str) {
        for call in self.calls.values_mut() {
            if call.gemini_id.as_deref() == Some(gemini_id) && call.state == CallState::Pending {
                call.state = CallState::Cancelled;
            }
        }
    }

    pub(super) fn any_pending(&self) -> bool {
        self.calls
            .values()
            .any(|call| call.state == CallState::Pending)
    }
}

impl GeminiTranslator {
    /// The open response, created (`response.created`) if there is none.
    pub(super) fn ensure_response(&mut self) {
        if self.response.is_some() {
            return;
        }
        self.user_committed();
        let id = self.ids.make("resp");
        let mut response = self.response_object(&id, "in_progress", Value::Null, Vec::new());
        response["usage"] = Value::Null;
        self.emit("response.created", [("response", response)]);
        self.response = Some(Response {
            id,
            output: Vec::new(),
            message: None,
            interrupted: false,
            cancelled: false,
            metadata: std::mem::take(&mut self.metadata),
        });
    }

    fn response_object(&self, id: &str, status: &str, details: Value, output: Vec<Value>) -> Value {
        let mut response = serde_json::Map::new();
        response.insert("id".into(), id.into());
        response.insert("object".into(), "realtime.response".into());
        response.insert("status".into(), status.into());
        response.insert("status_details".into(), details);
        response.insert("output".into(), Value::Array(output));
        response.insert(
            "conversation_id".into(),
            self.conversation_id.clone().into(),
        );
        response.extend(self.session.response_defaults());
        let metadata = self
            .response
            .as_ref()
            .map_or(&self.metadata, |response| &response.metadata);
        response.insert("metadata".into(), metadata.clone());
        Value::Object(response)
    }

    /// The open response's assistant message, created if there is none.
    fn ensure_message(&mut self) {
        self.ensure_response();
        if self.response.as_ref().is_some_and(|r| r.message.is_some()) {
            return;
        }
        let id = self.ids.make("item");
        let text = self.session.text_output();
        let (response_id, output_index) = {
            let response = self.response.as_ref().expect("ensured");
            (response.id.clone(), response.output.len())
        };
        let item = json!({
            "id": id, "object": "realtime.item", "type": "message",
            "role": "assistant", "status": "in_progress", "content": [],
        });
        self.emit(
            "response.output_item.added",
            [
                ("response_id", response_id.clone().into()),
                ("output_index", output_index.into()),
                ("item", item.clone()),
            ],
        );
        self.item_added(item);
        let part = if text {
            json!({"type": "text", "text": ""})
        } else {
            json!({"type": "audio", "transcript": ""})
        };
        self.emit(
            "response.content_part.added",
            [
                ("response_id", response_id.into()),
                ("item_id", id.clone().into()),
                ("output_index", output_index.into()),
                ("content_index", 0.into()),
                ("part", part),
            ],
        );
        if let Some(response) = &mut self.response {
            response.message = Some(Message {
                id,
                output_index,
                text,
                content: String::new(),
            });
        }
    }

    /// `conversation.item.added`, chained to the previous item.
    pub(super) fn item_added(&mut self, item: Value) {
        let previous = self
            .last_item
            .replace(item["id"].as_str().unwrap_or_default().to_owned());
        self.emit(
            "conversation.item.added",
            [("previous_item_id", previous.into()), ("item", item)],
        );
    }

    /// The ids every delta of the open message carries.
    fn message_ids(&self) -> Option<(String, String, usize)> {
        let response = self.response.as_ref()?;
        let message = response.message.as_ref()?;
        Some((
            response.id.clone(),
            message.id.clone(),
            message.output_index,
        ))
    }

    /// One chunk of model audio (base64 PCM at 24 kHz).
    pub(super) fn audio_delta(&mut self, data: &str) {
        if self.session.text_output() {
            return;
        }
        let Some(delta) = self.output.convert(data) else {
            tracing::debug!("model audio that is not base64 dropped");
            return;
        };
        if delta.is_empty() {
            return;
        }
        self.ensure_message();
        let Some((response_id, item_id, output_index)) = self.message_ids() else {
            return;
        };
        if delta
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            // The hot path: written directly, the base64 needs no escaping.
            let event_id = self.ids.make("event");
            self.out.push(Output::Client(format!(
                r#"{{"type":"response.output_audio.delta","event_id":"{event_id}","response_id":"{response_id}","item_id":"{item_id}","output_index":{output_index},"content_index":0,"delta":"{delta}"}}"#
            )));
        } else {
            self.emit(
                "response.output_audio.delta",
                [
                    ("response_id", response_id.into()),
                    ("item_id", item_id.into()),
                    ("output_index", output_index.into()),
                    ("content_index", 0.into()),
                    ("delta", delta.into()),
                ],
            );
        }
    }

    /// Model text: the transcript of its audio, or its text.
    pub(super) fn text_delta(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.ensure_message();
        let Some((response_id, item_id, output_index)) = self.message_ids() else {
            return;
        };
        let kind = match self.response.as_mut().and_then(|r| r.message.as_mut()) {
            Some(message) => {
                message.content.push_str(text);
                if message.text {
                    "response.output_text.delta"
                } else {
                    "response.output_audio_transcript.delta"
                }
            }
            None => return,
        };
        self.emit(
            kind,
            [
                ("response_id", response_id.into()),
                ("item_id", item_id.into()),
                ("output_index", output_index.into()),
                ("content_index", 0.into()),
                ("delta", text.into()),
            ],
        );
    }

    /// Ends the open message item with `status` (`completed`, `incomplete`).
    pub(super) fn close_message(&mut self, status: &str) {
        let Some(response) = self.response.as_mut() else {
            return;
        };
        let Some(message) = response.message.take() else {
            return;
        };
        let response_id = response.id.clone();
        let ids = |extra: Vec<(&'static str, Value)>| {
            let mut fields = vec![
                ("response_id", Value::from(response_id.clone())),
                ("item_id", message.id.clone().into()),
                ("output_index", message.output_index.into()),
                ("content_index", 0.into()),
            ];
            fields.extend(extra);
            fields
        };
        let (done_events, part, content) = if message.text {
            (
                vec![(
                    "response.output_text.done",
                    ids(vec![("text", message.content.clone().into())]),
                )],
                json!({"type": "text", "text": message.content}),
                json!({"type": "output_text", "text": message.content}),
            )
        } else {
            (
                vec![
                    ("response.output_audio.done", ids(vec![])),
                    (
                        "response.output_audio_transcript.done",
                        ids(vec![("transcript", message.content.clone().into())]),
                    ),
                ],
                json!({"type": "audio", "transcript": message.content}),
                json!({"type": "output_audio", "transcript": message.content}),
            )
        };
        let item = json!({
            "id": message.id, "object": "realtime.item", "type": "message",
            "role": "assistant", "status": status, "content": [content],
        });
        response.output.push(item.clone());
        for (kind, fields) in done_events {
            self.emit_fields(kind, fields);
        }
        self.emit_fields("response.content_part.done", ids(vec![("part", part)]));
        self.emit(
            "response.output_item.done",
            [
                ("response_id", response_id.clone().into()),
                ("output_index", message.output_index.into()),
                ("item", item.clone()),
            ],
        );
        self.emit("conversation.item.done", [("item", item)]);
    }

    fn emit_fields(&mut self, kind: &str, fields: Vec<(&'static str, Value)>) {
        self.emit_ordered(kind, fields.iter().map(|(key, value)| (*key, value)));
    }

    /// One tool call as a `function_call` item of the open response.
    pub(super) fn function_call(&mut self, call_id: &str, name: &str, arguments: &str) {
        self.ensure_response();
        let (response_id, output_index) = {
            let response = self.response.as_ref().expect("ensured");
            (response.id.clone(), response.output.len())
        };
        let id = self.ids.make("item");
        let item = |status: &str, arguments: &str| {
            json!({
                "id": id, "object": "realtime.item", "type": "function_call", "status": status,
                "call_id": call_id, "name": name, "arguments": arguments,
            })
        };
        let added = item("in_progress", "");
        let done = item("completed", arguments);
        self.emit(
            "response.output_item.added",
            [
                ("response_id", response_id.clone().into()),
                ("output_index", output_index.into()),
                ("item", added.clone()),
            ],
        );
        self.item_added(added);
        let ids = [
            ("response_id", Value::from(response_id.clone())),
            ("item_id", id.clone().into()),
            ("output_index", output_index.into()),
            ("call_id", call_id.into()),
        ];
        let mut delta = ids.to_vec();
        delta.push(("delta", arguments.into()));
        self.emit_fields("response.function_call_arguments.delta", delta);
        let mut finished = ids.to_vec();
        finished.push(("name", name.into()));
        finished.push(("arguments", arguments.into()));
        self.emit_fields("response.function_call_arguments.done", finished);
        self.emit(
            "response.output_item.done",
            [
                ("response_id", response_id.into()),
                ("output_index", output_index.into()),
                ("item", done.clone()),
            ],
        );
        self.emit("conversation.item.done", [("item", done.clone())]);
        if let Some(response) = &mut self.response {
            response.output.push(done);
        }
    }

    /// Ends the open response: `response.done` with its output, status and
    /// the usage reported so far. Nothing when no response is open.
    pub(super) fn finish_response(&mut self, status: &str, details: Value) {
        let item_status = if status == "completed" {
            "completed"
        } else {
            "incomplete"
        };
        self.close_message(item_status);
        let Some(response) = self.response.take() else {
            return;
        };
        let usage = self.usage.take().map(|usage| usage.to_openai());
        // Keep the metadata of this response while building its object.
        let metadata = std::mem::replace(&mut self.metadata, response.metadata);
        let mut object = self.response_object(&response.id, status, details, response.output);
        self.metadata = metadata;
        object["usage"] = usage.unwrap_or(Value::Null);
        self.emit("response.done", [("response", object)]);
        self.maybe_reconnect();
    }

    /// Asks for a fresh connection once Gemini said goodbye, if the session
    /// is at a safe point (no response streaming, no tool call unanswered)
    /// and can be resumed.
    pub(super) fn maybe_reconnect(&mut self) {
        if !self.go_away || self.phase != Phase::Live {
            return;
        }
        if self.response.is_some() || self.calls.any_pending() {
            return;
        }
        // Just sent (a tool's answer, content released after one): Gemini
        // answers it on this connection, and the turn's end is the safe point.
        if self
            .out
            .iter()
            .any(|output| matches!(output, Output::Upstream(_)))
        {
            return;
        }
        self.reconnect();
    }

    /// Asks for a fresh connection resuming the latest handle, if any.
    pub(super) fn reconnect(&mut self) {
        if self.phase != Phase::Live {
            return;
        }
        let Some(handle) = self.handle.clone() else {
            return;
        };
        self.go_away = false;
        self.phase = Phase::Resuming;
        let setup = self.session.setup(&self.config, Some(&handle)).to_string();
        self.activity_open = false;
        self.out.push(Output::Control(Control::Reconnect { setup }));
    }

    /// The user's turn item id, allocated on first need.
    pub(super) fn user_item_id(&mut self) -> String {
        if let Some(id) = &self.user.item_id {
            return id.clone();
        }
        let id = self.ids.make("item");
        self.user.item_id = Some(id.clone());
        id
    }

    /// `input_audio_buffer.speech_started` for the user's turn.
    pub(super) fn speech_started(&mut self, audio_start_ms: u64) {
        if self.user.committed {
            // A new turn starts.
            self.user = UserTurn::default();
        }
        let item_id = self.user_item_id();
        self.emit(
            "input_audio_buffer.speech_started",
            [
                ("audio_start_ms", audio_start_ms.into()),
                ("item_id", item_id.into()),
            ],
        );
    }

    /// `input_audio_buffer.speech_stopped` for the user's turn, once.
    pub(super) fn speech_stopped(&mut self, audio_end_ms: u64) {
        if self.user.stopped {
            return;
        }
        self.user.stopped = true;
        let item_id = self.user_item_id();
        self.emit(
            "input_audio_buffer.speech_stopped",
            [
                ("audio_end_ms", audio_end_ms.into()),
                ("item_id", item_id.into()),
            ],
        );
    }

    /// `input_audio_buffer.committed` and the user's audio item, once per
    /// turn, if the user spoke (audio or transcription) in this turn.
    pub(super) fn user_committed(&mut self) {
        if self.user.committed || (self.user.item_id.is_none() && !self.appended) {
            return;
        }
        if !self.user.stopped && self.appended && !self.session.manual_turns() {
            let end = self.input.elapsed_ms();
            self.speech_stopped(end);
        }
        self.user.committed = true;
        self.appended = false;
        let item_id = self.user_item_id();
        self.emit(
            "input_audio_buffer.committed",
            [
                ("previous_item_id", self.last_item.clone().into()),
                ("item_id", item_id.clone().into()),
            ],
        );
        let item = json!({
            "id": item_id, "object": "realtime.item", "type": "message", "role": "user",
            "status": "completed", "content": [{"type": "input_audio", "transcript": null}],
        });
        self.item_added(item);
    }

    /// A chunk of the transcript of the user's speech.
    pub(super) fn input_transcript(&mut self, text: &str, finished: bool) {
        if !text.is_empty() {
            let item_id = self.user_item_id();
            self.user_committed();
            self.user.transcript.push_str(text);
            self.emit(
                "conversation.item.input_audio_transcription.delta",
                [
                    ("item_id", item_id.into()),
                    ("content_index", 0.into()),
                    ("delta", text.into()),
                ],
            );
        }
        if finished {
            self.input_transcript_done();
        }
    }

    /// Completes the user's transcript, if one was streamed.
    pub(super) fn input_transcript_done(&mut self) {
        if self.user.transcript.is_empty() {
            return;
        }
        let transcript = std::mem::take(&mut self.user.transcript);
        let item_id = self.user_item_id();
        self.emit(
            "conversation.item.input_audio_transcription.completed",
            [
                ("item_id", item_id.into()),
                ("content_index", 0.into()),
                ("transcript", transcript.into()),
            ],
        );
        // The next speech is a new turn.
        self.user = UserTurn {
            committed: false,
            ..UserTurn::default()
        };
    }
}
