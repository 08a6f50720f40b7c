//! Budgets counted in this process: the default, for one replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use super::exhausted::CAPACITY;
use super::ledger::Ledger;
use super::{
    Admission, Balance, BudgetStore, ExhaustedIdentities, Grant, Reservation, SessionRequest,
    Settled, Settlement, StoreFuture,
};
use crate::budget::{Limits, unix_ms};

/// The default reservation lifetime: a reservation not settled within it
/// is charged in full (its holder is taken to have crashed).
pub(crate) const RESERVATION_TTL: Duration = Duration::from_secs(10 * 60);

/// A [`BudgetStore`] in this process's memory: for a single replica, and
/// the local meter of a Redis store that fails open.
///
/// Clones share their state. Every call answers at once.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use tower_realtime::store::{BudgetStore, MemoryBudgetStore};
///
/// let store: Arc<dyn BudgetStore> = Arc::new(MemoryBudgetStore::new());
/// # let _ = store;
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBudgetStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ledgers: Mutex<HashMap<String, Ledger>>,
    reservation_ttl: Duration,
    exhausted: broadcast::Sender<Arc<str>>,
}

impl Default for MemoryBudgetStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBudgetStore {
    /// An empty store; reservations expire after ten minutes.
    pub fn new() -> Self {
        Self::with_reservation_ttl(RESERVATION_TTL)
    }

    /// An empty store whose reservations expire after `ttl`: one not
    /// settled by then is charged in full.
    pub fn with_reservation_ttl(ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                ledgers: Mutex::new(HashMap::new()),
                reservation_ttl: ttl,
                exhausted: broadcast::channel(CAPACITY).0,
            }),
        }
    }

    fn with_ledger<T>(&self, identity: &str, f: impl FnOnce(&mut Ledger) -> T) -> T {
        let mut ledgers = self
            .inner
            .ledgers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(ledger) = ledgers.get_mut(identity) {
            return f(ledger);
        }
        f(ledgers.entry(identity.to_owned()).or_default())
    }

    pub(crate) fn announce(&self, identity: &str) {
        // No subscriber is not an error.
        let _ = self.inner.exhausted.send(Arc::from(identity));
    }

    pub(crate) fn admit_now(&self, request: &SessionRequest<'_>) -> Admission {
        self.with_ledger(request.identity, |ledger| {
            ledger.admit(request.session, request.limits, unix_ms(request.now))
        })
    }

    pub(crate) fn release_now(&self, identity: &str, session: &str) {
        self.with_ledger(identity, |ledger| ledger.release_session(session));
    }

    pub(crate) fn reserve_now(&self, r: &Reservation<'_>) -> Grant {
        let ttl = self.inner.reservation_ttl;
        self.with_ledger(r.identity, |ledger| {
            ledger.reserve(r.id, r.limits, r.want, r.min, ttl, unix_ms(r.now))
        })
    }

    /// Settles, and announces the identity when the settlement spent a budget.
    pub(crate) fn settle_now(&self, s: &Settlement<'_>) -> Settled {
        let (applied, exhausted) = self.with_ledger(s.identity, |ledger| {
            ledger.settle(s.id, s.reservation, s.limits, s.actual, unix_ms(s.now))
        });
        if applied && exhausted.is_some() {
            self.announce(s.identity);
        }
        Settled::new(applied, exhausted)
    }

    pub(crate) fn balance_now(
        &self,
        identity: &str,
        limits: &Limits,
        now: SystemTime,
    ) -> Vec<Balance> {
        self.with_ledger(identity, |ledger| ledger.balance(limits, unix_ms(now)))
    }
}

impl BudgetStore for MemoryBudgetStore {
    fn admit<'a>(&'a self, request: &'a SessionRequest<'a>) -> StoreFuture<'a, Admission> {
        let admission = self.admit_now(request);
        Box::pin(async move { Ok(admission) })
    }

    fn release_session<'a>(&'a self, identity: &'a str, session: &'a str) -> StoreFuture<'a, ()> {
        self.release_now(identity, session);
        Box::pin(async { Ok(()) })
    }

    fn reserve<'a>(&'a self, reservation: &'a Reservation<'a>) -> StoreFuture<'a, Grant> {
        let grant = self.reserve_now(reservation);
        Box::pin(async move { Ok(grant) })
    }

    fn settle<'a>(&'a self, settlement: &'a Settlement<'a>) -> StoreFuture<'a, Settled> {
        let settled = self.settle_now(settlement);
        Box::pin(async move { Ok(settled) })
    }

    fn balance<'a>(
        &'a self,
        identity: &'a str,
        limits: &'a Limits,
        now: SystemTime,
    ) -> StoreFuture<'a, Vec<Balance>> {
        let balance = self.balance_now(identity, limits, now);
        Box::pin(async move { Ok(balance) })
    }

    fn announce_exhausted<'a>(&'a self, identity: &'a str) -> StoreFuture<'a, ()> {
        self.announce(identity);
        Box::pin(async { Ok(()) })
    }

    fn exhausted(&self) -> ExhaustedIdentities {
        ExhaustedIdentities::new(self.inner.exhausted.subscribe())
    }
}
