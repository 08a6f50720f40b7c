//! Transcription usage, from `conversation.item.input_audio_transcription.completed`.

use serde_json::{Map, Value};

use super::tokens::Usage;

/// What transcribing one piece of input audio cost.
///
/// Token-billed transcription models report `{"type":"tokens", ...}` (the
/// counts are read like a response's [`Usage`]); duration-billed ones
/// report `{"type":"duration","seconds":…}`.
///
/// # Example
///
/// ```
/// use tower_realtime::usage::{TranscriptionUsage, Usage};
///
/// let billed = TranscriptionUsage::Duration { seconds: 2.4 };
/// let tokens = TranscriptionUsage::Tokens(Usage::default().with_total_tokens(26));
/// assert_ne!(billed, tokens);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TranscriptionUsage {
    /// Billed by tokens.
    Tokens(Usage),
    /// Billed by the duration of the audio.
    Duration {
        /// Seconds of audio transcribed.
        seconds: f64,
    },
}

impl TranscriptionUsage {
    /// Reads a transcription usage object; `None` for unknown kinds.
    pub(crate) fn from_json(usage: &Map<String, Value>) -> Option<Self> {
        match usage.get("type").and_then(Value::as_str) {
            Some("tokens") => Some(TranscriptionUsage::Tokens(Usage::from_json(usage))),
            Some("duration") => Some(TranscriptionUsage::Duration {
                seconds: usage.get("seconds").and_then(Value::as_f64)?,
            }),
            _ => None,
        }
    }
}

/// The transcription usage of a whole session.
///
/// # Example
///
/// ```
/// use tower_realtime::usage::{TranscriptionTotals, TranscriptionUsage, Usage};
///
/// let mut totals = TranscriptionTotals::default();
/// totals.add(&TranscriptionUsage::Duration { seconds: 1.5 });
/// totals.add(&TranscriptionUsage::Tokens(Usage::default().with_input_tokens(17)));
/// assert_eq!(totals.seconds, Some(1.5));
/// assert_eq!(totals.tokens.input_tokens, Some(17));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TranscriptionTotals {
    /// The sum of token-billed transcriptions.
    pub tokens: Usage,
    /// The sum of duration-billed transcriptions; `None` when there was none.
    pub seconds: Option<f64>,
}

impl TranscriptionTotals {
    /// Adds one transcription.
    pub fn add(&mut self, usage: &TranscriptionUsage) {
        match usage {
            TranscriptionUsage::Tokens(tokens) => self.tokens += tokens,
            TranscriptionUsage::Duration { seconds } => {
                *self.seconds.get_or_insert(0.0) += seconds;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::InputTokenDetails;
    use serde_json::json;

    fn read(value: Value) -> Option<TranscriptionUsage> {
        TranscriptionUsage::from_json(value.as_object().unwrap())
    }

    #[test]
    fn reads_both_kinds() {
        assert_eq!(
            read(json!({
                "type": "tokens", "total_tokens": 26, "input_tokens": 17, "output_tokens": 9,
                "input_token_details": {"text_tokens": 0, "audio_tokens": 17}
            })),
            Some(TranscriptionUsage::Tokens(Usage {
                total_tokens: Some(26),
                input_tokens: Some(17),
                output_tokens: Some(9),
                input_token_details: Some(InputTokenDetails {
                    text_tokens: Some(0),
                    audio_tokens: Some(17),
                    ..Default::default()
                }),
                output_token_details: None,
            }))
        );
        assert_eq!(
            read(json!({"type": "duration", "seconds": 2.4})),
            Some(TranscriptionUsage::Duration { seconds: 2.4 })
        );
        assert_eq!(read(json!({"type": "duration"})), None);
        assert_eq!(read(json!({"type": "minutes", "minutes": 1})), None);
        assert_eq!(read(json!({})), None);
    }
}
