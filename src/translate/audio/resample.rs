//! Sample-rate conversion of a mono 16-bit stream that arrives in chunks.

use rubato::{
    Resampler as _, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

/// Converts one mono stream from one sample rate to another.
///
/// The stream arrives in pieces of any length (one client append, one model
/// delta). The converter keeps its filter state and the samples that do not
/// fill a block between pieces, so the output is the same whatever the
/// chunking: no clicks where chunks join. It holds back at most one block
/// (10 ms) plus the filter's delay.
pub(crate) struct Resampler {
    inner: SincFixedIn<f32>,
    /// Samples waiting for a full block.
    pending: Vec<f32>,
    block: usize,
    output: Vec<f32>,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("block", &self.block)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Resampler {
    /// A converter from `from` Hz to `to` Hz (both positive, e.g. 24000 → 16000).
    pub(crate) fn new(from: u32, to: u32) -> Self {
        let block = (from / 100).max(1) as usize;
        let parameters = SincInterpolationParameters {
            sinc_len: 64,
            f_cutoff: 0.92,
            oversampling_factor: 128,
            interpolation: SincInterpolationType::Linear,
            window: WindowFunction::BlackmanHarris2,
        };
        let inner = SincFixedIn::new(f64::from(to) / f64::from(from), 1.0, parameters, block, 1)
            .expect("fixed, valid resampler parameters");
        let output = vec![0.0; inner.output_frames_max()];
        Self {
            inner,
            pending: Vec::with_capacity(block),
            block,
            output,
        }
    }

    /// Feeds `samples`; appends every output sample that is ready to `out`.
    pub(crate) fn push(&mut self, samples: &[i16], out: &mut Vec<i16>) {
        for &sample in samples {
            self.pending.push(f32::from(sample) / 32768.0);
            if self.pending.len() == self.block {
                self.run(out);
            }
        }
    }

    fn run(&mut self, out: &mut Vec<i16>) {
        let input = [&self.pending[..]];
        let mut output = [&mut self.output[..]];
        if let Ok((_, written)) = self.inner.process_into_buffer(&input, &mut output, None) {
            out.extend(
                self.output[..written]
                    .iter()
                    .map(|&sample| (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
            );
        }
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                let t = n as f64 / f64::from(rate);
                ((t * hz * std::f64::consts::TAU).sin() * 12_000.0) as i16
            })
            .collect()
    }

    fn crossings(samples: &[i16]) -> usize {
        samples
            .windows(2)
            .filter(|pair| (pair[0] < 0) != (pair[1] < 0))
            .count()
    }

    #[test]
    fn output_does_not_depend_on_chunking() {
        let input = tone(24_000, 440.0, 24_000);
        let mut whole = Vec::new();
        Resampler::new(24_000, 16_000).push(&input, &mut whole);

        let mut pieces = Vec::new();
        let mut resampler = Resampler::new(24_000, 16_000);
        let mut rest = &input[..];
        for size in [1usize, 7, 480, 333, 4096, 17].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*size).min(rest.len()));
            resampler.push(chunk, &mut pieces);
            rest = tail;
        }
        assert_eq!(pieces, whole);
        // All but the filter's delay (under 2 ms) is out.
        assert!((15_968..=16_000).contains(&whole.len()), "{}", whole.len());
    }

    #[test]
    fn keeps_pitch_and_level() {
        for (from, to) in [
            (24_000, 16_000),
            (8_000, 16_000),
            (24_000, 8_000),
            (8_000, 24_000),
        ] {
            let input = tone(from, 440.0, from as usize);
            let mut output = Vec::new();
            Resampler::new(from, to).push(&input, &mut output);
            // All but the filter's delay (under 5 ms) is out.
            let delay = to as usize * 5 / 1000;
            assert!(
                (to as usize - delay..=to as usize).contains(&output.len()),
                "{from} -> {to}: {}",
                output.len()
            );
            // One second of 440 Hz crosses zero 880 times, whatever the rate
            // (the filter's delay hides a few at the start).
            let seen = crossings(&output);
            assert!((870..=881).contains(&seen), "{from} -> {to}: {seen}");
            let peak = output[to as usize / 2..]
                .iter()
                .map(|s| s.unsigned_abs())
                .max()
                .unwrap();
            assert!((11_000..=13_000).contains(&peak), "{from} -> {to}: {peak}");
        }
    }
}
