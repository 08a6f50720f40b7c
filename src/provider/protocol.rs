//! The event schema an upstream speaks.

use crate::translate::gemini::GeminiConfig;

/// What an upstream speaks, and so whether the session translates.
///
/// # Example
///
/// ```
/// use tower_realtime::provider::{Protocol, Target};
/// use tower_realtime::translate::gemini::{Backend, GeminiConfig};
/// use url::Url;
///
/// let target = Target::new(Url::parse("wss://example.com/ws").unwrap());
/// assert_eq!(target.upstream_protocol(), &Protocol::OpenAiRealtime);
/// let gemini = target.protocol(Protocol::GeminiLive(GeminiConfig::new(Backend::GeminiApi, "models/m")));
/// assert!(gemini.upstream_protocol().needs_translation());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// OpenAI's realtime schema: events are relayed as they are.
    #[default]
    OpenAiRealtime,
    /// Gemini Live: the session runs a
    /// [`GeminiTranslator`](crate::translate::gemini::GeminiTranslator)
    /// with this configuration.
    GeminiLive(GeminiConfig),
}

impl Protocol {
    /// Whether events must be translated (anything but OpenAI's schema).
    pub fn needs_translation(&self) -> bool {
        !matches!(self, Protocol::OpenAiRealtime)
    }
}
