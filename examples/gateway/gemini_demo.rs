//! `gemini-demo`: the Gemini provider and its translator against a local
//! scripted Gemini Live upstream, so the console shows a translated
//! session offline.

use std::io;

use tower_realtime::Secret;
use tower_realtime::provider::Gemini;
use tower_realtime::testing::{GeminiLive, MockUpstream, Trigger};

/// The model the console lists for it.
pub const MODEL: &str = "gemini-demo/gemini-live-2.5-flash-preview";

/// Starts the scripted upstream; the provider dials it (keep the upstream
/// as long as the provider serves).
pub async fn start() -> io::Result<(MockUpstream, Gemini)> {
    let mut spoken = vec![
        GeminiLive::input_transcript("(your voice)", true),
        GeminiLive::output_transcript(
            "This is the offline Gemini demo: a scripted Gemini Live upstream, translated.",
        ),
    ];
    spoken.extend(GeminiLive::text_turn("", 40, 20));
    let script = GeminiLive::new()
        .resumption()
        .reply(
            Trigger::TurnComplete,
            GeminiLive::text_turn(
                "Hello from the offline Gemini demo. Every event you see was translated from Gemini Live.",
                12,
                24,
            ),
        )
        // About two seconds of microphone audio in the console's chunks.
        .reply(Trigger::AudioChunk(40), spoken);
    let upstream = MockUpstream::with_script(script).await?;
    let gemini = Gemini::new(Secret::new("gemini-demo"))
        .base_url(&format!("http://{}", upstream.addr()))
        .map_err(|error| io::Error::other(error.to_string()))?;
    Ok((upstream, gemini))
}
