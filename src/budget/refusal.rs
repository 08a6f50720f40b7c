//! Why an identity may not open a session or start a response.

use std::fmt;
use std::time::Duration;

use super::Limit;

/// Why a store said no.
///
/// # Example
///
/// ```
/// use tower_realtime::budget::{Limit, Refusal, RefusalReason, Window};
///
/// let refusal = Refusal::new(RefusalReason::Budget(Limit::tokens(Window::Total, 10)), None);
/// assert_eq!(refusal.code(), "insufficient_quota");
/// assert_eq!(refusal.to_string(), "the tokens budget (total) is spent");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// This budget is spent.
    Budget(Limit),
    /// The identity has this many sessions open already.
    LiveSessions(u32),
    /// The identity opened this many sessions in the current minute already.
    NewSessions(u32),
}

/// A refusal: its reason, and when trying again may succeed (when the
/// window that refused resets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    reason: RefusalReason,
    retry_after: Option<Duration>,
}

impl Refusal {
    /// A refusal for `reason`, worth retrying after `retry_after`.
    pub fn new(reason: RefusalReason, retry_after: Option<Duration>) -> Self {
        Self {
            reason,
            retry_after,
        }
    }

    /// Why.
    pub fn reason(&self) -> RefusalReason {
        self.reason
    }

    /// When the window that refused resets; `None` for live sessions and
    /// total budgets.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The OpenAI-shaped error code: `insufficient_quota` (a budget),
    /// `concurrency_limit_exceeded` (live sessions) or `rate_limit_exceeded`
    /// (new sessions per minute).
    pub fn code(&self) -> &'static str {
        match self.reason {
            RefusalReason::Budget(_) => "insufficient_quota",
            RefusalReason::LiveSessions(_) => "concurrency_limit_exceeded",
            RefusalReason::NewSessions(_) => "rate_limit_exceeded",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            RefusalReason::Budget(limit) => write!(
                f,
                "the {} budget ({}) is spent",
                limit.meter().name(),
                limit.window().name()
            ),
            RefusalReason::LiveSessions(max) => {
                write!(f, "at most {max} sessions may be open at once")
            }
            RefusalReason::NewSessions(max) => {
                write!(f, "at most {max} sessions may be opened per minute")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{Micros, Window};

    #[test]
    fn codes_and_messages() {
        let money = Refusal::new(
            RefusalReason::Budget(Limit::money(Window::Day, Micros::new(1))),
            Some(Duration::from_secs(5)),
        );
        assert_eq!(money.code(), "insufficient_quota");
        assert_eq!(money.to_string(), "the money budget (day) is spent");
        assert_eq!(money.retry_after(), Some(Duration::from_secs(5)));
        let live = Refusal::new(RefusalReason::LiveSessions(2), None);
        assert_eq!(live.code(), "concurrency_limit_exceeded");
        assert_eq!(live.to_string(), "at most 2 sessions may be open at once");
        let new = Refusal::new(RefusalReason::NewSessions(3), None);
        assert_eq!(new.code(), "rate_limit_exceeded");
        assert_eq!(
            new.to_string(),
            "at most 3 sessions may be opened per minute"
        );
    }
}
