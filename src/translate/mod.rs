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
//! Gemini socket that reads and writes OpenAI events. The layer runs it for
//! every target marked [`Protocol::GeminiLive`](crate::provider::Protocol),
//! between the relay and the dialled socket: hooks, the usage meter and the
//! observer see OpenAI events only, and a resumption dials a fresh target
//! through the same provider.

mod audio;
pub mod gemini;
mod socket;

pub use socket::{Dialling, GeminiSocket, Redial};
