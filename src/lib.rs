#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

mod accept;
pub mod admission;
mod body;
pub mod budget;
mod client_io;
pub mod deployment;
mod error;
mod handshake;
pub mod hooks;
mod layer;
mod origin;
mod outcome;
pub mod provider;
mod read_ahead;
mod relay;
mod request_id;
mod route;
mod secret;
mod service;
mod session;
mod sessions;
mod socket_options;
mod split_frames;
pub mod store;
mod subprotocol_token;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod translate;
mod upstream;
pub mod usage;
pub mod webrtc;

pub use admission::Identity;
pub use body::RealtimeBody;
pub use layer::RealtimeLayer;
pub use origin::OriginPolicy;
pub use outcome::{ClosedBy, SessionEnd};
pub use provider::Providers;
pub use secret::Secret;
pub use service::{RealtimeService, ResponseFuture};
pub use sessions::ShutdownHandle;
pub use subprotocol_token::{SubprotocolToken, SubprotocolTokenLayer};
pub use usage::SessionInfo;
