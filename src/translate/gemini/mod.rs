//! Gemini Live behind OpenAI's realtime schema: a translator per session.
//!
//! [`GeminiTranslator`] is sans-IO: feed it what the client sends and what
//! Gemini sends, one message at a time, and it says what to send where
//! ([`Output`]). It never forwards a Gemini message to the client: every
//! client event is an OpenAI GA event it built.
//!
//! What it does, in short:
//! - **Setup.** Gemini takes exactly one `setup`, first. The translator
//!   answers the client at once with a synthesized `session.created`,
//!   merges every `session.update` that arrives before the first content
//!   into one pending setup (answering each with `session.updated`), and
//!   sends the setup when the first content arrives, holding that content
//!   (bounded) until Gemini's `setupComplete`. A later `session.update`
//!   that changes the setup is applied by resuming the session with a new
//!   one ([`Control::Reconnect`], between responses), or refused with an
//!   `error` event (`unsupported_session_update`) when that is off
//!   ([`GeminiConfig::reconfigure_by_resuming`]) or Gemini gave no
//!   resumption handle.
//! - **Audio.** 24 kHz PCM from the client is labelled
//!   `audio/pcm;rate=24000` and its base64 text spliced into Gemini's
//!   `realtimeInput`, never decoded, unless the backend needs another rate
//!   or the client speaks G.711 (then it is decoded and resampled).
//! - **Responses.** Model audio, text and transcripts become the
//!   `response.*` lifecycle with stable ids; input transcription becomes a
//!   user item; tool calls become `function_call` items; barge-in becomes
//!   `input_audio_buffer.speech_started` and a cancelled `response.done`;
//!   `usageMetadata` becomes `response.usage` (modality details, cached
//!   tokens, Gemini API and Vertex spellings).
//! - **Connection limits.** `goAway` and resumption handles are
//!   [`Control`] outputs; at the next safe point the translator asks for a
//!   fresh connection ([`Control::Reconnect`]) and holds client input until
//!   it is set up.
//!
//! Gemini's server messages arrive as binary WebSocket frames holding JSON;
//! [`GeminiTranslator::upstream_message`] takes the bytes of either kind.
//! Both camelCase and snake_case spellings are read; camelCase is sent.
//!
//! # Example
//!
//! ```
//! use tower_realtime::translate::gemini::{Backend, GeminiConfig, GeminiTranslator, Output};
//!
//! let mut translator = GeminiTranslator::new(GeminiConfig::new(Backend::GeminiApi, "models/gemini-live-2.5-flash-preview"));
//! // The client hears `session.created` at once.
//! let created = translator.start();
//! assert!(matches!(&created[..], [Output::Client(event)] if event.contains("session.created")));
//!
//! // A session.update is merged, not sent.
//! let outputs = translator.client_event(br#"{"type":"session.update","session":{"instructions":"Be terse."}}"#);
//! assert!(matches!(&outputs[..], [Output::Client(event)] if event.contains("session.updated")));
//!
//! // The first audio sends the setup and waits for Gemini.
//! let outputs = translator.client_event(br#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#);
//! assert!(matches!(&outputs[..], [Output::Upstream(setup)] if setup.contains("Be terse.")));
//!
//! // Gemini answers in a binary frame; the held audio follows.
//! let outputs = translator.upstream_message(b"{\n  \"setupComplete\": {}\n}\n");
//! assert!(outputs.iter().any(|output| matches!(output, Output::Upstream(audio)
//!     if audio == r#"{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=24000","data":"AAAA"}}}"#)));
//! ```

mod client;
mod close;
mod config;
mod ids;
mod json;
mod response;
mod server;
mod session;
mod usage;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;

pub use config::{Backend, GeminiConfig, TextResponses};

use crate::translate::audio::{InputAudio, OutputAudio};
use ids::Ids;
use response::{Calls, Response, UserTurn};
use session::Session;
use usage::GeminiUsage;

/// Something the translator wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// Send this JSON text to Gemini (as a text message).
    Upstream(String),
    /// Send this OpenAI event to the client (as a text message).
    Client(String),
    /// The session itself must act.
    Control(Control),
}

/// What the session around the translator must do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// Gemini will end this connection in `time_left`. The translator asks
    /// for a [`Control::Reconnect`] at the next safe point if it holds a
    /// resumption handle.
    GoAway {
        /// Gemini's notice, if it gave one.
        time_left: Option<Duration>,
    },
    /// The latest handle to resume the Gemini session with.
    ResumptionHandle(String),
    /// Dial a fresh upstream connection now, send `setup` first and feed its
    /// messages to the translator from then on; close the old one. Client
    /// input is held (bounded) until the new connection is set up. If the
    /// dial fails, call [`GeminiTranslator::resumption_failed`].
    Reconnect {
        /// The `setup` message, with the resumption handle.
        setup: String,
    },
    /// End the session: close the client with `code` and `reason` (the
    /// `error` event explaining it was sent just before), and the upstream.
    Close {
        /// The WebSocket close code for the client.
        code: u16,
        /// The close reason (scrubbed, at most 123 bytes).
        reason: String,
    },
}

/// Where the session is in Gemini's one-setup lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `session.update`s are merged; nothing sent upstream yet.
    Configuring,
    /// `setup` sent; client events are held until `setupComplete`.
    AwaitingSetup,
    /// Events flow both ways.
    Live,
    /// A fresh connection was asked for; client events are held.
    Resuming,
    /// The session is over.
    Closed,
}

/// Client events held while the upstream is not ready.
#[derive(Debug, Default)]
struct Held {
    events: VecDeque<Vec<u8>>,
    bytes: usize,
}

/// One session's translation between an OpenAI realtime client and Gemini
/// Live. See the [module docs](self) for what it does and an example.
#[derive(Debug)]
pub struct GeminiTranslator {
    config: GeminiConfig,
    ids: Ids,
    session: Session,
    phase: Phase,
    held: Held,
    input: InputAudio,
    output: OutputAudio,
    conversation_id: String,
    /// The last item of the conversation, for `previous_item_id`.
    last_item: Option<String>,
    response: Option<Response>,
    user: UserTurn,
    calls: Calls,
    usage: Option<GeminiUsage>,
    /// Text items were added but no turn was completed yet.
    pending_text: bool,
    /// Manual turns: an `activityStart` was sent without its `activityEnd`.
    activity_open: bool,
    /// Input audio appended since the last commit (manual turns).
    appended: bool,
    /// `metadata` of the client's last `response.create`, for the next response.
    metadata: Value,
    /// The latest resumable handle.
    handle: Option<String>,
    /// Whoever runs the translator can open a fresh connection for a
    /// [`Control::Reconnect`] (a [`GeminiSocket`](super::GeminiSocket)
    /// without a redial cannot).
    can_reconnect: bool,
    /// Gemini announced the end of this connection.
    go_away: bool,
    /// Whether `setupComplete` was ever seen (resumptions answer it again).
    setup_done: bool,
    /// The `event_id` of the client's latest event, for error events.
    last_client_event: Option<String>,
    /// A cancelled response was ended without Gemini's word: its late
    /// content is dropped until Gemini ends the turn.
    discarding: bool,
    /// Client content held until every pending tool call is answered.
    deferred: VecDeque<Vec<u8>>,
    /// A `session.update` applied through resumption waits for its `setupComplete`.
    updated_on_resume: bool,
    out: Vec<Output>,
}

impl GeminiTranslator {
    /// A translator for one session.
    pub fn new(config: GeminiConfig) -> Self {
        let mut ids = Ids::new();
        let session_id = ids.make("sess");
        let conversation_id = ids.make("conv");
        let shown_model = config
            .model()
            .rsplit_once("models/")
            .map_or(config.model(), |(_, model)| model)
            .to_owned();
        let session = Session::new(&session_id, &shown_model);
        let input = InputAudio::new(session.input_format(), config.input_rate());
        let output = OutputAudio::new(session.output_format());
        Self {
            config,
            ids,
            session,
            phase: Phase::Configuring,
            held: Held::default(),
            input,
            output,
            conversation_id,
            last_item: None,
            response: None,
            user: UserTurn::default(),
            calls: Calls::default(),
            usage: None,
            pending_text: false,
            activity_open: false,
            appended: false,
            metadata: Value::Null,
            handle: None,
            can_reconnect: true,
            go_away: false,
            setup_done: false,
            last_client_event: None,
            discarding: false,
            deferred: VecDeque::new(),
            updated_on_resume: false,
            out: Vec::new(),
        }
    }

    /// Opens the session: the synthesized `session.created` for the client.
    /// Call it once, right after the client's `101`.
    pub fn start(&mut self) -> Vec<Output> {
        let session = self.session.view();
        self.emit("session.created", [("session", session)]);
        self.take()
    }

    /// Translates one client event (the bytes of a text message).
    pub fn client_event(&mut self, event: &[u8]) -> Vec<Output> {
        self.on_client(event);
        self.take()
    }

    /// Translates one Gemini message (the bytes of a text or binary message).
    pub fn upstream_message(&mut self, message: &[u8]) -> Vec<Output> {
        self.on_upstream(message);
        self.take()
    }

    /// The configuration time is up (the caller's timer, e.g. a few seconds
    /// after [`start`](Self::start)): sends the setup with what the client
    /// configured so far, if not sent yet. Gemini may otherwise drop a
    /// connection that stays without setup.
    pub fn configuration_timeout(&mut self) -> Vec<Output> {
        if self.phase == Phase::Configuring {
            self.send_setup();
        }
        self.take()
    }

    /// The client's `response.cancel` got no answer from Gemini in time (the
    /// caller's timer, a few seconds after the cancel): the response ends as
    /// cancelled now, and what Gemini still sends of it is dropped.
    pub fn cancel_timeout(&mut self) -> Vec<Output> {
        if self
            .response
            .as_ref()
            .is_some_and(|response| response.cancelled)
        {
            self.finish_response(
                "cancelled",
                serde_json::json!({"type": "cancelled", "reason": "client_cancelled"}),
            );
            self.discarding = true;
        }
        self.take()
    }

    /// Gemini closed the connection (`code` `None`: it dropped without a
    /// close frame). Returns the `error` event and [`Control::Close`] per
    /// the close-code table, or, for a normal close, the end of any open
    /// response and a normal close.
    pub fn upstream_closed(&mut self, code: Option<u16>, reason: &str) -> Vec<Output> {
        self.on_upstream_closed(code, reason);
        self.take()
    }

    /// The fresh connection asked for by [`Control::Reconnect`] could not be
    /// opened or set up: an `error` event and a close with 1011.
    pub fn resumption_failed(&mut self) -> Vec<Output> {
        self.fail(
            "server_error",
            "session_resumption_failed",
            "the upstream session could not be resumed",
            1011,
        );
        self.take()
    }

    /// Tells the translator whether a [`Control::Reconnect`] can be
    /// followed: without, a `session.update` Gemini cannot apply in place is
    /// refused rather than resumed.
    pub(crate) fn set_can_reconnect(&mut self, can: bool) {
        self.can_reconnect = can;
    }

    /// Whether the session has ended (after a [`Control::Close`]).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// Queues an OpenAI event for the client: `type`, a fresh `event_id`,
    /// then `fields`.
    fn emit<const N: usize>(&mut self, kind: &str, fields: [(&str, Value); N]) {
        self.emit_ordered(kind, fields.iter().map(|(key, value)| (*key, value)));
    }

    /// Writes an event with its members in the order given (`type` first,
    /// as OpenAI writes them); nested objects keep serde_json's order.
    fn emit_ordered<'a>(&mut self, kind: &str, fields: impl Iterator<Item = (&'a str, &'a Value)>) {
        let event_id = self.ids.make("event");
        let mut event = String::with_capacity(128);
        event.push_str(r#"{"type":"#);
        event.push_str(&Value::from(kind).to_string());
        event.push_str(r#","event_id":"#);
        event.push_str(&Value::from(event_id).to_string());
        for (key, value) in fields {
            event.push(',');
            event.push_str(&Value::from(key).to_string());
            event.push(':');
            event.push_str(&value.to_string());
        }
        event.push('}');
        self.out.push(Output::Client(event));
    }

    /// Queues a message for Gemini.
    fn send(&mut self, message: &Value) {
        self.out.push(Output::Upstream(message.to_string()));
    }

    /// Queues an `error` event for the client; the session goes on.
    fn error(&mut self, error_type: &str, code: &str, message: &str, param: Option<&str>) {
        let event_id = self.last_client_event.clone();
        self.emit(
            "error",
            [(
                "error",
                serde_json::json!({
                    "type": error_type,
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": event_id,
                }),
            )],
        );
    }

    /// An `error` event, then the end of the session.
    fn fail(&mut self, error_type: &str, code: &str, message: &str, close: u16) {
        if self.phase == Phase::Closed {
            return;
        }
        self.error(error_type, code, message, None);
        self.phase = Phase::Closed;
        self.out.push(Output::Control(Control::Close {
            code: close,
            reason: close::scrub(message),
        }));
    }
}
