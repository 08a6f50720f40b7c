//! What one identity may spend and open: budgets per window, session limits.

use std::time::Duration;

use super::window::Period;
use super::{Micros, Window};

/// What a budget counts.
///
/// # Example
///
/// ```
/// use tower_realtime::budget::Meter;
///
/// assert_eq!(Meter::Money.name(), "money");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Meter {
    /// Tokens, input and output together.
    Tokens,
    /// Input audio time, in milliseconds.
    InputAudio,
    /// Money, in micro-dollars.
    Money,
}

impl Meter {
    /// Every meter, in a fixed order.
    pub(crate) const ALL: [Meter; 3] = [Meter::Tokens, Meter::InputAudio, Meter::Money];

    /// The meter's name: `tokens`, `input_audio` or `money`.
    pub fn name(self) -> &'static str {
        match self {
            Meter::Tokens => "tokens",
            Meter::InputAudio => "input_audio",
            Meter::Money => "money",
        }
    }

    /// A one-letter field name for store keys.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn field(self) -> &'static str {
        match self {
            Meter::Tokens => "t",
            Meter::InputAudio => "a",
            Meter::Money => "u",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Amounts on every meter: what a response is estimated to cost, what it
/// did cost, or what is left.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_realtime::budget::{Meter, Micros, Spend};
///
/// let spend = Spend::new()
///     .with_tokens(1_200)
///     .with_input_audio(Duration::from_millis(2_500))
///     .with_money(Micros::new(4_100));
/// assert_eq!(spend.get(Meter::InputAudio), 2_500);
/// assert_eq!(spend.money, Micros::new(4_100));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Spend {
    /// Tokens.
    pub tokens: u64,
    /// Input audio, in milliseconds.
    pub input_audio_ms: u64,
    /// Money.
    pub money: Micros,
}

impl Spend {
    /// Nothing on any meter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the tokens.
    #[must_use]
    pub fn with_tokens(mut self, tokens: u64) -> Self {
        self.tokens = tokens;
        self
    }

    /// Sets the input audio time, rounded up to a millisecond.
    #[must_use]
    pub fn with_input_audio(mut self, audio: Duration) -> Self {
        self.input_audio_ms = u64::try_from(audio.as_micros().div_ceil(1_000)).unwrap_or(u64::MAX);
        self
    }

    /// Sets the money.
    #[must_use]
    pub fn with_money(mut self, money: Micros) -> Self {
        self.money = money;
        self
    }

    /// The amount on `meter`.
    pub fn get(&self, meter: Meter) -> u64 {
        match meter {
            Meter::Tokens => self.tokens,
            Meter::InputAudio => self.input_audio_ms,
            Meter::Money => self.money.get(),
        }
    }

    pub(crate) fn set(&mut self, meter: Meter, amount: u64) {
        match meter {
            Meter::Tokens => self.tokens = amount,
            Meter::InputAudio => self.input_audio_ms = amount,
            Meter::Money => self.money = Micros::new(amount),
        }
    }

    /// The amounts as the store counts them: at most 2^53, the integers a
    /// Lua number holds exactly.
    pub(crate) fn clamped(&self) -> [u64; 3] {
        Meter::ALL.map(|meter| self.get(meter).min(MAX_AMOUNT))
    }

    pub(crate) fn from_array(amounts: [u64; 3]) -> Self {
        let mut spend = Spend::new();
        for meter in Meter::ALL {
            spend.set(meter, amounts[meter.index()]);
        }
        spend
    }
}

/// The largest amount a store counts (2^53).
pub(crate) const MAX_AMOUNT: u64 = 1 << 53;

/// A cap on one meter over one window.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_realtime::budget::{Limit, Meter, Micros, Window};
///
/// let daily_tokens = Limit::tokens(Window::Day, 1_000_000);
/// let hourly_audio = Limit::input_audio(Window::Hour, Duration::from_secs(600));
/// let monthly_money = Limit::money(Window::Month, "50".parse().unwrap());
/// assert_eq!(hourly_audio.max(), 600_000);
/// assert_eq!(monthly_money.meter(), Meter::Money);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    window: Window,
    meter: Meter,
    max: u64,
}

impl Limit {
    /// At most `max` tokens per `window`.
    pub fn tokens(window: Window, max: u64) -> Self {
        Self::new(window, Meter::Tokens, max)
    }

    /// At most `max` of input audio per `window`.
    pub fn input_audio(window: Window, max: Duration) -> Self {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Self::new(window, Meter::InputAudio, ms)
    }

    /// At most `max` money per `window`.
    pub fn money(window: Window, max: Micros) -> Self {
        Self::new(window, Meter::Money, max.get())
    }

    fn new(window: Window, meter: Meter, max: u64) -> Self {
        Self {
            window,
            meter,
            max: max.min(MAX_AMOUNT),
        }
    }

    /// The window the limit counts over.
    pub fn window(&self) -> Window {
        self.window
    }

    /// What the limit counts.
    pub fn meter(&self) -> Meter {
        self.meter
    }

    /// The cap, in the meter's unit (tokens, milliseconds, micro-dollars).
    pub fn max(&self) -> u64 {
        self.max
    }
}

/// Everything one identity is held to: budgets, live sessions, new
/// sessions per minute. Limits live in configuration, not in the store, so
/// changing one takes effect at the next call.
///
/// # Example
///
/// ```
/// use tower_realtime::budget::{Limit, Limits, Window};
///
/// let limits = Limits::new()
///     .with(Limit::tokens(Window::Day, 1_000_000))
///     .max_live_sessions(2)
///     .max_new_sessions_per_minute(10);
/// assert_eq!(limits.budgets().len(), 1);
/// assert_eq!(limits.live_sessions(), Some(2));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    budgets: Vec<Limit>,
    max_live_sessions: Option<u32>,
    max_new_sessions_per_minute: Option<u32>,
}

impl Limits {
    /// No limits at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a budget; an identity must stay within all of them.
    #[must_use]
    pub fn with(mut self, limit: Limit) -> Self {
        self.budgets.push(limit);
        self
    }

    /// Caps the sessions an identity has open at once.
    #[must_use]
    pub fn max_live_sessions(mut self, max: u32) -> Self {
        self.max_live_sessions = Some(max);
        self
    }

    /// Caps the sessions an identity opens per UTC minute.
    #[must_use]
    pub fn max_new_sessions_per_minute(mut self, max: u32) -> Self {
        self.max_new_sessions_per_minute = Some(max);
        self
    }

    /// The budgets.
    pub fn budgets(&self) -> &[Limit] {
        &self.budgets
    }

    /// The cap on live sessions.
    pub fn live_sessions(&self) -> Option<u32> {
        self.max_live_sessions
    }

    /// The cap on new sessions per minute.
    pub fn new_sessions_per_minute(&self) -> Option<u32> {
        self.max_new_sessions_per_minute
    }

    /// The budgets' windows as of `now_ms`: each distinct period once, and
    /// for each budget the index of its period.
    pub(crate) fn periods(&self, now_ms: u64) -> (Vec<Period>, Vec<usize>) {
        let mut periods: Vec<Period> = Vec::new();
        let mut of_budget = Vec::with_capacity(self.budgets.len());
        for limit in &self.budgets {
            let period = limit.window.period(now_ms);
            let index = match periods.iter().position(|p| *p == period) {
                Some(index) => index,
                None => {
                    periods.push(period);
                    periods.len() - 1
                }
            };
            of_budget.push(index);
        }
        (periods, of_budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_on_one_window_share_a_period() {
        let limits = Limits::new()
            .with(Limit::tokens(Window::Day, 10))
            .with(Limit::money(Window::Month, Micros::new(5)))
            .with(Limit::input_audio(Window::Day, Duration::from_secs(1)));
        let (periods, of_budget) = limits.periods(1_796_193_015_250);
        assert_eq!(periods.len(), 2);
        assert_eq!(of_budget, vec![0, 1, 0]);
        assert_eq!(periods[1].window, Window::Month);
    }

    #[test]
    fn amounts_stay_exact_in_a_lua_number() {
        assert_eq!(Limit::tokens(Window::Total, u64::MAX).max(), 1 << 53);
        let spend = Spend::new()
            .with_tokens(u64::MAX)
            .with_money(Micros::new(7));
        assert_eq!(spend.clamped(), [1 << 53, 0, 7]);
        assert_eq!(Spend::from_array([1, 2, 3]).get(Meter::Money), 3);
    }

    #[test]
    fn audio_is_counted_in_milliseconds_rounded_up() {
        let spend = Spend::new().with_input_audio(Duration::from_micros(1_001));
        assert_eq!(spend.input_audio_ms, 2);
        assert_eq!(
            Limit::input_audio(Window::Day, Duration::from_secs(60)).max(),
            60_000
        );
    }
}
