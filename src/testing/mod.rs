//! A scripted upstream realtime server on loopback, for tests and demos
//! (feature `test-util`).
//!
//! [`MockUpstream`] accepts WebSocket handshakes on `127.0.0.1`, records the
//! path, query and headers of each, and runs a script per session. The
//! default script sends `session.created` right after the handshake and
//! echoes every text and binary message back; close frames are answered
//! with the same code and reason. Everything the gateway sent is recorded.
//!
//! [`GeminiLive`] is a script that speaks Gemini Live instead (binary
//! frames, `setup` first), [`TokenEndpoint`] a local OAuth token
//! endpoint for service-account credentials, and [`WebRtcUpstream`] a
//! provider of WebRTC calls (client secrets, calls, hang-ups, sidebands).
//!
//! A [`Script`] of your own decides what each session does. The gateway
//! example's `demo` provider (`examples/gateway/demo/`) is one: a small
//! realtime model that answers text and audio with a sentence and a chime,
//! written against this module's public API only.
//!
//! # Example
//!
//! ```
//! use tower_realtime::provider::OpenAi;
//! use tower_realtime::testing::MockUpstream;
//! use tower_realtime::{Providers, Secret};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let upstream = MockUpstream::echo().await?;
//! let openai = OpenAi::new(Secret::new("sk-test")).base_url(&upstream.base_url()).unwrap();
//! let providers = Providers::new().with("openai", openai);
//! // ... serve a RealtimeLayer with `providers`, connect a client, then:
//! assert!(upstream.requests().is_empty());
//! # Ok(())
//! # }
//! ```

mod gemini;
mod log;
mod script;
mod server;
mod session;
mod sessions;
mod token_endpoint;
mod webrtc;

pub use gemini::{GeminiLive, Step, Trigger};
pub use log::RecordedRequest;
pub use script::{Handshake, Script};
pub use server::{MockUpstream, MockUpstreamBuilder};
pub use session::UpstreamSession;
pub use token_endpoint::TokenEndpoint;
pub use webrtc::{HttpRequest, SDP_ANSWER, WebRtcUpstream, WebRtcUpstreamBuilder};
