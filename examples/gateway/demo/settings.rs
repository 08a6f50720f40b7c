//! The demo provider's session configuration: the GA `session` object that
//! `session.update` edits and the rest of the demo reads.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// What the demo answers to unless a `session.update` says otherwise.
const INSTRUCTIONS: &str = "You are the demo provider of tower-realtime. Answer briefly, \
     then play a chime, so that people can try their gateway without a provider key.";

/// The session object of one demo session.
#[derive(Debug)]
pub(crate) struct Settings {
    session: Value,
}

/// Server-side turn detection, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TurnDetection {
    /// The loudness (RMS, 0..1) above which audio counts as speech.
    pub(crate) speech_level: f32,
    /// Audio kept before the start of speech, in milliseconds.
    pub(crate) prefix_padding_ms: u64,
    /// The silence that ends a turn, in milliseconds.
    pub(crate) silence_ms: u64,
    /// Whether the end of a turn starts a response.
    pub(crate) create_response: bool,
    /// Whether speech cancels the response being sent.
    pub(crate) interrupt_response: bool,
}

impl Settings {
    /// OpenAI's GA defaults: audio out, server VAD, PCM16 at 24 kHz both ways.
    pub(crate) fn new(id: &str, model: Option<String>) -> Self {
        let expires_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| now.as_secs() + 3600);
        let session = json!({
            "type": "realtime",
            "object": "realtime.session",
            "id": id,
            "model": model,
            "output_modalities": ["audio"],
            "instructions": INSTRUCTIONS,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": null,
            "prompt": null,
            "expires_at": expires_at,
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
        });
        Self { session }
    }

    /// The whole session object.
    pub(crate) fn session(&self) -> &Value {
        &self.session
    }

    /// Applies the `session` of a `session.update`: objects merge, other
    /// values (including `null`) replace. The id and object type stay.
    pub(crate) fn update(&mut self, patch: &Value) {
        let Value::Object(fields) = patch else { return };
        for (name, value) in fields {
            if !matches!(name.as_str(), "id" | "object" | "expires_at") {
                merge(&mut self.session[name], value);
            }
        }
    }

    /// `["audio"]` or `["text"]`.
    pub(crate) fn output_modalities(&self) -> &Value {
        &self.session["output_modalities"]
    }

    /// The instructions the model follows.
    pub(crate) fn instructions(&self) -> &str {
        self.session["instructions"].as_str().unwrap_or_default()
    }

    /// The input audio format (`audio/pcm`, `audio/pcmu` or `audio/pcma`).
    pub(crate) fn input_format(&self) -> &str {
        self.session["audio"]["input"]["format"]["type"]
            .as_str()
            .unwrap_or("audio/pcm")
    }

    /// Whether input audio is transcribed.
    pub(crate) fn transcribes_input(&self) -> bool {
        self.session["audio"]["input"]["transcription"].is_object()
    }

    /// Server-side turn detection, unless it is off (`null`).
    pub(crate) fn turn_detection(&self) -> Option<TurnDetection> {
        let vad = self.session["audio"]["input"]["turn_detection"].as_object()?;
        let number =
            |name: &str, default: f64| vad.get(name).and_then(Value::as_f64).unwrap_or(default);
        let flag = |name: &str| vad.get(name).and_then(Value::as_bool).unwrap_or(true);
        Some(TurnDetection {
            // Threshold 0.5 (the default) is an RMS level of 0.02, about -34 dBFS.
            speech_level: (0.04 * number("threshold", 0.5)) as f32,
            prefix_padding_ms: number("prefix_padding_ms", 300.0) as u64,
            silence_ms: number("silence_duration_ms", 500.0) as u64,
            create_response: flag("create_response"),
            interrupt_response: flag("interrupt_response"),
        })
    }
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(into), Value::Object(patch)) => {
            for (name, value) in patch {
                merge(into.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
        (into, patch) => *into = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_merge_and_null_turns_detection_off() {
        let mut settings = Settings::new("sess_1", Some("demo".into()));
        assert!(settings.turn_detection().unwrap().create_response);
        assert!(!settings.transcribes_input());
        settings.update(&json!({
            "id": "other",
            "output_modalities": ["text"],
            "audio": {"input": {"turn_detection": null, "transcription": {"model": "whisper-1"}}},
        }));
        assert_eq!(settings.session()["id"], "sess_1");
        assert_eq!(settings.output_modalities(), &json!(["text"]));
        assert_eq!(settings.turn_detection(), None);
        assert!(settings.transcribes_input());
        assert_eq!(settings.input_format(), "audio/pcm");
        assert_eq!(settings.session()["audio"]["output"]["voice"], "alloy");
    }

    #[test]
    fn turn_detection_reads_the_configuration() {
        let mut settings = Settings::new("sess_1", None);
        settings.update(&json!({"audio": {"input": {"turn_detection": {
            "threshold": 0.25, "silence_duration_ms": 800, "create_response": false,
        }}}}));
        let vad = settings.turn_detection().unwrap();
        assert!((vad.speech_level - 0.01).abs() < 1e-6);
        assert_eq!(vad.silence_ms, 800);
        assert_eq!(vad.prefix_padding_ms, 300);
        assert!(!vad.create_response);
        assert!(vad.interrupt_response);
    }
}
