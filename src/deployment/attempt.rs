//! What happened to each deployment a session tried.

use std::time::Duration;

/// One deployment a session tried before it opened (or was refused), in
/// the order tried; see `SessionSummary::attempts`.
///
/// # Example
///
/// ```
/// use tower_realtime::deployment::Attempt;
///
/// fn failed_over(attempts: &[Attempt]) -> bool {
///     attempts.iter().any(|attempt| attempt.error.is_some())
/// }
/// # let _ = failed_over;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The deployment's selector, `provider/model`.
    pub deployment: String,
    /// `None` when the session opened on it, else the error code the client
    /// would have got from it (`upstream_unavailable`, `upstream_timeout`…).
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration: Duration,
}

impl Attempt {
    /// An attempt on `deployment` that ended with `error` (`None`: opened).
    pub fn new(deployment: impl Into<String>, error: Option<String>, duration: Duration) -> Self {
        Self {
            deployment: deployment.into(),
            error,
            duration,
        }
    }
}
