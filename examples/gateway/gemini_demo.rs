//! `gemini-demo`: the Gemini provider and its translator against a local
//! scripted Gemini Live upstream, so the console shows a translated
//! session offline.

use std::io;
use std::time::Duration;

use serde_json::json;
use tower_realtime::Secret;
use tower_realtime::provider::Gemini;
use tower_realtime::testing::{GeminiLive, MockUpstream, Step, Trigger};

use crate::demo::audio;

/// The model the console lists for it.
pub const MODEL: &str = "gemini-demo/gemini-live-2.5-flash-preview";

/// The text reply's first words.
pub const TEXT_REPLY: &str =
    "Hello from the offline Gemini demo. Every event you see was translated from Gemini Live.";

/// The voice reply's transcript.
pub const VOICE_REPLY: &str =
    "This is the offline Gemini demo: a scripted Gemini Live upstream, translated.";

/// How much audio without `activityEnd` (a client with server turn
/// detection) counts as a turn to answer, as Gemini's own activity
/// detection would answer a pause.
pub const SPOKEN_TURN: Duration = Duration::from_secs(3);

/// Starts the scripted upstream; the provider dials it (keep the upstream
/// as long as the provider serves). It answers every text turn
/// (`turnComplete`) with a sentence, and every voice turn (`activityEnd`,
/// or [`SPOKEN_TURN`] of audio with automatic activity detection) with a
/// transcript and a chime, for as long as the session lasts.
pub async fn start() -> io::Result<(MockUpstream, Gemini)> {
    let script = GeminiLive::new()
        .resumption()
        .reply_every(
            Trigger::TurnComplete,
            GeminiLive::text_turn(TEXT_REPLY, 12, 24),
        )
        .reply_every(Trigger::ActivityEnd, voice_reply())
        .reply_every(Trigger::AudioFor(SPOKEN_TURN), voice_reply());
    // It serves as long as the gateway does: it keeps no message.
    let upstream = MockUpstream::builder()
        .script(script)
        .forget_messages()
        .start()
        .await?;
    let gemini = Gemini::new(Secret::new("gemini-demo"))
        .base_url(&format!("http://{}", upstream.addr()))
        .map_err(|error| io::Error::other(error.to_string()))?;
    Ok((upstream, gemini))
}

/// What Gemini says to a voice turn: both transcripts, the demo's chime
/// (24 kHz PCM16), then the end of the turn with usage.
fn voice_reply() -> Vec<Step> {
    let mut steps = vec![
        GeminiLive::input_transcript("(your voice)", true),
        GeminiLive::output_transcript(VOICE_REPLY),
    ];
    steps.extend(
        audio::deltas(&audio::chime())
            .iter()
            .map(|delta| GeminiLive::audio(delta)),
    );
    steps.push(Step::Send(
        json!({"serverContent": {"generationComplete": true}}),
    ));
    steps.push(Step::Send(GeminiLive::turn_complete_with_usage(40, 20)));
    steps
}
