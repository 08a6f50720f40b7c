//! What a Gemini Live translator needs to know about its upstream.

/// Which Google backend a session talks to: their wire formats differ in a
/// few places (function response ids, resumption, input audio rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// The Gemini Developer API (`generativelanguage.googleapis.com`).
    GeminiApi,
    /// Vertex AI (`aiplatform.googleapis.com`).
    Vertex,
}

/// How a text-only session (`output_modalities: ["text"]`) is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextResponses {
    /// Ask for audio with a transcript and send the transcript as text:
    /// works on native-audio models, which refuse `TEXT` (the audio is
    /// still produced, and billed, upstream).
    ViaTranscript,
    /// Ask for `TEXT`: for half-cascade models that produce text.
    Native,
}

/// The configuration of one [`GeminiTranslator`](super::GeminiTranslator).
///
/// # Example
///
/// ```
/// use tower_realtime::translate::gemini::{Backend, GeminiConfig};
///
/// let config = GeminiConfig::new(Backend::GeminiApi, "models/gemini-live-2.5-flash-preview");
/// assert_eq!(config.model(), "models/gemini-live-2.5-flash-preview");
/// assert_eq!(config.input_rate(), None);
/// let vertex = GeminiConfig::new(Backend::Vertex, "projects/p/locations/l/publishers/google/models/m");
/// assert_eq!(vertex.input_rate(), Some(16_000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiConfig {
    backend: Backend,
    model: String,
    input_rate: Option<u32>,
    text_responses: TextResponses,
    context_compression: bool,
    max_held_events: usize,
    max_held_bytes: usize,
    reconfigure: bool,
}

impl GeminiConfig {
    /// A translator for `model`, the resource name the backend expects in
    /// `setup.model` (`models/M` on the Gemini API,
    /// `projects/P/locations/L/publishers/google/models/M` on Vertex).
    ///
    /// Defaults: input audio sent at the client's rate and labelled
    /// (`audio/pcm;rate=24000`) on the Gemini API, resampled to 16 kHz on
    /// Vertex (whose documentation names 16 kHz input only); text sessions
    /// [`TextResponses::ViaTranscript`]; sliding-window context compression
    /// on; at most 256 client events or 8 MiB held while the upstream is not
    /// ready; a `session.update` after setup applied by resuming
    /// ([`GeminiConfig::reconfigure_by_resuming`]).
    pub fn new(backend: Backend, model: impl Into<String>) -> Self {
        Self {
            backend,
            model: model.into(),
            input_rate: match backend {
                Backend::GeminiApi => None,
                Backend::Vertex => Some(16_000),
            },
            text_responses: TextResponses::ViaTranscript,
            context_compression: true,
            max_held_events: 256,
            max_held_bytes: 8 << 20,
            reconfigure: true,
        }
    }

    /// Resamples input audio to `rate` Hz (`None`: send it at the client's
    /// rate, labelled).
    ///
    /// ```
    /// use tower_realtime::translate::gemini::{Backend, GeminiConfig};
    ///
    /// let config = GeminiConfig::new(Backend::GeminiApi, "models/m").input_rate_hz(Some(16_000));
    /// assert_eq!(config.input_rate(), Some(16_000));
    /// ```
    #[must_use]
    pub fn input_rate_hz(mut self, rate: Option<u32>) -> Self {
        self.input_rate = rate.filter(|&rate| rate > 0);
        self
    }

    /// How text-only sessions are served.
    #[must_use]
    pub fn text_responses(mut self, text: TextResponses) -> Self {
        self.text_responses = text;
        self
    }

    /// Asks for sliding-window context compression (on by default), which
    /// lifts Gemini's 15-minute limit on audio sessions.
    #[must_use]
    pub fn context_compression(mut self, on: bool) -> Self {
        self.context_compression = on;
        self
    }

    /// Bounds the client events held while the upstream is not ready (before
    /// `setupComplete`, during a resumption): at most `events` events and
    /// `bytes` bytes; beyond that the session ends with an error.
    #[must_use]
    pub fn max_held(mut self, events: usize, bytes: usize) -> Self {
        self.max_held_events = events;
        self.max_held_bytes = bytes;
        self
    }

    /// Applies a `session.update` that changes what Gemini fixed at setup
    /// (instructions, voice, tools, turn detection) by resuming the session
    /// on a fresh connection with the new setup ([`Control::Reconnect`]),
    /// between responses; the client gets `session.updated` once Gemini
    /// confirms the new setup. On by default. Such an update is refused
    /// with an `error` event (`unsupported_session_update`) when this is
    /// off, or when resumption is: Gemini gave the session no resumable
    /// handle (yet). Costs a reconnect, and Gemini has been seen to fail
    /// resumptions with long instructions (the session then ends with an
    /// `error` event).
    ///
    /// [`Control::Reconnect`]: super::Control::Reconnect
    ///
    /// ```
    /// use tower_realtime::translate::gemini::{Backend, GeminiConfig};
    ///
    /// let config = GeminiConfig::new(Backend::GeminiApi, "models/m");
    /// assert_ne!(config, config.clone().reconfigure_by_resuming(false));
    /// assert_eq!(config, config.clone().reconfigure_by_resuming(true));
    /// ```
    #[must_use]
    pub fn reconfigure_by_resuming(mut self, on: bool) -> Self {
        self.reconfigure = on;
        self
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The model resource name sent in `setup`.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The input sample rate the upstream gets, if fixed.
    pub fn input_rate(&self) -> Option<u32> {
        self.input_rate
    }

    pub(super) fn text_mode(&self) -> TextResponses {
        self.text_responses
    }

    pub(super) fn compression(&self) -> bool {
        self.context_compression
    }

    pub(super) fn reconfigures(&self) -> bool {
        self.reconfigure
    }

    pub(super) fn held_limits(&self) -> (usize, usize) {
        (self.max_held_events, self.max_held_bytes)
    }
}
