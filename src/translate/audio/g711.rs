//! G.711 μ-law and A-law companding (ITU-T G.711), one byte per 8 kHz sample.

/// The largest magnitude μ-law encodes, in 14-bit units.
const ULAW_CLIP: i32 = 8159;
/// The μ-law bias, in 14-bit units.
const ULAW_BIAS: i32 = 0x21;
/// Segment ends of μ-law (14-bit) and A-law (13-bit) magnitudes.
const ULAW_SEGMENT_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// Which G.711 law a byte stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Law {
    /// μ-law (`audio/pcmu`), North America and Japan.
    Mu,
    /// A-law (`audio/pcma`), elsewhere.
    A,
}

impl Law {
    /// Expands G.711 bytes into 16-bit samples, appended to `out`.
    pub(crate) fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        out.extend(bytes.iter().map(|&byte| match self {
            Law::Mu => ulaw_to_linear(byte),
            Law::A => alaw_to_linear(byte),
        }));
    }

    /// Compresses 16-bit samples into G.711 bytes, appended to `out`.
    pub(crate) fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        out.extend(samples.iter().map(|&sample| match self {
            Law::Mu => linear_to_ulaw(sample),
            Law::A => linear_to_alaw(sample),
        }));
    }
}

fn segment(value: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&end| value <= end).unwrap_or(8)
}

fn ulaw_to_linear(byte: u8) -> i16 {
    let byte = !byte;
    let magnitude = ((i32::from(byte & 0x0F) << 3) + 0x84) << ((byte & 0x70) >> 4);
    let sample = if byte & 0x80 != 0 {
        0x84 - magnitude
    } else {
        magnitude - 0x84
    };
    sample as i16
}

fn linear_to_ulaw(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 2;
    let mask = if value < 0 {
        value = -value;
        0x7F
    } else {
        0xFF
    };
    value = value.min(ULAW_CLIP) + ULAW_BIAS;
    let segment = segment(value, &ULAW_SEGMENT_END);
    let code = if segment >= 8 {
        0x7F
    } else {
        ((segment as i32) << 4) | ((value >> (segment + 1)) & 0x0F)
    };
    (code ^ mask) as u8
}

fn alaw_to_linear(byte: u8) -> i16 {
    let byte = byte ^ 0x55;
    let mut magnitude = i32::from(byte & 0x0F) << 4;
    match (byte & 0x70) >> 4 {
        0 => magnitude += 8,
        1 => magnitude += 0x108,
        segment => magnitude = (magnitude + 0x108) << (segment - 1),
    }
    let sample = if byte & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    };
    sample as i16
}

fn linear_to_alaw(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 3;
    let mask = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    let segment = segment(value, &ALAW_SEGMENT_END);
    let code = if segment >= 8 {
        0x7F
    } else {
        let shift = if segment < 2 { 1 } else { segment };
        ((segment as i32) << 4) | ((value >> shift) & 0x0F)
    };
    (code ^ mask) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(law: Law, byte: u8) -> i16 {
        let mut out = Vec::new();
        law.decode(&[byte], &mut out);
        out[0]
    }

    fn encoded(law: Law, sample: i16) -> u8 {
        let mut out = Vec::new();
        law.encode(&[sample], &mut out);
        out[0]
    }

    #[test]
    fn known_code_points() {
        // Silence, and the extremes of each law (ITU-T G.711 tables).
        assert_eq!(decoded(Law::Mu, 0xFF), 0);
        assert_eq!(decoded(Law::Mu, 0x7F), 0);
        assert_eq!(decoded(Law::Mu, 0x00), -32124);
        assert_eq!(decoded(Law::Mu, 0x80), 32124);
        assert_eq!(decoded(Law::A, 0xD5), 8);
        assert_eq!(decoded(Law::A, 0x55), -8);
        assert_eq!(decoded(Law::A, 0xAA), 32256);
        assert_eq!(decoded(Law::A, 0x2A), -32256);
        assert_eq!(encoded(Law::Mu, 0), 0xFF);
        assert_eq!(encoded(Law::A, 0), 0xD5);
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for law in [Law::Mu, Law::A] {
            for byte in 0..=255u8 {
                let sample = decoded(law, byte);
                assert_eq!(
                    decoded(law, encoded(law, sample)),
                    sample,
                    "{law:?} {byte:#04x}"
                );
            }
        }
    }

    #[test]
    fn encoding_is_monotonic_and_close() {
        for law in [Law::Mu, Law::A] {
            let mut previous = i16::MIN;
            for sample in (i16::MIN..=i16::MAX).step_by(97) {
                let back = decoded(law, encoded(law, sample));
                assert!(back >= previous, "{law:?} {sample}");
                previous = back;
                // The quantisation step of the top segment is 1024 (μ) / 1024 (A).
                assert!(
                    (i32::from(back) - i32::from(sample)).abs() <= 1100,
                    "{law:?} {sample} -> {back}"
                );
            }
        }
    }
}
