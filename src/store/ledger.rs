//! One identity's budgets and sessions, counted in this process.
//!
//! The Redis scripts (`redis/*.lua`) implement the same rules; the shared
//! behavioural tests (`tests/budget_store.rs`) hold both to them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::budget::{Limits, Meter, Period, Refusal, RefusalReason, Spend, Window};

use super::{Admission, Balance, Grant};

/// How long settlement ids are remembered (and swept reservations).
pub(crate) const REMEMBER_MS: u64 = 24 * 60 * 60 * 1_000;

type Amounts = [u64; 3];

#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Spent per window occurrence, and when it ends.
    windows: HashMap<(Window, u64), (Amounts, Option<u64>)>,
    /// The sum of open reservations.
    held: Amounts,
    /// Open reservations: what each holds and when it expires.
    reservations: HashMap<String, (Amounts, u64)>,
    /// Reservations that expired and were charged: what, and when.
    swept: HashMap<String, (Amounts, u64)>,
    /// Settlement ids applied, and when.
    settled: HashMap<String, u64>,
    live: HashSet<String>,
    /// The current minute and the sessions opened in it.
    new_sessions: (u64, u32),
}

/// The budgets of some limits at one time.
struct Budgets<'a> {
    limits: &'a Limits,
    periods: Vec<Period>,
    of_budget: Vec<usize>,
    now_ms: u64,
}

impl<'a> Budgets<'a> {
    fn new(limits: &'a Limits, now_ms: u64) -> Self {
        let (periods, of_budget) = limits.periods(now_ms);
        Self {
            limits,
            periods,
            of_budget,
            now_ms,
        }
    }

    fn refusal(&self, budget: usize) -> Refusal {
        let limit = self.limits.budgets()[budget];
        let period = self.periods[self.of_budget[budget]];
        Refusal::new(RefusalReason::Budget(limit), period.remaining(self.now_ms))
    }
}

impl Ledger {
    /// Forgets windows that ended and ids older than a day.
    fn prune(&mut self, now_ms: u64) {
        self.windows
            .retain(|_, (_, ends)| ends.is_none_or(|end| end > now_ms));
        let horizon = now_ms.saturating_sub(REMEMBER_MS);
        self.settled.retain(|_, at| *at > horizon);
        self.swept.retain(|_, (_, at)| *at > horizon);
    }

    fn spent(&self, period: &Period, meter: Meter) -> u64 {
        self.windows
            .get(&(period.window, period.number))
            .map_or(0, |(spent, _)| spent[meter.index()])
    }

    fn charge(&mut self, budgets: &Budgets<'_>, amounts: Amounts) {
        for period in &budgets.periods {
            let (spent, _) = self
                .windows
                .entry((period.window, period.number))
                .or_insert(([0; 3], period.ends_at_ms));
            for (spent, amount) in spent.iter_mut().zip(amounts) {
                *spent = spent.saturating_add(amount);
            }
        }
    }

    /// The first budget whose window is spent.
    fn exhausted(&self, budgets: &Budgets<'_>) -> Option<Refusal> {
        budgets
            .limits
            .budgets()
            .iter()
            .enumerate()
            .find(|(i, limit)| {
                let period = &budgets.periods[budgets.of_budget[*i]];
                self.spent(period, limit.meter()) >= limit.max()
            })
            .map(|(i, _)| budgets.refusal(i))
    }

    /// Charges reservations that expired (their holder stopped settling).
    fn sweep(&mut self, budgets: &Budgets<'_>) {
        let now_ms = budgets.now_ms;
        let expired: Vec<String> = self
            .reservations
            .iter()
            .filter(|(_, (_, expires))| *expires <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some((amounts, _)) = self.reservations.remove(&id) {
                self.release(amounts);
                self.charge(budgets, amounts);
                self.swept.insert(id, (amounts, now_ms));
            }
        }
    }

    fn release(&mut self, amounts: Amounts) {
        for (held, amount) in self.held.iter_mut().zip(amounts) {
            *held = held.saturating_sub(amount);
        }
    }

    pub(crate) fn admit(&mut self, session: &str, limits: &Limits, now_ms: u64) -> Admission {
        self.prune(now_ms);
        let budgets = Budgets::new(limits, now_ms);
        if let Some(refusal) = self.exhausted(&budgets) {
            return Admission::Refused(refusal);
        }
        if self.live.contains(session) {
            return Admission::Admitted;
        }
        if let Some(max) = limits.live_sessions()
            && self.live.len() >= max as usize
        {
            return Admission::Refused(Refusal::new(RefusalReason::LiveSessions(max), None));
        }
        let minute = Window::Minute.period(now_ms);
        if self.new_sessions.0 != minute.number {
            self.new_sessions = (minute.number, 0);
        }
        if let Some(max) = limits.new_sessions_per_minute()
            && self.new_sessions.1 >= max
        {
            return Admission::Refused(Refusal::new(
                RefusalReason::NewSessions(max),
                minute.remaining(now_ms),
            ));
        }
        self.new_sessions.1 += 1;
        self.live.insert(session.to_owned());
        Admission::Admitted
    }

    pub(crate) fn release_session(&mut self, session: &str) {
        self.live.remove(session);
    }

    pub(crate) fn reserve(
        &mut self,
        id: &str,
        limits: &Limits,
        want: Spend,
        min: Spend,
        ttl: Duration,
        now_ms: u64,
    ) -> Grant {
        self.prune(now_ms);
        let budgets = Budgets::new(limits, now_ms);
        self.sweep(&budgets);
        let (want, min) = (want.clamped(), min.clamped());
        let mut granted = [0; 3];
        for meter in Meter::ALL {
            let m = meter.index();
            let mut cap: Option<(u64, usize)> = None;
            for (i, limit) in limits.budgets().iter().enumerate() {
                if limit.meter() != meter {
                    continue;
                }
                let period = &budgets.periods[budgets.of_budget[i]];
                let left = limit
                    .max()
                    .saturating_sub(self.spent(period, meter))
                    .saturating_sub(self.held[m]);
                if cap.is_none_or(|(least, _)| left < least) {
                    cap = Some((left, i));
                }
            }
            granted[m] = cap.map_or(want[m], |(left, _)| want[m].min(left));
            if let Some((_, budget)) = cap
                && granted[m] < min[m].min(want[m])
            {
                return Grant::Refused(budgets.refusal(budget));
            }
        }
        let expires = now_ms.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let (held, expires_at) = self
            .reservations
            .entry(id.to_owned())
            .or_insert(([0; 3], expires));
        *expires_at = expires;
        for m in 0..3 {
            held[m] = held[m].saturating_add(granted[m]);
            self.held[m] = self.held[m].saturating_add(granted[m]);
        }
        Grant::Granted(Spend::from_array(granted))
    }

    /// Settles once per id: returns whether it was applied and the first
    /// budget now spent.
    pub(crate) fn settle(
        &mut self,
        id: &str,
        reservation: Option<&str>,
        limits: &Limits,
        actual: Spend,
        now_ms: u64,
    ) -> (bool, Option<Refusal>) {
        self.prune(now_ms);
        let budgets = Budgets::new(limits, now_ms);
        if self.settled.contains_key(id) {
            return (false, self.exhausted(&budgets));
        }
        self.settled.insert(id.to_owned(), now_ms);
        let mut actual = actual.clamped();
        if let Some(reservation) = reservation {
            if let Some((held, _)) = self.reservations.remove(reservation) {
                self.release(held);
            } else if let Some((charged, _)) = self.swept.remove(reservation) {
                // Its expiry charged it already: charge only the difference.
                for (actual, charged) in actual.iter_mut().zip(charged) {
                    *actual = actual.saturating_sub(charged);
                }
            }
        }
        self.charge(&budgets, actual);
        (true, self.exhausted(&budgets))
    }

    pub(crate) fn balance(&mut self, limits: &Limits, now_ms: u64) -> Vec<Balance> {
        self.prune(now_ms);
        let budgets = Budgets::new(limits, now_ms);
        limits
            .budgets()
            .iter()
            .enumerate()
            .map(|(i, limit)| {
                let period = &budgets.periods[budgets.of_budget[i]];
                Balance {
                    limit: *limit,
                    spent: self.spent(period, limit.meter()),
                    held: self.held[limit.meter().index()],
                    resets_in: period.remaining(now_ms),
                }
            })
            .collect()
    }
}
