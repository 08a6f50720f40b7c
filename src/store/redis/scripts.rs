//! The Lua scripts, their arguments and their answers.

use std::time::{Duration, SystemTime};

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, RedisResult, Script, ScriptInvocation};

use super::keys::{self, Keys};
use crate::budget::{Limits, Refusal, RefusalReason, Spend, unix_ms};
use crate::store::{
    Admission, Balance, Grant, Reservation, SessionRequest, Settlement, StoreError, StoreErrorKind,
};

fn unexpected(answer: &[u64]) -> StoreError {
    StoreError::new(
        StoreErrorKind::Response,
        format!("unexpected script answer {answer:?}"),
    )
}

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(include_str!("prelude.lua"), include_str!($file)))
    };
}

/// The scripts, hashed once.
pub(super) struct Scripts {
    admit: Script,
    reserve: Script,
    settle: Script,
    balance: Script,
}

/// One script call, ready to run.
pub(super) struct Invocation<'a>(ScriptInvocation<'a>);

impl Invocation<'_> {
    /// Runs the script (`EVALSHA`, loading it first if Redis lost it).
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        mut connection: ConnectionManager,
    ) -> RedisResult<T> {
        self.0.invoke_async(&mut connection).await
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Adds the window keys and the budget arguments `read_budgets` reads.
fn add_budgets(invocation: &mut ScriptInvocation<'_>, keys: &Keys, limits: &Limits, now_ms: u64) {
    let (periods, of_budget) = limits.periods(now_ms);
    invocation.arg(periods.len());
    for period in &periods {
        invocation.key(keys.window(period));
        invocation.arg(period.remaining(now_ms).map_or(0, millis));
    }
    invocation.arg(limits.budgets().len());
    for (limit, period) in limits.budgets().iter().zip(of_budget) {
        invocation
            .arg(period + 1)
            .arg(limit.meter().field())
            .arg(limit.max());
    }
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            admit: script!("admit.lua"),
            reserve: script!("reserve.lua"),
            settle: script!("settle.lua"),
            balance: script!("balance.lua"),
        }
    }

    pub(super) fn admit(
        &self,
        keys: &Keys,
        request: &SessionRequest<'_>,
        lease: Duration,
    ) -> Invocation<'_> {
        let now_ms = unix_ms(request.now);
        let minute = crate::budget::Window::Minute.period(now_ms);
        let limits = request.limits;
        let cap = |max: Option<u32>| max.map_or(-1, i64::from);
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .key(keys.live())
            .key(keys.new_sessions(minute.number))
            .arg(now_ms)
            .arg(request.session)
            .arg(millis(lease))
            .arg(cap(limits.live_sessions()))
            .arg(cap(limits.new_sessions_per_minute()))
            .arg(minute.remaining(now_ms).map_or(60_000, millis) + 1_000);
        add_budgets(&mut invocation, keys, limits, now_ms);
        Invocation(invocation)
    }

    pub(super) fn reserve(
        &self,
        keys: &Keys,
        reservation: &Reservation<'_>,
        ttl: Duration,
    ) -> Invocation<'_> {
        let now_ms = unix_ms(reservation.now);
        let mut invocation = self.reserve.prepare_invoke();
        invocation
            .key(keys.reservations())
            .key(keys.held())
            .key(keys.swept())
            .arg(now_ms)
            .arg(reservation.id)
            .arg(millis(ttl));
        for amount in reservation.want.clamped() {
            invocation.arg(amount);
        }
        for amount in reservation.min.clamped() {
            invocation.arg(amount);
        }
        add_budgets(&mut invocation, keys, reservation.limits, now_ms);
        Invocation(invocation)
    }

    pub(super) fn settle(
        &self,
        keys: &Keys,
        prefix: &str,
        settlement: &Settlement<'_>,
    ) -> Invocation<'_> {
        let now_ms = unix_ms(settlement.now);
        let mut invocation = self.settle.prepare_invoke();
        invocation
            .key(keys.reservations())
            .key(keys.held())
            .key(keys.swept())
            .key(keys.settled())
            .arg(now_ms)
            .arg(settlement.id)
            .arg(settlement.reservation.unwrap_or(""));
        for amount in settlement.actual.clamped() {
            invocation.arg(amount);
        }
        invocation
            .arg(keys::exhausted_channel(prefix, settlement.identity))
            .arg(settlement.identity);
        add_budgets(&mut invocation, keys, settlement.limits, now_ms);
        Invocation(invocation)
    }

    pub(super) fn balance(&self, keys: &Keys, limits: &Limits, now: SystemTime) -> Invocation<'_> {
        let now_ms = unix_ms(now);
        let mut invocation = self.balance.prepare_invoke();
        invocation.key(keys.held()).arg(now_ms);
        add_budgets(&mut invocation, keys, limits, now_ms);
        Invocation(invocation)
    }
}

/// The refusal for budget number `budget` (1-based; 0 is none).
pub(super) fn budget_refusal(limits: &Limits, now: SystemTime, budget: u64) -> Option<Refusal> {
    let index = usize::try_from(budget).ok()?.checked_sub(1)?;
    let limit = *limits.budgets().get(index)?;
    let now_ms = unix_ms(now);
    let period = limit.window().period(now_ms);
    Some(Refusal::new(
        RefusalReason::Budget(limit),
        period.remaining(now_ms),
    ))
}

/// `{1, 0, 0}` admitted; `{0, 1, budget}`, `{0, 2, 0}`, `{0, 3, 0}` refused.
pub(super) fn admission(
    request: &SessionRequest<'_>,
    answer: Vec<u64>,
) -> Result<Admission, StoreError> {
    let limits = request.limits;
    let now_ms = unix_ms(request.now);
    Ok(match answer.as_slice() {
        [1, ..] => Admission::Admitted,
        [0, 2, ..] => Admission::Refused(Refusal::new(
            RefusalReason::LiveSessions(limits.live_sessions().unwrap_or(0)),
            None,
        )),
        [0, 3, ..] => Admission::Refused(Refusal::new(
            RefusalReason::NewSessions(limits.new_sessions_per_minute().unwrap_or(0)),
            crate::budget::Window::Minute
                .period(now_ms)
                .remaining(now_ms),
        )),
        [0, 1, budget, ..] => match budget_refusal(limits, request.now, *budget) {
            Some(refusal) => Admission::Refused(refusal),
            None => return Err(unexpected(&answer)),
        },
        _ => return Err(unexpected(&answer)),
    })
}

/// `{1, tokens, audio, money}` granted; `{0, budget}` refused.
pub(super) fn grant(reservation: &Reservation<'_>, answer: Vec<u64>) -> Result<Grant, StoreError> {
    Ok(match answer.as_slice() {
        [1, tokens, audio, money] => Grant::Granted(Spend::from_array([*tokens, *audio, *money])),
        [0, budget] => match budget_refusal(reservation.limits, reservation.now, *budget) {
            Some(refusal) => Grant::Refused(refusal),
            None => return Err(unexpected(&answer)),
        },
        _ => return Err(unexpected(&answer)),
    })
}

/// `{held tokens, audio, money, spent of each budget...}`.
pub(super) fn balances(limits: &Limits, now: SystemTime, answer: Vec<u64>) -> Vec<Balance> {
    let now_ms = unix_ms(now);
    let held = |i: usize| answer.get(i).copied().unwrap_or(0);
    limits
        .budgets()
        .iter()
        .enumerate()
        .map(|(i, limit)| Balance {
            limit: *limit,
            spent: held(3 + i),
            held: held(limit.meter().index()),
            resets_in: limit.window().period(now_ms).remaining(now_ms),
        })
        .collect()
}
