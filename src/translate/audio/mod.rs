//! Audio plumbing for translators: G.711, resampling and base64 PCM.
//!
//! The default path does none of this: 24 kHz PCM from an OpenAI client is
//! passed to the upstream as the same base64 text. These are for the
//! sessions that need them (an upstream that wants 16 kHz, a G.711 client).

mod g711;
mod pcm;
mod resample;

pub(crate) use g711::Law;
pub(crate) use pcm::{AudioFormat, Converted, InputAudio, OutputAudio};
pub(crate) use resample::Resampler;
