//! Audio time from payload sizes: input from `input_audio_buffer.append`,
//! output from `response.output_audio.delta`.
//!
//! Each carries base64 audio; its decoded size follows from the length of
//! the base64 text, so nothing is decoded. The duration follows from the
//! decoded size and the session's format in that direction, which the
//! meter learns only from what the upstream confirms (`session.created`,
//! `session.updated`): a client's `session.update` may be refused, so it
//! changes nothing.

use serde_json::Value;

/// An audio format of a session, as far as its duration goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AudioFormat {
    /// 16-bit little-endian mono PCM at `rate` samples per second.
    Pcm16 { rate: u32 },
    /// G.711 µ-law or A-law: 8 kHz, one byte per sample.
    G711,
}

impl AudioFormat {
    fn bytes_per_second(self) -> u64 {
        match self {
            AudioFormat::Pcm16 { rate } => u64::from(rate) * 2,
            AudioFormat::G711 => 8_000,
        }
    }

    /// The input format a session object declares: `Some(Some(format))`
    /// when it names a known one, `Some(None)` when it names one whose
    /// duration cannot be computed, `None` when it says nothing about it, or
    /// names a PCM rate that is not one of `pcm_rates` (the rates the
    /// upstream accepts; the first is its default).
    ///
    /// Reads the GA shape (`audio.input.format` = `{"type":"audio/pcm","rate":24000}`,
    /// `{"type":"audio/pcmu"}`, `{"type":"audio/pcma"}`) and the beta one
    /// (`input_audio_format` = `"pcm16"` or DashScope's `"pcm"`, `"g711_ulaw"`,
    /// `"g711_alaw"`). PCM without a rate is at the upstream's own default
    /// (24 kHz for OpenAI, 16 kHz for DashScope).
    pub(crate) fn declared_by(session: &Value, pcm_rates: &[u32]) -> Option<Option<AudioFormat>> {
        Self::declared(
            session,
            "/audio/input/format",
            "input_audio_format",
            pcm_rates,
        )
    }

    /// The output format a session object declares, as
    /// [`declared_by`](Self::declared_by) reads the input one
    /// (`audio.output.format`, `output_audio_format`), PCM rates believed
    /// when the upstream accepts them for input too.
    pub(crate) fn output_declared_by(
        session: &Value,
        pcm_rates: &[u32],
    ) -> Option<Option<AudioFormat>> {
        Self::declared(
            session,
            "/audio/output/format",
            "output_audio_format",
            pcm_rates,
        )
    }

    fn declared(
        session: &Value,
        pointer: &str,
        beta_key: &str,
        pcm_rates: &[u32],
    ) -> Option<Option<AudioFormat>> {
        let default = pcm_rates.first().copied()?;
        if let Some(format) = session.pointer(pointer) {
            let rate = format.get("rate").and_then(Value::as_u64);
            return match format.get("type").and_then(Value::as_str) {
                Some("audio/pcm") => match rate {
                    None => Some(Some(AudioFormat::Pcm16 { rate: default })),
                    Some(rate) => pcm_rates
                        .iter()
                        .find(|supported| u64::from(**supported) == rate)
                        .map(|&rate| Some(AudioFormat::Pcm16 { rate })),
                },
                Some("audio/pcmu" | "audio/pcma") => Some(Some(AudioFormat::G711)),
                _ => Some(None),
            };
        }
        let format = session.get(beta_key)?;
        Some(match format.as_str() {
            Some("pcm16" | "pcm") => Some(AudioFormat::Pcm16 { rate: default }),
            Some("g711_ulaw" | "g711_alaw") => Some(AudioFormat::G711),
            _ => None,
        })
    }
}

/// The decoded size of base64 text of `length` characters ending in `tail`.
pub(crate) fn base64_decoded_len(length: usize, tail: &[u8]) -> u64 {
    let padding = tail
        .iter()
        .rev()
        .take(2)
        .take_while(|&&b| b == b'=')
        .count();
    (length.saturating_sub(padding) as u64) * 3 / 4
}

/// Audio sent one way in one session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AudioStream {
    /// The current format; `None` when it is one whose duration is unknown.
    format: Option<AudioFormat>,
    /// Bytes appended in the current format.
    bytes_in_format: u64,
    /// Seconds appended in earlier formats.
    seconds_before: f64,
    /// Bytes appended in any format.
    total_bytes: u64,
}

impl AudioStream {
    /// No audio yet; 16-bit PCM at `pcm_rate` until the session says otherwise.
    pub(crate) fn new(pcm_rate: u32) -> Self {
        Self {
            format: Some(AudioFormat::Pcm16 { rate: pcm_rate }),
            bytes_in_format: 0,
            seconds_before: 0.0,
            total_bytes: 0,
        }
    }

    /// Counts `bytes` of decoded audio in the current format.
    pub(crate) fn append(&mut self, bytes: u64) {
        self.bytes_in_format += bytes;
        self.total_bytes += bytes;
    }

    /// Switches to `format` for the audio that follows.
    pub(crate) fn set_format(&mut self, format: Option<AudioFormat>) {
        if format != self.format {
            self.seconds_before = self.seconds();
            self.bytes_in_format = 0;
            self.format = format;
        }
    }

    /// Seconds of audio counted, in the formats that were known.
    pub(crate) fn seconds(&self) -> f64 {
        let current = match self.format {
            Some(format) => self.bytes_in_format as f64 / format.bytes_per_second() as f64,
            None => 0.0,
        };
        self.seconds_before + current
    }

    /// Decoded bytes counted, in any format.
    pub(crate) fn bytes(&self) -> u64 {
        self.total_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_lengths() {
        assert_eq!(base64_decoded_len(0, b""), 0);
        assert_eq!(base64_decoded_len(4, b"AAAA"), 3);
        assert_eq!(base64_decoded_len(4, b"AA=="), 1);
        assert_eq!(base64_decoded_len(4, b"AAA="), 2);
        assert_eq!(base64_decoded_len(8, b"AAAAAAA="), 5);
        // Unpadded.
        assert_eq!(base64_decoded_len(6, b"AAAAAA"), 4);
        assert_eq!(base64_decoded_len(7, b"AAAAAAA"), 5);
        assert_eq!(base64_decoded_len(64_000, b"AAAA"), 48_000);
    }

    #[test]
    fn formats_in_both_shapes() {
        let declared = |session| AudioFormat::declared_by(&session, &[24_000, 16_000]);
        let pcm = |rate| Some(Some(AudioFormat::Pcm16 { rate }));
        assert_eq!(
            declared(json!({"audio":{"input":{"format":{"type":"audio/pcm","rate":24000}}}})),
            pcm(24_000)
        );
        assert_eq!(
            declared(json!({"audio":{"input":{"format":{"type":"audio/pcm","rate":16000}}}})),
            pcm(16_000)
        );
        assert_eq!(
            declared(json!({"audio":{"input":{"format":{"type":"audio/pcm"}}}})),
            pcm(24_000)
        );
        assert_eq!(
            declared(json!({"audio":{"input":{"format":{"type":"audio/pcmu"}}}})),
            Some(Some(AudioFormat::G711))
        );
        assert_eq!(
            declared(json!({"audio":{"input":{"format":{"type":"audio/pcma"}}}})),
            Some(Some(AudioFormat::G711))
        );
        assert_eq!(
            declared(json!({"audio":{"input":{"format":{"type":"audio/opus"}}}})),
            Some(None)
        );
        // Rates the upstream does not accept are not believed.
        for rate in [0, 8_000, 4_000_000_000_u64, u64::MAX] {
            assert_eq!(
                declared(json!({"audio":{"input":{"format":{"type":"audio/pcm","rate":rate}}}})),
                None
            );
        }
        assert_eq!(declared(json!({"input_audio_format":"pcm16"})), pcm(24_000));
        assert_eq!(
            declared(json!({"input_audio_format":"g711_ulaw"})),
            Some(Some(AudioFormat::G711))
        );
        assert_eq!(
            declared(json!({"input_audio_format":"g711_alaw"})),
            Some(Some(AudioFormat::G711))
        );
        assert_eq!(declared(json!({"input_audio_format":"wav"})), Some(None));
        // DashScope: `pcm16` and `pcm` are 16 kHz there.
        let dashscope = |session| AudioFormat::declared_by(&session, &[16_000]);
        assert_eq!(
            dashscope(json!({"input_audio_format":"pcm16"})),
            pcm(16_000)
        );
        assert_eq!(dashscope(json!({"input_audio_format":"pcm"})), pcm(16_000));
        // Nothing said about the input format.
        assert_eq!(declared(json!({"voice":"alloy"})), None);
        assert_eq!(
            declared(json!({"audio":{"output":{"format":{"type":"audio/pcmu"}}}})),
            None
        );
    }

    #[test]
    fn output_formats_are_read_apart_from_input_ones() {
        let output = |session| AudioFormat::output_declared_by(&session, &[24_000, 16_000]);
        assert_eq!(
            output(json!({"audio":{"output":{"format":{"type":"audio/pcmu"}}}})),
            Some(Some(AudioFormat::G711))
        );
        assert_eq!(
            output(json!({"audio":{"output":{"format":{"type":"audio/pcm","rate":16000}}}})),
            Some(Some(AudioFormat::Pcm16 { rate: 16_000 }))
        );
        assert_eq!(
            output(json!({"output_audio_format":"g711_alaw"})),
            Some(Some(AudioFormat::G711))
        );
        assert_eq!(
            output(json!({"audio":{"input":{"format":{"type":"audio/pcmu"}}}})),
            None
        );
        assert_eq!(output(json!({"input_audio_format":"g711_ulaw"})), None);
    }

    #[test]
    fn seconds_follow_the_format_in_force() {
        let mut audio = AudioStream::new(24_000);
        audio.append(48_000);
        assert_eq!(audio.seconds(), 1.0);
        audio.set_format(Some(AudioFormat::G711));
        audio.append(4_000);
        assert_eq!(audio.seconds(), 1.5);
        audio.set_format(Some(AudioFormat::G711));
        audio.append(4_000);
        assert_eq!(audio.seconds(), 2.0);
        audio.set_format(None);
        audio.append(1_000);
        assert_eq!(audio.seconds(), 2.0);
        audio.set_format(Some(AudioFormat::Pcm16 { rate: 16_000 }));
        audio.append(8_000);
        assert_eq!(audio.seconds(), 2.25);
        assert_eq!(audio.bytes(), 65_000);
    }
}
