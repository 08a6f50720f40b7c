//! The client's view of the session (GA `session` object), merged from
//! `session.update`s, and the Gemini `setup` built from it.

use serde_json::{Map, Value, json};

use super::config::{GeminiConfig, TextResponses};
use crate::translate::audio::AudioFormat;

/// OpenAI voice names and the Gemini voices closest to them; other names
/// pass through (a client may name a Gemini voice).
const VOICES: [(&str, &str); 10] = [
    ("alloy", "Zephyr"),
    ("ash", "Charon"),
    ("ballad", "Fenrir"),
    ("cedar", "Charon"),
    ("coral", "Aoede"),
    ("echo", "Puck"),
    ("marin", "Aoede"),
    ("sage", "Kore"),
    ("shimmer", "Leda"),
    ("verse", "Orus"),
];

/// Members of `session` that a client cannot change.
const FIXED: [&str; 4] = ["type", "object", "id", "model"];

/// Something in a `session.update` that Gemini cannot do; the client gets
/// it as an `error` event and the rest of the update applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) param: &'static str,
}

/// The session as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Session {
    view: Map<String, Value>,
    /// Whether the client chose a voice (Gemini's default voice otherwise).
    voice_chosen: bool,
    /// Read from `view` on every change: asked on every event.
    text: bool,
    manual: bool,
}

impl Session {
    /// The defaults of an OpenAI GA session.
    pub(super) fn new(id: &str, model: &str) -> Self {
        let Value::Object(view) = json!({
            "type": "realtime",
            "object": "realtime.session",
            "id": id,
            "model": model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": null,
            "truncation": "auto",
            "prompt": null,
            "include": null,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": null,
                    "noise_reduction": null,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                        "idle_timeout_ms": null,
                        "create_response": true,
                        "interrupt_response": true,
                    },
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "voice": "alloy",
                    "speed": 1.0,
                },
            },
        }) else {
            unreachable!("an object literal")
        };
        let mut session = Self {
            view,
            voice_chosen: false,
            text: false,
            manual: false,
        };
        session.cache();
        session
    }

    fn cache(&mut self) {
        self.text = self
            .view
            .get("output_modalities")
            .and_then(Value::as_array)
            .is_some_and(|modalities| {
                modalities.iter().any(|m| m == "text") && !modalities.iter().any(|m| m == "audio")
            });
        self.manual = matches!(
            self.view_pointer("/audio/input/turn_detection"),
            None | Some(Value::Null)
        );
    }

    /// The GA `session` object.
    pub(super) fn view(&self) -> Value {
        Value::Object(self.view.clone())
    }

    /// This session with `update` (a `session.update`'s `session`) applied,
    /// and what of it cannot be honoured.
    pub(super) fn merged(&self, update: &Map<String, Value>) -> (Session, Vec<Problem>) {
        let mut next = self.clone();
        let mut problems = Vec::new();
        for (key, value) in update {
            if FIXED.contains(&key.as_str()) {
                continue;
            }
            merge(next.view.entry(key.clone()).or_insert(Value::Null), value);
        }
        if pointer(update, "/audio/output/voice").is_some() {
            next.voice_chosen = true;
        }
        next.check_formats(self, &mut problems);
        next.check_turn_detection(&mut problems);
        next.check_tools(&mut problems);
        next.cache();
        (next, problems)
    }

    fn check_formats(&mut self, before: &Session, problems: &mut Vec<Problem>) {
        for (path, param) in [
            ("/audio/input/format", "session.audio.input.format"),
            ("/audio/output/format", "session.audio.output.format"),
        ] {
            let known = self.view_pointer(path).and_then(AudioFormat::from_json);
            if let Some(format) = known {
                // As OpenAI shows it: G.711 has no `rate`, PCM's is 24 kHz.
                if let Some(slot) = self.view_pointer_mut(path) {
                    *slot = format.to_json();
                }
            } else {
                let previous = before.view_pointer(path).cloned().unwrap_or(Value::Null);
                if let Some(slot) = self.view_pointer_mut(path) {
                    *slot = previous;
                }
                problems.push(Problem {
                    code: "unsupported_audio_format",
                    message: "audio formats are audio/pcm (24 kHz), audio/pcmu and audio/pcma"
                        .into(),
                    param,
                });
            }
        }
    }

    fn check_turn_detection(&mut self, problems: &mut Vec<Problem>) {
        if let Some(Value::Object(turns)) = self.view_pointer_mut("/audio/input/turn_detection")
            && turns.get("create_response") == Some(&Value::Bool(false))
        {
            turns.insert("create_response".into(), Value::Bool(true));
            problems.push(Problem {
                    code: "unsupported_turn_detection",
                    message: "this model always answers a detected turn: create_response cannot be false; use turn_detection null for manual turns".into(),
                    param: "session.audio.input.turn_detection.create_response",
                });
        }
    }

    fn check_tools(&mut self, problems: &mut Vec<Problem>) {
        let Some(Value::Array(tools)) = self.view.get_mut("tools") else {
            return;
        };
        let before = tools.len();
        tools.retain(|tool| declaration(tool).is_some());
        if tools.len() != before {
            problems.push(Problem {
                code: "unsupported_tool",
                message: "only function tools can be used with this model; the others were removed"
                    .into(),
                param: "session.tools",
            });
        }
    }

    fn view_pointer(&self, path: &str) -> Option<&Value> {
        pointer(&self.view, path)
    }

    fn view_pointer_mut(&mut self, path: &str) -> Option<&mut Value> {
        let mut segments = path.split('/').skip(1);
        let mut value = self.view.get_mut(segments.next()?)?;
        for segment in segments {
            value = value.as_object_mut()?.get_mut(segment)?;
        }
        Some(value)
    }

    /// The client's input audio format.
    pub(super) fn input_format(&self) -> AudioFormat {
        self.view_pointer("/audio/input/format")
            .and_then(AudioFormat::from_json)
            .unwrap_or_default()
    }

    /// The client's output audio format.
    pub(super) fn output_format(&self) -> AudioFormat {
        self.view_pointer("/audio/output/format")
            .and_then(AudioFormat::from_json)
            .unwrap_or_default()
    }

    /// Whether the client wants text rather than audio.
    pub(super) fn text_output(&self) -> bool {
        self.text
    }

    /// Whether turns are the client's to mark (`turn_detection: null`).
    pub(super) fn manual_turns(&self) -> bool {
        self.manual
    }

    /// The members of `response` objects that echo the session.
    pub(super) fn response_defaults(&self) -> Map<String, Value> {
        let mut defaults = Map::new();
        for key in ["output_modalities", "max_output_tokens"] {
            if let Some(value) = self.view.get(key) {
                defaults.insert(key.into(), value.clone());
            }
        }
        if let Some(Value::Object(output)) = self.view_pointer("/audio/output") {
            let mut output = output.clone();
            output.remove("speed");
            defaults.insert("audio".into(), json!({ "output": output }));
        }
        defaults
    }

    /// The Gemini `setup` message for this session, resuming `handle` if given.
    pub(super) fn setup(&self, config: &GeminiConfig, handle: Option<&str>) -> Value {
        let native_text = self.text_output() && config.text_mode() == TextResponses::Native;
        let mut generation = Map::new();
        generation.insert(
            "responseModalities".into(),
            json!([if native_text { "TEXT" } else { "AUDIO" }]),
        );
        if self.voice_chosen
            && let Some(voice) = self
                .view_pointer("/audio/output/voice")
                .and_then(Value::as_str)
        {
            let name = VOICES
                .iter()
                .find(|(openai, _)| *openai == voice)
                .map_or(voice, |(_, gemini)| gemini);
            generation.insert(
                "speechConfig".into(),
                json!({"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": name}}}),
            );
        }
        if let Some(max) = self.view.get("max_output_tokens").and_then(Value::as_u64) {
            generation.insert("maxOutputTokens".into(), max.into());
        }
        if let Some(temperature) = self.view.get("temperature").filter(|t| t.is_number()) {
            generation.insert("temperature".into(), temperature.clone());
        }

        let mut setup = Map::new();
        setup.insert("model".into(), config.model().into());
        setup.insert("generationConfig".into(), Value::Object(generation));
        if let Some(instructions) = self
            .view
            .get("instructions")
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
        {
            setup.insert(
                "systemInstruction".into(),
                json!({"parts": [{"text": instructions}]}),
            );
        }
        let declarations: Vec<Value> = match self.view.get("tool_choice") {
            Some(choice) if choice == "none" => Vec::new(),
            _ => self
                .view
                .get("tools")
                .and_then(Value::as_array)
                .map(|tools| tools.iter().filter_map(declaration).collect())
                .unwrap_or_default(),
        };
        if !declarations.is_empty() {
            setup.insert(
                "tools".into(),
                json!([{ "functionDeclarations": declarations }]),
            );
        }
        if let Some(input) = self.realtime_input_config() {
            setup.insert("realtimeInputConfig".into(), input);
        }
        if self
            .view_pointer("/audio/input/transcription")
            .is_some_and(Value::is_object)
        {
            setup.insert("inputAudioTranscription".into(), json!({}));
        }
        if !native_text {
            setup.insert("outputAudioTranscription".into(), json!({}));
        }
        let resumption = match handle {
            Some(handle) => {
                let mut resume = json!({ "handle": handle });
                if config.backend() == super::Backend::Vertex {
                    resume["transparent"] = Value::Bool(true);
                }
                resume
            }
            None => json!({}),
        };
        setup.insert("sessionResumption".into(), resumption);
        if config.compression() {
            setup.insert(
                "contextWindowCompression".into(),
                json!({"slidingWindow": {}}),
            );
        }
        json!({ "setup": setup })
    }

    fn realtime_input_config(&self) -> Option<Value> {
        let turns = match self.view_pointer("/audio/input/turn_detection") {
            None | Some(Value::Null) => {
                return Some(json!({"automaticActivityDetection": {"disabled": true}}));
            }
            Some(Value::Object(turns)) => turns,
            Some(_) => return None,
        };
        let mut config = Map::new();
        if turns.get("type").and_then(Value::as_str) != Some("semantic_vad") {
            let mut detection = Map::new();
            detection.insert("disabled".into(), Value::Bool(false));
            if let Some(ms) = turns.get("prefix_padding_ms").and_then(Value::as_u64) {
                detection.insert("prefixPaddingMs".into(), ms.into());
            }
            if let Some(ms) = turns.get("silence_duration_ms").and_then(Value::as_u64) {
                detection.insert("silenceDurationMs".into(), ms.into());
            }
            config.insert(
                "automaticActivityDetection".into(),
                Value::Object(detection),
            );
        }
        if turns.get("interrupt_response") == Some(&Value::Bool(false)) {
            config.insert("activityHandling".into(), "NO_INTERRUPTION".into());
        }
        (!config.is_empty()).then_some(Value::Object(config))
    }
}

/// A Gemini function declaration from an OpenAI tool: the GA flat shape
/// (`{type, name, description, parameters}`) or the chat-completions
/// nested one (`{type, function: {…}}`). `None` for other tool types.
fn declaration(tool: &Value) -> Option<Value> {
    let tool = tool.as_object()?;
    if tool.get("type").and_then(Value::as_str) != Some("function") {
        return None;
    }
    let function = tool
        .get("function")
        .and_then(Value::as_object)
        .unwrap_or(tool);
    let name = function.get("name")?.as_str()?;
    let mut declaration = Map::new();
    declaration.insert("name".into(), name.into());
    if let Some(description) = function.get("description").and_then(Value::as_str) {
        declaration.insert("description".into(), description.into());
    }
    if let Some(parameters) = function.get("parameters").filter(|p| p.is_object()) {
        declaration.insert("parametersJsonSchema".into(), parameters.clone());
    }
    Some(Value::Object(declaration))
}

/// `update` merged into `slot`: objects member by member, anything else replaced.
fn merge(slot: &mut Value, update: &Value) {
    match (slot, update) {
        (Value::Object(slot), Value::Object(update)) => {
            for (key, value) in update {
                merge(slot.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (slot, update) => *slot = update.clone(),
    }
}

/// The member at `path` (`/a/b/c`, object keys only), without allocating.
fn pointer<'a>(object: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('/').skip(1);
    let mut value = object.get(segments.next()?)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}
