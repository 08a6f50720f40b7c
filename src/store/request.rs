//! The questions a store answers and its answers.

use std::time::{Duration, SystemTime};

use crate::budget::{Limit, Limits, Refusal, Spend};

/// A session an identity wants to open.
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tower_realtime::budget::Limits;
/// use tower_realtime::store::SessionRequest;
///
/// let limits = Limits::new().max_live_sessions(2);
/// let request = SessionRequest::new("alice", "sess_1", &limits).at(UNIX_EPOCH + Duration::from_secs(60));
/// assert_eq!(request.identity, "alice");
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SessionRequest<'a> {
    /// Who opens it.
    pub identity: &'a str,
    /// The session's id, unique among the identity's sessions.
    pub session: &'a str,
    /// The identity's limits.
    pub limits: &'a Limits,
    /// When (defaults to now).
    pub now: SystemTime,
}

impl<'a> SessionRequest<'a> {
    /// `identity` opens `session` now, under `limits`.
    pub fn new(identity: &'a str, session: &'a str, limits: &'a Limits) -> Self {
        Self {
            identity,
            session,
            limits,
            now: SystemTime::now(),
        }
    }

    /// The same request at another time.
    #[must_use]
    pub fn at(mut self, now: SystemTime) -> Self {
        self.now = now;
        self
    }
}

/// Whether a session may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// It may, and now counts as live.
    Admitted,
    /// It may not.
    Refused(Refusal),
}

/// An estimate to hold against an identity's budgets before a response starts.
///
/// # Example
///
/// ```
/// use tower_realtime::budget::{Limits, Spend};
/// use tower_realtime::store::Reservation;
///
/// let limits = Limits::new();
/// let reservation = Reservation::new("alice", "resp_1", &limits, Spend::new().with_tokens(4_096))
///     .at_least(Spend::new().with_tokens(256));
/// assert_eq!(reservation.min.tokens, 256);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Reservation<'a> {
    /// Whose budgets.
    pub identity: &'a str,
    /// The reservation's id (a response id, or one the caller makes up).
    pub id: &'a str,
    /// The identity's limits.
    pub limits: &'a Limits,
    /// What to hold.
    pub want: Spend,
    /// The least worth holding on each meter (defaults to `want`: all or nothing).
    pub min: Spend,
    /// When (defaults to now).
    pub now: SystemTime,
}

impl<'a> Reservation<'a> {
    /// Hold `want` for reservation `id` of `identity`, all or nothing.
    pub fn new(identity: &'a str, id: &'a str, limits: &'a Limits, want: Spend) -> Self {
        Self {
            identity,
            id,
            limits,
            want,
            min: want,
            now: SystemTime::now(),
        }
    }

    /// Accepts less than asked for, down to `min` on each meter.
    #[must_use]
    pub fn at_least(mut self, min: Spend) -> Self {
        self.min = min;
        self
    }

    /// The same reservation at another time.
    #[must_use]
    pub fn at(mut self, now: SystemTime) -> Self {
        self.now = now;
        self
    }
}

/// What a reservation got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grant {
    /// This much is held.
    Granted(Spend),
    /// Nothing is held.
    Refused(Refusal),
}

/// What a response (or a transcription, or audio time) cost.
///
/// # Example
///
/// ```
/// use tower_realtime::budget::{Limits, Micros, Spend};
/// use tower_realtime::store::Settlement;
///
/// let limits = Limits::new();
/// let settlement = Settlement::new("alice", "resp_1", &limits, Spend::new().with_money(Micros::new(900)))
///     .releasing("resp_1");
/// assert_eq!(settlement.reservation, Some("resp_1"));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Settlement<'a> {
    /// Whose budgets.
    pub identity: &'a str,
    /// Settles once: a later settlement with the same id changes nothing.
    pub id: &'a str,
    /// The reservation it releases, if any.
    pub reservation: Option<&'a str>,
    /// The identity's limits.
    pub limits: &'a Limits,
    /// What it cost.
    pub actual: Spend,
    /// When (defaults to now).
    pub now: SystemTime,
}

impl<'a> Settlement<'a> {
    /// Charge `actual` to `identity` once for settlement `id`.
    pub fn new(identity: &'a str, id: &'a str, limits: &'a Limits, actual: Spend) -> Self {
        Self {
            identity,
            id,
            reservation: None,
            limits,
            actual,
            now: SystemTime::now(),
        }
    }

    /// Also releases the reservation `id` (what it held beyond `actual` is free again).
    #[must_use]
    pub fn releasing(mut self, reservation: &'a str) -> Self {
        self.reservation = Some(reservation);
        self
    }

    /// The same settlement at another time.
    #[must_use]
    pub fn at(mut self, now: SystemTime) -> Self {
        self.now = now;
        self
    }
}

/// What a settlement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    applied: bool,
    deferred: bool,
    exhausted: Option<Refusal>,
}

impl Settled {
    pub(crate) fn new(applied: bool, exhausted: Option<Refusal>) -> Self {
        Self {
            applied,
            deferred: false,
            exhausted,
        }
    }

    /// Queued for a store that could not be reached; `exhausted` is what
    /// a local meter saw, if any.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn deferred(exhausted: Option<Refusal>) -> Self {
        Self {
            applied: false,
            deferred: true,
            exhausted,
        }
    }

    /// `false` when the settlement id had been settled already.
    pub fn applied(&self) -> bool {
        self.applied
    }

    /// `true` when the store could not be reached and the settlement is
    /// queued, to be applied when it can.
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// The first budget that is now spent, if any.
    pub fn exhausted(&self) -> Option<Refusal> {
        self.exhausted
    }
}

/// One budget's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Balance {
    /// The budget.
    pub limit: Limit,
    /// Settled in the current window.
    pub spent: u64,
    /// Held by open reservations.
    pub held: u64,
    /// When the current window ends (`None` for a total).
    pub resets_in: Option<Duration>,
}

impl Balance {
    /// What is neither spent nor held.
    pub fn remaining(&self) -> u64 {
        self.limit
            .max()
            .saturating_sub(self.spent)
            .saturating_sub(self.held)
    }
}
