//! The relay tap that accounts for one session.
//!
//! Every message is classified by its top-level `type` with the scanner;
//! only the few events that carry usage or session settings are parsed:
//! `response.done`, `conversation.item.input_audio_transcription.completed`,
//! `session.created` and `session.updated`. Of an
//! `input_audio_buffer.append`, only the length of `audio` is read.
//!
//! The input audio format is what the upstream confirms, never what the
//! client asks for: an upstream refuses a `session.update` it does not
//! accept (with an `error` event), and a client must not be able to make
//! its audio count as shorter than it is. Audio appended between a
//! client's format change and the upstream's `session.updated` counts in
//! the format before it.

use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::audio::{AudioFormat, AudioStream, base64_decoded_len};
use super::info::SessionInfo;
use super::observer::{Observation, Observer, TranscriptionRecord, UsageRecord};
use super::scan::{self, Str};
use super::telemetry;
use super::tokens::Usage;
use super::transcription::{TranscriptionTotals, TranscriptionUsage};
use crate::relay::Tap;

const APPEND: &[u8] = b"input_audio_buffer.append";
const RESPONSE_DONE: &[u8] = b"response.done";
const TRANSCRIPTION_COMPLETED: &[u8] = b"conversation.item.input_audio_transcription.completed";
const SESSION_CREATED: &[u8] = b"session.created";
const SESSION_UPDATED: &[u8] = b"session.updated";

/// Accounts for one session's usage as its messages pass.
pub(crate) struct Meter<'a> {
    info: &'a SessionInfo,
    observer: Option<&'a dyn Observer>,
    totals: Metered,
    audio: AudioStream,
    /// Messages parsed in full.
    #[cfg(test)]
    parsed: usize,
}

/// What a meter counted over a whole session.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Metered {
    pub(crate) session_id: Option<String>,
    pub(crate) responses: u64,
    pub(crate) usage: Usage,
    pub(crate) transcription: TranscriptionTotals,
    pub(crate) input_audio_seconds: f64,
    pub(crate) input_audio_bytes: u64,
}

impl<'a> Meter<'a> {
    pub(crate) fn new(info: &'a SessionInfo, observer: Option<&'a dyn Observer>) -> Self {
        Self {
            info,
            observer,
            totals: Metered::default(),
            audio: AudioStream::new(info.pcm_input_rate),
            #[cfg(test)]
            parsed: 0,
        }
    }

    /// The totals, once the session is over.
    pub(crate) fn finish(self) -> Metered {
        Metered {
            input_audio_seconds: self.audio.seconds(),
            input_audio_bytes: self.audio.bytes(),
            ..self.totals
        }
    }

    fn client_event(&mut self, json: &[u8]) {
        let mut kind = None;
        let mut audio: Option<Str<'_>> = None;
        for (key, value) in scan::members(json) {
            let scan::Value::Str(text) = value else {
                continue;
            };
            match key {
                b"type" if kind.is_none() => {
                    kind = Some(text.raw);
                    // Only appends need another member.
                    if text.raw != APPEND || audio.is_some() {
                        break;
                    }
                }
                b"audio" if audio.is_none() => {
                    audio = Some(text);
                    if kind.is_some() {
                        break;
                    }
                }
                _ => {}
            }
        }
        if let (Some(APPEND), Some(audio)) = (kind, audio) {
            self.audio
                .append(base64_decoded_len(audio.ascii_len(), audio.raw));
        }
    }

    fn upstream_event(&mut self, json: &[u8]) {
        match scan::event_type(json) {
            Some(RESPONSE_DONE) => self.response_done(json),
            Some(TRANSCRIPTION_COMPLETED) => self.transcription(json),
            Some(SESSION_CREATED | SESSION_UPDATED) => {
                if let Some(event) = self.parse(json) {
                    if self.totals.session_id.is_none() {
                        self.totals.session_id = event
                            .pointer("/session/id")
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                    }
                    self.learn_format(&event);
                }
            }
            _ => {}
        }
    }

    fn parse(&mut self, json: &[u8]) -> Option<Value> {
        #[cfg(test)]
        {
            self.parsed += 1;
        }
        serde_json::from_slice(json).ok()
    }

    /// Takes the input format from the upstream's `session`, if it names one
    /// the upstream supports.
    fn learn_format(&mut self, event: &Value) {
        let declared = |session| AudioFormat::declared_by(session, &self.info.pcm_input_rates);
        if let Some(format) = event.get("session").and_then(declared) {
            self.audio.set_format(format);
        }
    }

    fn response_done(&mut self, json: &[u8]) {
        let Some(event) = self.parse(json) else {
            return;
        };
        self.totals.responses += 1;
        let response = event.get("response");
        let Some(usage) = response
            .and_then(|response| response.get("usage"))
            .and_then(Value::as_object)
        else {
            return;
        };
        let usage = Usage::from_json(usage);
        self.totals.usage += &usage;
        telemetry::response_usage(self.info, &usage);
        if let Some(observer) = self.observer {
            let record = UsageRecord {
                provider: self.info.provider.clone(),
                model: self.info.model.clone(),
                identity: self.info.identity.clone(),
                request_id: self.info.request_id.clone(),
                session_id: self.totals.session_id.clone(),
                response_id: response.and_then(|r| string(r, "id")),
                usage,
            };
            observer.observe(Observation::Usage(&record));
        }
    }

    fn transcription(&mut self, json: &[u8]) {
        let Some(event) = self.parse(json) else {
            return;
        };
        let Some(usage) = event
            .get("usage")
            .and_then(Value::as_object)
            .and_then(TranscriptionUsage::from_json)
        else {
            return;
        };
        self.totals.transcription.add(&usage);
        telemetry::transcription_usage(self.info, &usage);
        if let Some(observer) = self.observer {
            let record = TranscriptionRecord {
                provider: self.info.provider.clone(),
                model: self.info.model.clone(),
                identity: self.info.identity.clone(),
                request_id: self.info.request_id.clone(),
                session_id: self.totals.session_id.clone(),
                item_id: string(&event, "item_id"),
                usage,
            };
            observer.observe(Observation::Transcription(&record));
        }
    }
}

fn string(object: &Value, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The bytes of a text or binary message.
fn payload(message: &Message) -> Option<&[u8]> {
    match message {
        Message::Text(text) => Some(text.as_bytes()),
        Message::Binary(bytes) => Some(bytes),
        _ => None,
    }
}

/// No meter, no work: sessions without an observer (and without the
/// `metrics` feature) relay with `None`.
impl Tap for Option<Meter<'_>> {
    fn client_message(&mut self, message: &Message) {
        if let (Some(meter), Some(json)) = (self, payload(message)) {
            meter.client_event(json);
        }
    }

    fn upstream_message(&mut self, message: &Message) {
        if let (Some(meter), Some(json)) = (self, payload(message)) {
            meter.upstream_event(json);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant, SystemTime};

    use serde_json::json;

    use super::*;

    fn info() -> SessionInfo {
        SessionInfo {
            id: crate::hooks::SessionId::next(),
            identity: crate::Identity::new("alice"),
            pcm_input_rate: 24_000,
            pcm_input_rates: vec![24_000, 16_000],
            provider: "openai".into(),
            model: "gpt-realtime".into(),
            deployment: None,
            attempts: Vec::new(),
            model_label: "other".into(),
            request_id: "req_1".into(),
            connect_time: Duration::ZERO,
            started_at: SystemTime::now(),
            started: Instant::now(),
        }
    }

    fn append(base64: &str) -> String {
        json!({"type": "input_audio_buffer.append", "audio": base64}).to_string()
    }

    #[test]
    fn audio_deltas_and_appends_are_never_parsed() {
        let info = info();
        let mut tap = Some(Meter::new(&info, None));
        let delta = "UklGRiQAAABXQVZF".repeat(2_000);
        for _ in 0..100 {
            tap.upstream_message(&Message::text(format!(
                r#"{{"type":"response.output_audio.delta","event_id":"e","delta":"{delta}"}}"#
            )));
            // The delta before the type, and a body that is not even JSON.
            tap.upstream_message(&Message::text(format!(
                r#"{{"delta":"{delta}","type":"response.audio.delta"}}"#
            )));
            tap.upstream_message(&Message::text(format!(
                r#"{{"type":"response.output_audio.delta","delta":"{delta}"#
            )));
            tap.client_message(&Message::text(append(&delta)));
            tap.client_message(&Message::text(format!(
                r#"{{"audio":"{delta}","type":"input_audio_buffer.append","event_id":"e"}}"#
            )));
            tap.client_message(&Message::binary(vec![0u8; 4096]));
        }
        let meter = tap.unwrap();
        assert_eq!(meter.parsed, 0);
        let totals = meter.finish();
        // 200 appends of 32 000 base64 characters: 24 000 bytes, 0.5 s each.
        assert_eq!(totals.input_audio_bytes, 200 * 24_000);
        assert_eq!(totals.input_audio_seconds, 100.0);
        assert_eq!(totals.responses, 0);
    }

    #[test]
    fn only_usage_and_session_events_are_parsed() {
        let info = info();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let records = Arc::clone(&seen);
        let observer = move |observation: Observation<'_>| {
            if let Observation::Usage(record) = observation {
                records.lock().unwrap().push(record.clone());
            }
        };
        let mut meter = Meter::new(&info, Some(&observer));
        for (event, upstream) in [
            (
                json!({"type": "session.created", "session": {"id": "sess_1", "input_audio_format": "g711_ulaw"}}),
                true,
            ),
            (
                json!({"type": "response.created", "response": {"id": "resp_1"}}),
                true,
            ),
            (
                json!({"type": "conversation.item.create", "item": {"type": "message"}}),
                false,
            ),
            (
                json!({"type": "response.done", "response": {"id": "resp_1", "usage": {"total_tokens": 3}}}),
                true,
            ),
            (
                json!({"type": "response.done", "response": {"id": "resp_2", "status": "cancelled"}}),
                true,
            ),
            (
                json!({"type": "session.updated", "session": {"id": "sess_2"}}),
                true,
            ),
        ] {
            let json = event.to_string();
            if upstream {
                meter.upstream_event(json.as_bytes());
            } else {
                meter.client_event(json.as_bytes());
            }
        }
        assert_eq!(meter.parsed, 4);
        let totals = meter.finish();
        assert_eq!(totals.session_id.as_deref(), Some("sess_1"));
        assert_eq!(totals.responses, 2);
        assert_eq!(totals.usage.total_tokens, Some(3));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].response_id.as_deref(), Some("resp_1"));
        assert_eq!(seen[0].session_id.as_deref(), Some("sess_1"));
    }

    #[test]
    fn the_input_format_follows_the_upstream_only() {
        let info = info();
        let mut meter = Meter::new(&info, None);
        let second_of_pcm16 = append(&"A".repeat(64_000));
        meter.client_event(second_of_pcm16.as_bytes());
        // The client's wish changes nothing, nor is it parsed.
        for format in [
            json!({"type": "audio/pcm", "rate": 4_000_000_000_u64}),
            json!({"type": "audio/opus"}),
            json!({"type": "audio/pcmu"}),
        ] {
            meter.client_event(
                json!({"type": "session.update", "session": {"audio": {"input": {"format": format}}}})
                    .to_string()
                    .as_bytes(),
            );
        }
        assert_eq!(meter.parsed, 0);
        meter.client_event(second_of_pcm16.as_bytes());
        // The upstream confirms G.711: 10 668 characters are 8 001 bytes.
        meter.upstream_event(
            json!({"type": "session.updated", "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}})
                .to_string()
                .as_bytes(),
        );
        meter.client_event(append(&"A".repeat(10_668)).as_bytes());
        // A rate the upstream does not support is not believed, even from it.
        meter.upstream_event(
            json!({"type": "session.updated", "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 1}}}}})
                .to_string()
                .as_bytes(),
        );
        meter.client_event(append(&"A".repeat(10_668)).as_bytes());
        // A supported one is: 16 kHz.
        meter.upstream_event(
            json!({"type": "session.updated", "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16_000}}}}})
                .to_string()
                .as_bytes(),
        );
        meter.client_event(second_of_pcm16.as_bytes());
        let totals = meter.finish();
        assert_eq!(totals.input_audio_bytes, 3 * 48_000 + 2 * 8_001);
        assert_eq!(
            totals.input_audio_seconds,
            2.0 + 2.0 * 8_001.0 / 8_000.0 + 1.5
        );
    }
}
