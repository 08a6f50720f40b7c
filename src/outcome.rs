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
/// let end = SessionEnd::new(ClosedBy::Client, 1000);
/// assert_eq!(end.to_string(), "closed by client with 1000");
/// let lost = SessionEnd::new(ClosedBy::Upstream, 1006).with_error("connection reset");
/// assert_eq!(lost.to_string(), "closed by upstream with 1006: connection reset");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

impl SessionEnd {
    /// An end by `closed_by` with `code`, without a reason or an error.
    pub fn new(closed_by: ClosedBy, code: u16) -> Self {
        Self {
            closed_by,
            code,
            reason: String::new(),
            error: None,
        }
    }

    /// Sets the close reason.
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Sets what went wrong.
    #[must_use]
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
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
