//! The chime as WebRTC carries it without an Opus encoder: G.711 μ-law
//! (PCMU, RTP payload type 0) at 8 kHz, in 20 ms frames.

use super::super::audio;

/// Samples (and bytes) in one 20 ms frame.
pub(crate) const FRAME: usize = 160;

/// The chime as 20 ms PCMU frames: the 24 kHz chime, each three samples
/// averaged into one (its notes and overtones stay under 4 kHz).
pub(crate) fn chime_frames() -> Vec<Vec<u8>> {
    let pcm = audio::chime();
    let samples: Vec<i16> = pcm
        .chunks_exact(6)
        .map(|three| {
            let sum: i32 = three
                .chunks_exact(2)
                .map(|pair| i32::from(i16::from_le_bytes([pair[0], pair[1]])))
                .sum();
            (sum / 3) as i16
        })
        .collect();
    samples
        .chunks(FRAME)
        .map(|frame| frame.iter().map(|&sample| encode(sample)).collect())
        .collect()
}

/// One sample as G.711 μ-law (ITU-T G.711, with the usual bias of 0x84).
fn encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let sign = if sample < 0 { 0x80 } else { 0 };
    let magnitude = i32::from(sample).abs().min(CLIP) + BIAS;
    let exponent = (7 - (magnitude << 17).leading_zeros().min(7)) as i32;
    let mantissa = (magnitude >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference decoder, to check the encoder against.
    fn decode(byte: u8) -> i16 {
        let byte = !byte;
        let exponent = i32::from((byte >> 4) & 0x07);
        let mantissa = i32::from(byte & 0x0f);
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        if byte & 0x80 != 0 {
            -magnitude as i16
        } else {
            magnitude as i16
        }
    }

    #[test]
    fn known_code_words() {
        assert_eq!(encode(0), 0xff);
        assert_eq!(encode(-1), 0x7f);
        assert_eq!(encode(i16::MAX), 0x80);
        assert_eq!(encode(i16::MIN), 0x00);
    }

    #[test]
    fn round_trips_within_the_quantisation_step() {
        for sample in (-32_000_i16..32_000).step_by(97) {
            let back = decode(encode(sample));
            let error = (i32::from(back) - i32::from(sample)).abs();
            // μ-law steps grow with the magnitude: at most 1/16 of it, plus the bias.
            assert!(
                error <= i32::from(sample).abs() / 16 + 8,
                "{sample} -> {back}"
            );
        }
    }

    #[test]
    fn the_chime_is_fifty_audible_frames() {
        let frames = chime_frames();
        assert_eq!(frames.len(), 50);
        assert!(frames.iter().all(|frame| frame.len() == FRAME));
        let loud = frames[10]
            .iter()
            .map(|&byte| decode(byte))
            .map(|s| i32::from(s).abs())
            .max();
        assert!(loud.unwrap() > 1_000, "{loud:?}");
    }
}
