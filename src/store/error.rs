//! A store that could not answer.

use std::fmt;

/// Why a store call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The call took longer than the store's timeout.
    Timeout,
    /// The store could not be reached.
    Connection,
    /// The store answered with an error.
    Response,
}

/// A store call that failed: the admission path answers it with
/// `503 budget_store_unavailable` when the store fails closed.
///
/// # Example
///
/// ```
/// use tower_realtime::store::{StoreError, StoreErrorKind};
///
/// let error = StoreError::new(StoreErrorKind::Timeout, "no answer within 500ms");
/// assert_eq!(error.code(), "budget_store_unavailable");
/// assert_eq!(error.to_string(), "budget store timeout: no answer within 500ms");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

impl StoreError {
    /// An error of `kind`, with a message for logs.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The OpenAI-shaped error code for clients: `budget_store_unavailable`.
    pub fn code(&self) -> &'static str {
        "budget_store_unavailable"
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            StoreErrorKind::Timeout => "timeout",
            StoreErrorKind::Connection => "unreachable",
            StoreErrorKind::Response => "error",
        };
        write!(f, "budget store {kind}: {}", self.message)
    }
}

impl std::error::Error for StoreError {}
