//! The demo provider's input audio buffer, and turn detection by loudness:
//! speech starts when the audio gets loud and ends after enough silence.

use super::settings::TurnDetection;

/// Appended audio not yet committed, and the speech in it.
#[derive(Debug, Default)]
pub(crate) struct InputBuffer {
    bytes: usize,
    /// Milliseconds of audio appended during the whole session.
    session_ms: u64,
    speech: Option<Speech>,
}

#[derive(Debug)]
struct Speech {
    start_ms: u64,
    silent_ms: u64,
}

/// What turn detection noticed in an append.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Speech began (`input_audio_buffer.speech_started`).
    Started { audio_start_ms: u64 },
    /// Speech ended (`input_audio_buffer.speech_stopped`); the turn is
    /// `audio_ms` long.
    Stopped { audio_end_ms: u64, audio_ms: u64 },
}

impl InputBuffer {
    /// Adds `bytes` of audio lasting `ms`; with `vad` on and the audio's
    /// `level` known, reports where speech starts or stops.
    pub(crate) fn append(
        &mut self,
        bytes: usize,
        ms: u64,
        vad: Option<(TurnDetection, f32)>,
    ) -> Option<Turn> {
        let at = self.session_ms;
        self.session_ms += ms;
        self.bytes += bytes;
        let (vad, level) = vad?;
        let loud = level >= vad.speech_level;
        match &mut self.speech {
            None if loud => {
                let start_ms = at.saturating_sub(vad.prefix_padding_ms);
                self.speech = Some(Speech {
                    start_ms,
                    silent_ms: 0,
                });
                Some(Turn::Started {
                    audio_start_ms: start_ms,
                })
            }
            None => None,
            Some(speech) if loud => {
                speech.silent_ms = 0;
                None
            }
            Some(speech) => {
                speech.silent_ms += ms;
                if speech.silent_ms < vad.silence_ms {
                    return None;
                }
                let speech = self.speech.take()?;
                let audio_end_ms = self.session_ms - speech.silent_ms;
                Some(Turn::Stopped {
                    audio_end_ms,
                    audio_ms: audio_end_ms - speech.start_ms,
                })
            }
        }
    }

    /// How long the buffered audio is, at `bytes_per_second`.
    pub(crate) fn ms(&self, bytes_per_second: usize) -> u64 {
        (self.bytes as u64 * 1000) / bytes_per_second as u64
    }

    /// Empties the buffer and forgets any speech in progress.
    pub(crate) fn clear(&mut self) {
        self.bytes = 0;
        self.speech = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAD: TurnDetection = TurnDetection {
        speech_level: 0.02,
        prefix_padding_ms: 300,
        silence_ms: 500,
        create_response: true,
        interrupt_response: true,
    };

    #[test]
    fn speech_starts_loud_and_stops_after_silence() {
        let mut buffer = InputBuffer::default();
        let mut chunk = |level: f32| buffer.append(4800, 100, Some((VAD, level)));
        for _ in 0..5 {
            assert_eq!(chunk(0.001), None);
        }
        assert_eq!(
            chunk(0.3),
            Some(Turn::Started {
                audio_start_ms: 200
            })
        );
        assert_eq!(chunk(0.001), None);
        assert_eq!(chunk(0.3), None, "a short pause does not end the turn");
        for _ in 0..4 {
            assert_eq!(chunk(0.001), None);
        }
        assert_eq!(
            chunk(0.001),
            Some(Turn::Stopped {
                audio_end_ms: 800,
                audio_ms: 600
            })
        );
        assert_eq!(buffer.ms(48_000), 1300);
        buffer.clear();
        assert_eq!(buffer.ms(48_000), 0);
    }

    #[test]
    fn without_vad_audio_only_accumulates() {
        let mut buffer = InputBuffer::default();
        assert_eq!(buffer.append(8000, 1000, None), None);
        assert_eq!(buffer.ms(8_000), 1000);
    }
}
