//! Protocol translators: upstreams that do not speak OpenAI's realtime
//! schema, served to OpenAI clients as if they did.
//!
//! | upstream | translator |
//! |---|---|
//! | Gemini Live (Gemini API, Vertex AI) | [`gemini::GeminiTranslator`] |
//!
//! A translator is sans-IO: the session feeds it messages and sends what it
//! returns, so it is tested without sockets and reused by any transport.
//! [`GeminiSocket`] is that loop for a tokio-tungstenite connection: a
//! Gemini socket that reads and writes OpenAI events.

mod audio;
pub mod gemini;
mod socket;

pub use socket::{Dialling, GeminiSocket, Redial};
