//! How a relayed session ended.

use std::fmt;

/// Who ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClosedBy {
    /// The client sent a close frame, broke the protocol, or went away.
    Client,
    /// The upstream sent a close frame, broke the protocol, or went away.
    Upstream,
    /// The gateway ended it: idle timeout, maximum duration or shutdown.
    Gateway,
    /// A hook's verdict, or a [`SessionControl`](crate::hooks::SessionControl), ended it.
    Hook,
}

impl ClosedBy {
    /// `client`, `upstream`, `gateway` or `hook`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedBy::Client => "client",
            ClosedBy::Upstream => "upstream",
            ClosedBy::Gateway => "gateway",
            ClosedBy::Hook => "hook",
        }
    }
}

impl fmt::Display for ClosedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The end of a session: who closed it, with which close code, and the error if any.
///
/// `code` is the close code the closing party sent (`1005` when its close
/// frame had no code, `1006` when it vanished without one), or the code the
/// gateway sent when it ended the session itself.
///
/// # Example
///
/// ```
/// use tower_realtime::{ClosedBy, SessionEnd};
///
/// let end = SessionEnd { closed_by: ClosedBy::Client, code: 1000, reason: String::new(), error: None };
/// assert_eq!(end.to_string(), "closed by client with 1000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// Who ended the session.
    pub closed_by: ClosedBy,
    /// The close code.
    pub code: u16,
    /// The close reason, if one was given.
    pub reason: String,
    /// What went wrong, when the session did not end with a close frame.
    pub error: Option<String>,
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "closed by {} with {}", self.closed_by, self.code)?;
        if !self.reason.is_empty() {
            write!(f, " ({})", self.reason)?;
        }
        if let Some(error) = &self.error {
            write!(f, ": {error}")?;
        }
        Ok(())
    }
}
