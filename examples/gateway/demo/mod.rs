//! The demo provider: a script for `tower_realtime::testing::MockUpstream`
//! that answers like a small realtime model, so a gateway can be tried
//! without provider keys or internet. An application of the crate's
//! scripting API (`Script`, `UpstreamSession`), not part of the library.
//! [`CallsFront`] adds OpenAI's WebRTC call endpoints in front of it.

pub(crate) mod audio;
mod calls;
mod conversation;
mod outbox;
mod response;
mod settings;
mod turns;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use tower_realtime::testing::{Script, UpstreamSession};

pub use self::calls::CallsFront;
use self::conversation::Conversation;
use self::outbox::Outbox;

/// A [`Script`] that speaks the OpenAI GA realtime schema like a tiny model.
///
/// - `session.created` right after the handshake, `session.updated` after
///   each `session.update` (objects merge, `null` turns a setting off).
/// - `conversation.item.create` adds items (`conversation.item.added`,
///   `conversation.item.done`).
/// - `input_audio_buffer.append` buffers audio (PCM16 at 24 kHz by
///   default; `audio/pcmu` and `audio/pcma` are counted at 8 kHz). With
///   server turn detection on (the default), loud audio starts a turn
///   (`input_audio_buffer.speech_started`) and 500 ms of silence ends it
///   (`speech_stopped`), which commits it and starts a response.
/// - `input_audio_buffer.commit` turns at least 100 ms of audio into a user
///   item (`input_audio_buffer.committed`, and
///   `conversation.item.input_audio_transcription.completed` when input
///   transcription is configured; the demo cannot recognise words, so its
///   transcript says how much audio it heard). With turn detection on, a
///   response follows; with `turn_detection: null`, send `response.create`.
/// - `response.create` answers with a sentence about what it heard and,
///   when the output modalities include audio, a chime of about one second
///   (PCM16, 24 kHz, mono): `response.created`, the output item and content
///   part, `response.output_audio_transcript.delta`s interleaved with
///   `response.output_audio.delta`s (or `response.output_text.delta`s for
///   text), the `.done` events, and `response.done` with usage (text and
///   audio tokens in and out, counted the way OpenAI counts them).
/// - `response.cancel` (and speech during a response) ends the response
///   with `response.done` (`cancelled`); anything else gets an `error` event.
///
/// Deltas are sent [`pace`](Self::pace) apart, so replies arrive as a
/// stream; the script keeps reading client events meanwhile. Unlike
/// `MockUpstream::echo`, it does not record messages, so it can run for
/// as long as a gateway does.
///
/// Served with `MockUpstream::with_script(Demo::new())`, it is a provider
/// like any other: `Providers::new().with("demo", upstream.provider())`.
#[derive(Debug, Clone, Copy)]
pub struct Demo {
    pace: Duration,
}

impl Default for Demo {
    fn default() -> Self {
        Self {
            pace: Duration::from_millis(20),
        }
    }
}

impl Demo {
    /// The demo script, with deltas 20 ms apart.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pause between two streamed deltas; `Duration::ZERO` sends each
    /// response at once.
    #[must_use]
    #[cfg_attr(not(test), expect(dead_code, reason = "the gateway keeps the default"))]
    pub fn pace(mut self, pace: Duration) -> Self {
        self.pace = pace;
        self
    }
}

impl Script for Demo {
    async fn run(&self, session: UpstreamSession) {
        let mut conversation = Conversation::new(session.id(), session.model());
        let mut out = Outbox::new(self.pace, session.id().trim_start_matches("sess_"));
        conversation.greet(&mut out);
        let mut socket = session.into_socket();
        loop {
            let due = out.due();
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                incoming = socket.next() => match incoming {
                    Some(Ok(Message::Text(text))) => conversation.handle(text.as_str(), &mut out),
                    Some(Ok(Message::Binary(_))) => conversation.binary(&mut out),
                    // tungstenite answers pings and close frames itself.
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                },
                () = sleep_until(due.unwrap_or(far)), if due.is_some() => {
                    for event in out.take_due(Instant::now()) {
                        if socket.feed(Message::text(event.to_string())).await.is_err() {
                            return;
                        }
                    }
                    if socket.flush().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
