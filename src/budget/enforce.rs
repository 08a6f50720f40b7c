//! Budgets applied to sessions: admission before the dial, and a
//! reservation per response settled with what it cost.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::StatusCode;

use super::{AudioTime, Limits, Micros, PriceTable, Refusal, Spend, TokenClass};
use crate::store::{
    Admission, BudgetStore, Grant, Reservation, SessionRequest, Settled, Settlement, StoreError,
};
use crate::usage::{TranscriptionUsage, Usage};

/// Seconds of output audio a response reserves where output audio is
/// priced by the minute (it needs at least one to start).
const RESERVED_SPEECH_SECS: u64 = 30;

/// Budgets for sessions: where they are counted, what each identity may
/// spend, and (for money) what models cost.
///
/// Clones share everything.
///
/// # Example
///
/// ```
/// use tower_realtime::budget::{Budget, Limit, Limits, PriceTable, Window};
/// use tower_realtime::store::MemoryBudgetStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let limits = Limits::new().with(Limit::tokens(Window::Day, 100_000)).max_live_sessions(2);
/// let budget = Budget::new(MemoryBudgetStore::new(), limits)
///     .prices(PriceTable::from_json(r#"{"default": {"output_audio": "64"}}"#).unwrap());
///
/// let slot = budget.admit("alice", "sess_1").await.unwrap();
/// let mut session = budget.session("alice", "openai", "gpt-realtime", "sess_1");
/// let start = session.start_response(Some(1_000)).await;
/// # let _ = (slot, start);
/// # });
/// ```
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn BudgetStore>,
    limits: Box<dyn Fn(&str) -> Limits + Send + Sync>,
    prices: Option<PriceTable>,
    input_tokens: u64,
    output_tokens: u64,
    min_output_tokens: u64,
    clock: Box<dyn Fn() -> SystemTime + Send + Sync>,
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("prices", &self.inner.prices.is_some())
            .field("input_tokens", &self.inner.input_tokens)
            .field("output_tokens", &self.inner.output_tokens)
            .field("min_output_tokens", &self.inner.min_output_tokens)
            .finish_non_exhaustive()
    }
}

impl Budget {
    /// Every identity held to `limits`, counted in `store`.
    pub fn new(store: impl BudgetStore, limits: Limits) -> Self {
        Self::with_limits(store, move |_: &str| limits.clone())
    }

    /// Each identity held to the limits `limits` gives it.
    pub fn with_limits(
        store: impl BudgetStore,
        limits: impl Fn(&str) -> Limits + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                limits: Box::new(limits),
                prices: None,
                input_tokens: 1_000,
                output_tokens: 4_096,
                min_output_tokens: 64,
                clock: Box::new(SystemTime::now),
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("configured before it is cloned")
    }

    /// Prices models, so that money budgets can be kept.
    ///
    /// # Panics
    ///
    /// When called on a clone: configure a budget before sharing it.
    #[must_use]
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.inner_mut().prices = Some(prices);
        self
    }

    /// The estimate of a response: `input` tokens for the first response of
    /// a session (later ones use the previous response's), and `output`
    /// tokens when the client set no `max_output_tokens` (default 1,000 and
    /// 4,096). A response whose budget cannot cover `min_output` tokens
    /// (default 64) after its input is refused.
    ///
    /// # Panics
    ///
    /// When called on a clone: configure a budget before sharing it.
    #[must_use]
    pub fn estimate(mut self, input: u64, output: u64, min_output: u64) -> Self {
        let inner = self.inner_mut();
        inner.input_tokens = input;
        inner.output_tokens = output;
        inner.min_output_tokens = min_output.min(output);
        self
    }

    /// Where the budget's time comes from (default: [`SystemTime::now`]):
    /// the windows that budgets and session limits are counted in are the
    /// UTC minute, hour, day or month of the time it tells. For tests, to
    /// move a budget into its next window without waiting.
    ///
    /// # Panics
    ///
    /// When called on a clone: configure a budget before sharing it.
    ///
    /// # Example
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use tower_realtime::budget::{Budget, Limit, Limits, Window};
    /// use tower_realtime::store::MemoryBudgetStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let minutes = Arc::new(AtomicU64::new(0));
    /// let clock = minutes.clone();
    /// let limits = Limits::new().max_new_sessions_per_minute(1);
    /// let budget = Budget::new(MemoryBudgetStore::new(), limits).clock(move || {
    ///     UNIX_EPOCH + Duration::from_secs(60 * clock.load(Ordering::Relaxed))
    /// });
    /// let first = budget.admit("alice", "s1").await.unwrap();
    /// assert!(budget.admit("alice", "s2").await.is_err());
    /// minutes.store(1, Ordering::Relaxed);
    /// let second = budget.admit("alice", "s2").await.unwrap();
    /// # drop((first, second));
    /// # });
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.inner_mut().clock = Box::new(clock);
        self
    }

    /// The time now, by the budget's [`clock`](Self::clock).
    pub fn now(&self) -> SystemTime {
        (self.inner.clock)()
    }

    /// Whether the budget has a price table.
    pub(crate) fn priced(&self) -> bool {
        self.inner.prices.is_some()
    }

    /// The prices of `provider`'s `model`, if the budget prices it.
    pub(crate) fn price_of(&self, provider: &str, model: &str) -> Option<&super::Prices> {
        self.inner.prices.as_ref()?.prices(provider, model)
    }

    /// Whether the price table refuses `provider`'s `model` (a budget
    /// without a price table prices nothing and refuses nothing).
    pub(crate) fn unpriced(&self, provider: &str, model: &str) -> Option<super::UnpricedModel> {
        let prices = self.inner.prices.as_ref()?;
        prices
            .cost(provider, model, &Usage::default(), AudioTime::default())
            .err()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BudgetStore> {
        &self.inner.store
    }

    /// The limits of `identity`.
    pub fn limits(&self, identity: &str) -> Limits {
        (self.inner.limits)(identity)
    }

    /// Admits a session before anything is dialled: its budgets are not
    /// spent and its session limits allow one more. The session counts as
    /// live until the returned slot is dropped.
    pub async fn admit(&self, identity: &str, session: &str) -> Result<SessionSlot, BudgetError> {
        let limits = self.limits(identity);
        let request = SessionRequest::new(identity, session, &limits).at(self.now());
        match self.inner.store.admit(&request).await? {
            Admission::Admitted => Ok(SessionSlot {
                store: self.inner.store.clone(),
                identity: identity.to_owned(),
                session: session.to_owned(),
                held: true,
            }),
            Admission::Refused(refusal) => Err(BudgetError::Refused(refusal)),
        }
    }

    /// The accounting of one session's responses.
    pub fn session(
        &self,
        identity: &str,
        provider: &str,
        model: &str,
        session: &str,
    ) -> SessionBudget {
        SessionBudget {
            budget: self.clone(),
            limits: self.limits(identity),
            identity: identity.to_owned(),
            provider: provider.to_owned(),
            model: model.to_owned(),
            session: session.to_owned(),
            started: 0,
            open: VecDeque::new(),
            last_input_tokens: None,
            spent: Micros::ZERO,
        }
    }
}

/// Why a session or a response may not go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BudgetError {
    /// A budget or session limit says no.
    Refused(Refusal),
    /// The store could not answer.
    Unavailable(StoreError),
}

impl BudgetError {
    /// The HTTP status of a refused session: `429` (a limit) or `503` (the store).
    pub fn status(&self) -> StatusCode {
        match self {
            BudgetError::Refused(_) => StatusCode::TOO_MANY_REQUESTS,
            BudgetError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The OpenAI-shaped error code: `insufficient_quota`,
    /// `concurrency_limit_exceeded`, `rate_limit_exceeded` or
    /// `budget_store_unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            BudgetError::Refused(refusal) => refusal.code(),
            BudgetError::Unavailable(error) => error.code(),
        }
    }

    /// Whole seconds until trying again may succeed (for `Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            BudgetError::Refused(refusal) => refusal
                .retry_after()
                .map(|wait| wait.as_millis().div_ceil(1_000).max(1) as u64),
            BudgetError::Unavailable(_) => Some(1),
        }
    }
}

impl From<StoreError> for BudgetError {
    fn from(error: StoreError) -> Self {
        BudgetError::Unavailable(error)
    }
}

impl fmt::Display for BudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetError::Refused(refusal) => refusal.fmt(f),
            BudgetError::Unavailable(_) => f.write_str("the budget store is unavailable"),
        }
    }
}

impl std::error::Error for BudgetError {}

/// A live session's place in its identity's session limit; dropping it
/// releases the place (in the background).
#[must_use = "the session stops counting as live when the slot is dropped"]
pub struct SessionSlot {
    store: Arc<dyn BudgetStore>,
    identity: String,
    session: String,
    /// Not released yet.
    held: bool,
}

impl SessionSlot {
    /// The session's id in the store.
    pub fn session(&self) -> &str {
        &self.session
    }
}

impl fmt::Debug for SessionSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSlot")
            .field("identity", &self.identity)
            .field("session", &self.session)
            .finish()
    }
}

impl SessionSlot {
    /// Gives the place back now, and waits for the store's answer (each
    /// store call ends within the store's timeout); a store that cannot
    /// answer leaves it to the session's lease.
    pub(crate) async fn release(mut self) {
        if let Some((store, identity, session)) = self.take() {
            release(store, identity, session).await;
        }
    }

    /// What to release, the first time only.
    fn take(&mut self) -> Option<(Arc<dyn BudgetStore>, String, String)> {
        std::mem::take(&mut self.held).then(|| {
            (
                self.store.clone(),
                std::mem::take(&mut self.identity),
                std::mem::take(&mut self.session),
            )
        })
    }
}

async fn release(store: Arc<dyn BudgetStore>, identity: String, session: String) {
    if let Err(error) = store.release_session(&identity, &session).await {
        tracing::debug!(%error, "session release left to its lease");
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some((store, identity, session)) = self.take() {
            runtime.spawn(release(store, identity, session));
        }
    }
}

/// What a response may do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseStart {
    /// Go ahead; `max_output_tokens` is what the response may produce when
    /// the budget is smaller than what it asked for (rewrite the request).
    Go {
        /// A lower cap than requested, if any.
        max_output_tokens: Option<u64>,
    },
    /// The budget cannot cover even a short response.
    Refused(Refusal),
    /// The store could not answer: the response goes ahead unreserved, and
    /// is settled when it is done.
    Unreserved(StoreError),
}

/// One session's responses against its identity's budgets: a reservation
/// when a response starts, settled (once per response id) when it is done.
///
/// In-conversation responses run one at a time, so reservations are
/// matched to `response.done` in order.
#[derive(Debug)]
pub struct SessionBudget {
    budget: Budget,
    limits: Limits,
    identity: String,
    provider: String,
    model: String,
    session: String,
    started: u64,
    /// Reservations of responses started and not done, oldest first.
    open: VecDeque<String>,
    last_input_tokens: Option<u64>,
    spent: Micros,
}

impl SessionBudget {
    /// The identity whose budgets these are.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Money settled by this session so far.
    pub fn spent(&self) -> Micros {
        self.spent
    }

    fn prices(&self) -> Option<&super::Prices> {
        self.budget.price_of(&self.provider, &self.model)
    }

    /// The highest price per million tokens among `classes`.
    fn highest(&self, classes: &[TokenClass]) -> u64 {
        self.prices().map_or(0, |prices| {
            classes
                .iter()
                .map(|class| prices.price_per_million(*class).get())
                .max()
                .unwrap_or(0)
        })
    }

    /// Reserves an estimate for a response that asks for at most
    /// `requested` output tokens (`None`: no limit).
    pub async fn start_response(&mut self, requested: Option<u64>) -> ResponseStart {
        let inner = &self.budget.inner;
        let input = self.last_input_tokens.unwrap_or(inner.input_tokens);
        let output = requested.unwrap_or(inner.output_tokens);
        let min_output = inner.min_output_tokens.min(output);
        let in_price = self.highest(&[
            TokenClass::InputText,
            TokenClass::InputAudio,
            TokenClass::InputImage,
        ]);
        let out_price = self.highest(&[TokenClass::OutputText, TokenClass::OutputAudio]);
        let money = |tokens: u64, price: u64| {
            Micros::new(
                u64::try_from((u128::from(tokens) * u128::from(price)).div_ceil(1_000_000))
                    .unwrap_or(u64::MAX),
            )
        };
        let input_money = money(input, in_price);
        // Output audio priced by the minute (as xAI bills) is reserved too:
        // a response may speak for a while, and must afford a second.
        let output_time = |seconds: u64| {
            self.prices().map_or(Micros::ZERO, |prices| {
                prices.cost(
                    &Usage::default(),
                    AudioTime::new(Duration::ZERO, Duration::from_secs(seconds)),
                )
            })
        };
        let want = Spend::new()
            .with_tokens(input + output)
            .with_money(input_money + money(output, out_price) + output_time(RESERVED_SPEECH_SECS));
        let min = Spend::new()
            .with_tokens(input + min_output)
            .with_money(input_money + money(min_output, out_price) + output_time(1));
        self.started += 1;
        let id = format!("{}:{}", self.session, self.started);
        let reservation = Reservation::new(&self.identity, &id, &self.limits, want)
            .at_least(min)
            .at(self.budget.now());
        let grant = self.budget.inner.store.reserve(&reservation).await;
        match grant {
            Ok(Grant::Granted(granted)) => {
                self.open.push_back(id);
                let by_tokens = granted.tokens.saturating_sub(input);
                let by_money = match out_price {
                    0 => u64::MAX,
                    price => {
                        let left = granted.money.get().saturating_sub(input_money.get());
                        u64::try_from(u128::from(left) * 1_000_000 / u128::from(price))
                            .unwrap_or(u64::MAX)
                    }
                };
                let affordable = by_tokens.min(by_money);
                ResponseStart::Go {
                    max_output_tokens: (affordable < output).then_some(affordable.max(min_output)),
                }
            }
            Ok(Grant::Refused(refusal)) => ResponseStart::Refused(refusal),
            Err(error) => ResponseStart::Unreserved(error),
        }
    }

    /// What `usage` and `audio` cost at this session's model; `None` when
    /// the model has no price (or the budget no price table).
    pub fn cost(&self, usage: &Usage, audio: AudioTime) -> Option<Micros> {
        self.prices().map(|prices| prices.cost(usage, audio))
    }

    /// What a response of `usage` and `audio` (input audio appended since
    /// the last charge) counts against budgets: its tokens, the input
    /// audio, and their cost at this session's model.
    pub fn spend_of(&self, usage: &Usage, audio: AudioTime) -> Spend {
        let tokens = usage
            .total_tokens
            .unwrap_or_else(|| usage.input_tokens.unwrap_or(0) + usage.output_tokens.unwrap_or(0));
        Spend::new()
            .with_tokens(tokens)
            .with_input_audio(audio.input)
            .with_money(self.cost(usage, audio).unwrap_or(Micros::ZERO))
    }

    /// Settles the oldest open response as `response_id` with what it cost.
    pub async fn finish_response(
        &mut self,
        response_id: &str,
        usage: &Usage,
        audio: AudioTime,
    ) -> Result<Settled, StoreError> {
        if usage.input_tokens.is_some() {
            self.last_input_tokens = usage.input_tokens;
        }
        let spend = self.spend_of(usage, audio);
        let reservation = self.open.pop_front();
        self.settle(response_id, reservation.as_deref(), spend)
            .await
    }

    /// What a transcription counts against budgets: its tokens, the input
    /// audio appended since the last charge (priced per minute at this
    /// session's model), and the transcription's own cost at the prices of
    /// `model` (the session's input transcription model, e.g.
    /// `gpt-4o-transcribe`, looked up as `provider/model`, then `model`,
    /// then the table's `default`). A transcription model the table does
    /// not price costs no money; its tokens still count.
    pub(crate) fn transcription_spend(
        &self,
        model: Option<&str>,
        usage: Option<&TranscriptionUsage>,
        audio: Duration,
    ) -> Spend {
        let input_audio = AudioTime::new(audio, Duration::ZERO);
        let mut money = self
            .cost(&Usage::default(), input_audio)
            .unwrap_or(Micros::ZERO);
        let prices = model.and_then(|model| self.budget.price_of(&self.provider, model));
        let (tokens, transcribed) = match usage {
            Some(TranscriptionUsage::Tokens(usage)) => {
                let tokens = usage.total_tokens.unwrap_or_else(|| {
                    usage.input_tokens.unwrap_or(0) + usage.output_tokens.unwrap_or(0)
                });
                (
                    tokens,
                    prices.map(|prices| prices.cost(usage, AudioTime::default())),
                )
            }
            Some(TranscriptionUsage::Duration { seconds }) => {
                let time = Duration::try_from_secs_f64(*seconds).unwrap_or_default();
                let time = AudioTime::new(time, Duration::ZERO);
                (0, prices.map(|prices| prices.cost(&Usage::default(), time)))
            }
            None => (0, None),
        };
        money += transcribed.unwrap_or(Micros::ZERO);
        Spend::new()
            .with_tokens(tokens)
            .with_input_audio(audio)
            .with_money(money)
    }

    /// Charges something that had no reservation (transcription usage,
    /// input audio time) once per `id`.
    pub async fn charge(&mut self, id: &str, spend: Spend) -> Result<Settled, StoreError> {
        self.settle(id, None, spend).await
    }

    async fn settle(
        &mut self,
        id: &str,
        reservation: Option<&str>,
        spend: Spend,
    ) -> Result<Settled, StoreError> {
        let mut settlement =
            Settlement::new(&self.identity, id, &self.limits, spend).at(self.budget.now());
        settlement.reservation = reservation;
        let settled = self.budget.inner.store.settle(&settlement).await?;
        if settled.applied() || settled.is_deferred() {
            self.spent += spend.money;
        }
        Ok(settled)
    }

    /// Releases the reservations of responses that never finished (the
    /// session ended first, and the upstream sent no `response.done` for
    /// them after it was asked to cancel them). They are charged nothing:
    /// what a response cut short cost is unknown without its `response.done`.
    pub async fn close(&mut self) {
        while let Some(reservation) = self.open.pop_front() {
            let id = format!("{reservation}:released");
            let _ = self.settle(&id, Some(&reservation), Spend::new()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::budget::{Limit, Prices, Window};
    use crate::store::{MemoryBudgetStore, StoreErrorKind};
    use crate::usage::OutputTokenDetails;

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            output_token_details: Some(OutputTokenDetails {
                text_tokens: None,
                audio_tokens: Some(output),
            }),
            ..Usage::default()
        }
    }

    #[tokio::test]
    async fn a_slot_holds_a_live_session_until_dropped() {
        let budget = Budget::new(MemoryBudgetStore::new(), Limits::new().max_live_sessions(1));
        let slot = budget.admit("alice", "s1").await.unwrap();
        let refused = budget.admit("alice", "s2").await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code(), "concurrency_limit_exceeded");
        assert_eq!(refused.retry_after_secs(), None);
        drop(slot);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(budget.admit("alice", "s2").await.is_ok());
    }

    #[test]
    fn refusals_map_to_statuses() {
        let unavailable = BudgetError::from(StoreError::new(StoreErrorKind::Timeout, "slow"));
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.code(), "budget_store_unavailable");
        assert_eq!(unavailable.retry_after_secs(), Some(1));
        let spent = BudgetError::Refused(Refusal::new(
            super::super::RefusalReason::Budget(Limit::tokens(Window::Day, 1)),
            Some(Duration::from_millis(1_200)),
        ));
        assert_eq!(spent.code(), "insufficient_quota");
        assert_eq!(spent.retry_after_secs(), Some(2));
    }

    #[tokio::test]
    async fn a_response_is_clamped_to_what_the_tokens_left_allow() {
        let limits = Limits::new().with(Limit::tokens(Window::Day, 1_500));
        let budget = Budget::new(MemoryBudgetStore::new(), limits).estimate(1_000, 4_096, 64);
        let mut session = budget.session("alice", "openai", "gpt-realtime", "s1");
        assert_eq!(
            session.start_response(None).await,
            ResponseStart::Go {
                max_output_tokens: Some(500)
            }
        );
        let settled = session
            .finish_response("resp_1", &usage(1_000, 300), AudioTime::default())
            .await
            .unwrap();
        assert!(settled.applied());
        assert_eq!(settled.exhausted(), None);
        // 200 tokens left: the next response's input alone (1,000, from the
        // last response) does not fit.
        let ResponseStart::Refused(refusal) = session.start_response(Some(100)).await else {
            panic!("started over budget");
        };
        assert_eq!(refusal.code(), "insufficient_quota");
    }

    #[tokio::test]
    async fn a_response_is_clamped_to_what_the_money_left_allows() {
        let limits = Limits::new().with(Limit::money(Window::Day, Micros::new(100_000)));
        // $10 per million input tokens, $100 per million output tokens.
        let prices = PriceTable::new().with_model(
            "gpt-realtime",
            Prices::new()
                .per_million(TokenClass::InputAudio, Micros::new(10_000_000))
                .per_million(TokenClass::OutputAudio, Micros::new(100_000_000)),
        );
        let budget = Budget::new(MemoryBudgetStore::new(), limits)
            .prices(prices)
            .estimate(1_000, 4_096, 64);
        let mut session = budget.session("alice", "openai", "gpt-realtime", "s1");
        // Input 1,000 × $10/M = $0.01; the $0.09 left buys 900 output tokens.
        assert_eq!(
            session.start_response(Some(2_000)).await,
            ResponseStart::Go {
                max_output_tokens: Some(900)
            }
        );
        // A response that fits is not rewritten.
        let mut other = budget.session("bob", "openai", "gpt-realtime", "s2");
        assert_eq!(
            other.start_response(Some(100)).await,
            ResponseStart::Go {
                max_output_tokens: None
            }
        );
        // The response cost 1,000 input and 500 output: $0.06.
        let settled = session
            .finish_response("resp_1", &usage(1_000, 500), AudioTime::default())
            .await
            .unwrap();
        assert!(settled.applied());
        assert_eq!(session.spent(), Micros::new(60_000));
        // Settling the same response again charges nothing.
        let again = session
            .charge("resp_1", Spend::new().with_money(Micros::new(60_000)))
            .await
            .unwrap();
        assert!(!again.applied());
        assert_eq!(session.spent(), Micros::new(60_000));
        let balance = budget
            .store()
            .balance(
                "alice",
                &budget.limits("alice"),
                std::time::SystemTime::now(),
            )
            .await
            .unwrap();
        assert_eq!((balance[0].spent, balance[0].held), (60_000, 0));
    }

    #[tokio::test]
    async fn closing_releases_unfinished_responses() {
        let limits = Limits::new().with(Limit::tokens(Window::Day, 10_000));
        let budget = Budget::new(MemoryBudgetStore::new(), limits);
        let mut session = budget.session("alice", "openai", "m", "s1");
        session.start_response(Some(1_000)).await;
        session.close().await;
        let balance = budget
            .store()
            .balance(
                "alice",
                &budget.limits("alice"),
                std::time::SystemTime::now(),
            )
            .await
            .unwrap();
        assert_eq!((balance[0].spent, balance[0].held), (0, 0));
    }
}
