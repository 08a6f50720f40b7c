//! Client audio to upstream audio and back, as base64 text.

use data_encoding::BASE64;
use serde_json::Value;

use super::{Law, Resampler};

/// The sample rate of OpenAI's `audio/pcm` and of Gemini's output.
const PCM_RATE: u32 = 24_000;
/// The sample rate of G.711.
const G711_RATE: u32 = 8_000;

/// An audio format of the OpenAI realtime schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum AudioFormat {
    /// `audio/pcm`: 16-bit little-endian PCM at 24 kHz (also `pcm16`).
    #[default]
    Pcm,
    /// `audio/pcmu` or `audio/pcma` (also `g711_ulaw`, `g711_alaw`).
    G711(Law),
}

impl AudioFormat {
    /// Reads a GA format object (`{"type":"audio/pcmu"}`) or a beta format
    /// string (`"g711_ulaw"`); `None` for anything else.
    pub(crate) fn from_json(format: &Value) -> Option<Self> {
        let name = match format {
            Value::String(name) => name.as_str(),
            Value::Object(object) => object.get("type")?.as_str()?,
            _ => return None,
        };
        match name {
            "audio/pcm" | "pcm16" => Some(AudioFormat::Pcm),
            "audio/pcmu" | "g711_ulaw" => Some(AudioFormat::G711(Law::Mu)),
            "audio/pcma" | "g711_alaw" => Some(AudioFormat::G711(Law::A)),
            _ => None,
        }
    }

    /// The GA format object: `{"type":"audio/pcm","rate":24000}`,
    /// `{"type":"audio/pcmu"}` or `{"type":"audio/pcma"}`.
    pub(crate) fn to_json(self) -> Value {
        match self {
            AudioFormat::Pcm => serde_json::json!({"type": "audio/pcm", "rate": PCM_RATE}),
            AudioFormat::G711(Law::Mu) => serde_json::json!({"type": "audio/pcmu"}),
            AudioFormat::G711(Law::A) => serde_json::json!({"type": "audio/pcma"}),
        }
    }

    /// The sample rate.
    pub(crate) fn rate(self) -> u32 {
        match self {
            AudioFormat::Pcm => PCM_RATE,
            AudioFormat::G711(_) => G711_RATE,
        }
    }

    /// Bytes per sample once decoded from base64.
    fn sample_bytes(self) -> u64 {
        match self {
            AudioFormat::Pcm => 2,
            AudioFormat::G711(_) => 1,
        }
    }
}

/// What became of one chunk of client audio.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Converted {
    /// Send the client's base64 text as it is, labelled with this rate.
    Splice {
        /// The sample rate to put in the MIME type.
        rate: u32,
    },
    /// Send this base64 PCM instead (possibly empty while a resampler fills).
    Encoded {
        /// The sample rate to put in the MIME type.
        rate: u32,
        /// Base64 of 16-bit little-endian PCM.
        data: String,
    },
}

/// The chunk was not base64.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadAudio;

/// Turns client audio chunks into what the upstream accepts.
#[derive(Debug)]
pub(crate) struct InputAudio {
    format: AudioFormat,
    /// The rate the upstream needs; `None`: any rate, labelled.
    upstream_rate: Option<u32>,
    resampler: Option<Resampler>,
    /// Samples received so far, at the client's rate.
    samples: u64,
}

impl InputAudio {
    /// A converter from the client's `format` to an upstream that needs
    /// `upstream_rate` (or takes any rate when `None`).
    pub(crate) fn new(format: AudioFormat, upstream_rate: Option<u32>) -> Self {
        let from = format.rate();
        let to = upstream_rate.unwrap_or(from);
        Self {
            format,
            upstream_rate,
            resampler: (from != to).then(|| Resampler::new(from, to)),
            samples: 0,
        }
    }

    /// The client format this converter reads.
    pub(crate) fn format(&self) -> AudioFormat {
        self.format
    }

    /// Milliseconds of audio received so far.
    pub(crate) fn elapsed_ms(&self) -> u64 {
        self.samples * 1000 / u64::from(self.format.rate())
    }

    /// Converts one base64 chunk of client audio.
    pub(crate) fn convert(&mut self, base64: &[u8]) -> Result<Converted, BadAudio> {
        let rate = self.upstream_rate.unwrap_or(self.format.rate());
        if self.format == AudioFormat::Pcm && self.resampler.is_none() {
            self.samples += decoded_len(base64) / self.format.sample_bytes();
            return Ok(Converted::Splice { rate });
        }
        let bytes = BASE64.decode(base64).map_err(|_| BadAudio)?;
        self.samples += bytes.len() as u64 / self.format.sample_bytes();
        let mut samples = Vec::with_capacity(bytes.len());
        match self.format {
            AudioFormat::Pcm => samples.extend(
                bytes
                    .chunks_exact(2)
                    .map(|pair| i16::from_le_bytes([pair[0], pair[1]])),
            ),
            AudioFormat::G711(law) => law.decode(&bytes, &mut samples),
        }
        let samples = match &mut self.resampler {
            Some(resampler) => {
                let mut out = Vec::with_capacity(samples.len() * 2);
                resampler.push(&samples, &mut out);
                out
            }
            None => samples,
        };
        Ok(Converted::Encoded {
            rate,
            data: encode_pcm(&samples),
        })
    }
}

/// Turns upstream audio (24 kHz PCM, base64) into the client's format.
#[derive(Debug)]
pub(crate) struct OutputAudio {
    format: AudioFormat,
    resampler: Option<Resampler>,
}

impl OutputAudio {
    /// A converter to the client's `format`.
    pub(crate) fn new(format: AudioFormat) -> Self {
        Self {
            format,
            resampler: match format {
                AudioFormat::Pcm => None,
                AudioFormat::G711(_) => Some(Resampler::new(PCM_RATE, G711_RATE)),
            },
        }
    }

    /// The client format this converter writes.
    pub(crate) fn format(&self) -> AudioFormat {
        self.format
    }

    /// Converts one chunk; `None` when it is not base64. PCM passes through
    /// as text: only the URL-safe alphabet some upstreams use is mapped to
    /// the standard one OpenAI clients decode.
    pub(crate) fn convert(&mut self, base64: &str) -> Option<String> {
        let standard = to_standard_alphabet(base64);
        let (AudioFormat::G711(law), Some(resampler)) = (self.format, &mut self.resampler) else {
            return Some(standard);
        };
        let bytes = BASE64.decode(standard.as_bytes()).ok()?;
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        let mut narrow = Vec::with_capacity(samples.len() / 3 + 1);
        resampler.push(&samples, &mut narrow);
        let mut encoded = Vec::with_capacity(narrow.len());
        law.encode(&narrow, &mut encoded);
        Some(BASE64.encode(&encoded))
    }
}

/// `-` and `_` (URL-safe base64) as `+` and `/`; anything else unchanged.
pub(crate) fn to_standard_alphabet(base64: &str) -> String {
    if !base64.contains(['-', '_']) {
        return base64.to_owned();
    }
    base64.replace('-', "+").replace('_', "/")
}

fn encode_pcm(samples: &[i16]) -> String {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    BASE64.encode(&bytes)
}

/// The number of bytes `base64` decodes to, without decoding it.
fn decoded_len(base64: &[u8]) -> u64 {
    let padding = base64.iter().rev().take(2).filter(|&&b| b == b'=').count();
    (base64.len() / 4 * 3).saturating_sub(padding) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(samples: &[i16]) -> String {
        encode_pcm(samples)
    }

    #[test]
    fn formats_by_either_spelling() {
        use serde_json::json;
        assert_eq!(
            AudioFormat::from_json(&json!({"type": "audio/pcm", "rate": 24000})),
            Some(AudioFormat::Pcm)
        );
        assert_eq!(
            AudioFormat::from_json(&json!("g711_alaw")),
            Some(AudioFormat::G711(Law::A))
        );
        assert_eq!(
            AudioFormat::from_json(&json!({"type": "audio/pcmu"})),
            Some(AudioFormat::G711(Law::Mu))
        );
        assert_eq!(AudioFormat::from_json(&json!({"type": "audio/opus"})), None);
    }

    #[test]
    fn pcm_to_any_rate_upstream_is_spliced_and_timed() {
        let mut input = InputAudio::new(AudioFormat::Pcm, None);
        let chunk = pcm(&[1; 480]);
        assert_eq!(
            input.convert(chunk.as_bytes()),
            Ok(Converted::Splice { rate: 24_000 })
        );
        assert_eq!(input.elapsed_ms(), 20);
    }

    #[test]
    fn pcm_to_a_16k_upstream_is_resampled() {
        let mut input = InputAudio::new(AudioFormat::Pcm, Some(16_000));
        let mut total = 0;
        for _ in 0..10 {
            let Ok(Converted::Encoded { rate, data }) = input.convert(pcm(&[100; 480]).as_bytes())
            else {
                panic!("not encoded");
            };
            assert_eq!(rate, 16_000);
            total += BASE64.decode(data.as_bytes()).unwrap().len() / 2;
        }
        // 200 ms at 16 kHz, less the resampler's delay (under 2 ms).
        assert!((3168..=3200).contains(&total), "{total}");
        assert_eq!(input.elapsed_ms(), 200);
        assert_eq!(input.convert(b"not base64!"), Err(BadAudio));
    }

    #[test]
    fn g711_is_decoded_and_labelled_8k_where_any_rate_goes() {
        let mut input = InputAudio::new(AudioFormat::G711(Law::Mu), None);
        let Ok(Converted::Encoded { rate, data }) =
            input.convert(BASE64.encode(&[0xFF, 0x00]).as_bytes())
        else {
            panic!("not encoded");
        };
        assert_eq!(rate, 8_000);
        assert_eq!(BASE64.decode(data.as_bytes()).unwrap(), [0, 0, 0x84, 0x82]);
        assert_eq!(input.elapsed_ms(), 0);
    }

    #[test]
    fn output_pcm_passes_as_text_in_the_standard_alphabet() {
        let mut output = OutputAudio::new(AudioFormat::Pcm);
        assert_eq!(output.convert("AQ-_AA==").unwrap(), "AQ+/AA==");
        assert_eq!(output.convert("AQADAAQAEgA=").unwrap(), "AQADAAQAEgA=");
    }

    #[test]
    fn output_g711_is_a_third_as_many_bytes() {
        let mut output = OutputAudio::new(AudioFormat::G711(Law::A));
        let mut total = 0;
        for _ in 0..10 {
            let data = output.convert(&pcm(&[0; 2400])).unwrap();
            total += BASE64.decode(data.as_bytes()).unwrap().len();
        }
        // One second at 8 kHz, less the resampler's delay (under 2 ms).
        assert!((7984..=8000).contains(&total), "{total}");
        assert!(output.convert("%%%").is_none());
    }
}
