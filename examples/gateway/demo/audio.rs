//! The demo provider's audio: the chime it answers with, and what it can
//! tell about the audio it hears (length and loudness, not words).

use std::f32::consts::TAU;

use data_encoding::BASE64;

/// Output audio: PCM16, 24 kHz, mono, as in OpenAI's default `audio/pcm`.
pub(crate) const SAMPLE_RATE: usize = 24_000;

/// How much audio each `response.output_audio.delta` carries.
const DELTA_MS: usize = 100;

/// The notes of the chime (C5, E5, G5, C6), their onsets in seconds.
const NOTES: [(f32, f32); 4] = [
    (523.25, 0.0),
    (659.26, 0.16),
    (783.99, 0.32),
    (1046.5, 0.48),
];

/// The chime's length in seconds.
const LENGTH: f32 = 1.0;

/// A soft major arpeggio of bell-like notes, about one second of PCM16 at
/// 24 kHz, as little-endian bytes.
pub(crate) fn chime() -> Vec<u8> {
    let samples = (LENGTH * SAMPLE_RATE as f32) as usize;
    let fade_out = SAMPLE_RATE / 40;
    let mut pcm = Vec::with_capacity(samples * 2);
    for n in 0..samples {
        let t = n as f32 / SAMPLE_RATE as f32;
        let mut value: f32 = NOTES
            .iter()
            .filter(|&&(_, onset)| t >= onset)
            .map(|&(frequency, onset)| bell(frequency, t - onset))
            .sum();
        let left = samples - n - 1;
        if left < fade_out {
            value *= left as f32 / fade_out as f32;
        }
        let sample = (value * 0.22 * f32::from(i16::MAX)) as i16;
        pcm.extend_from_slice(&sample.to_le_bytes());
    }
    pcm
}

/// One struck note: a fundamental with two quieter overtones, a 5 ms attack
/// and an exponential decay.
fn bell(frequency: f32, t: f32) -> f32 {
    let attack = (t / 0.005).min(1.0);
    let decay = (-4.0 * t).exp();
    let tone = (TAU * frequency * t).sin()
        + 0.3 * (TAU * 2.0 * frequency * t).sin()
        + 0.1 * (TAU * 3.0 * frequency * t).sin();
    attack * decay * tone / 1.4
}

/// `pcm` as base64 strings of [`DELTA_MS`] each, ready for `response.output_audio.delta`.
pub(crate) fn deltas(pcm: &[u8]) -> Vec<String> {
    pcm.chunks(SAMPLE_RATE * 2 * DELTA_MS / 1000)
        .map(|chunk| BASE64.encode(chunk))
        .collect()
}

/// Decodes the `audio` of an `input_audio_buffer.append`.
pub(crate) fn decode(audio: &str) -> Option<Vec<u8>> {
    BASE64.decode(audio.as_bytes()).ok()
}

/// The input formats the demo understands, by bytes per second.
pub(crate) fn bytes_per_second(format: &str) -> usize {
    match format {
        // G.711 at 8 kHz: one byte per sample.
        "audio/pcmu" | "audio/pcma" => 8_000,
        _ => SAMPLE_RATE * 2,
    }
}

/// The RMS level of PCM16 little-endian audio, from 0.0 (silence) to 1.0.
pub(crate) fn level(pcm: &[u8]) -> f32 {
    let samples = pcm.len() / 2;
    if samples == 0 {
        return 0.0;
    }
    let energy: f64 = pcm
        .chunks_exact(2)
        .map(|pair| f64::from(i16::from_le_bytes([pair[0], pair[1]])).powi(2))
        .sum();
    ((energy / samples as f64).sqrt() / f64::from(i16::MAX)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chime_is_one_second_of_audible_pcm16() {
        let pcm = chime();
        assert_eq!(pcm.len(), SAMPLE_RATE * 2);
        let level = level(&pcm);
        assert!(level > 0.02 && level < 0.5, "level {level}");
        // It fades out: the last sample is silent.
        assert_eq!(&pcm[pcm.len() - 2..], [0, 0]);
    }

    #[test]
    fn deltas_are_100_ms_of_base64() {
        let deltas = deltas(&chime());
        assert_eq!(deltas.len(), 10);
        let first = decode(&deltas[0]).unwrap();
        assert_eq!(first.len(), SAMPLE_RATE * 2 / 10);
        assert_eq!(decode("not base64!"), None);
    }

    #[test]
    fn levels_and_rates() {
        assert_eq!(level(&[]), 0.0);
        assert_eq!(level(&[0, 0, 0, 0]), 0.0);
        let loud: Vec<u8> = [i16::MAX, i16::MIN + 1]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        assert!((level(&loud) - 1.0).abs() < 1e-3);
        assert_eq!(bytes_per_second("audio/pcm"), 48_000);
        assert_eq!(bytes_per_second("audio/pcmu"), 8_000);
    }
}
