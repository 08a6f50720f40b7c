//! The upstream hop: which headers go, how TLS is set up, how the socket is
//! dialled, and how failures become responses.

mod client_handshake;
mod connect;
mod dial;
mod failure;
pub(crate) mod headers;
mod pool;
mod retry_after;
mod stream;
pub(crate) mod tls;
mod translated;

pub(crate) use dial::{Dialer, UpstreamSocket};
pub(crate) use failure::{fails_over, from_answer, timed_out};
pub(crate) use pool::{Pool, PoolConfig};
pub(crate) use retry_after::retry_after;
pub(crate) use translated::{Redial, Upstream};
