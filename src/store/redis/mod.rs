//! Budgets shared by every replica through Redis.

mod background;
pub(crate) mod connection;
mod health;
mod keys;
mod scripts;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use redis::RedisResult;
use redis::aio::ConnectionManager;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use super::exhausted::CAPACITY;
use super::memory::RESERVATION_TTL;
use super::{
    Admission, Balance, BudgetStore, ExhaustedIdentities, Grant, MemoryBudgetStore, Reservation,
    SessionRequest, Settled, Settlement, StoreError, StoreFuture,
};
use crate::budget::Limits;
use background::Deferred;
use keys::Keys;
use scripts::Scripts;

pub use health::RedisDeploymentHealth;

/// What a [`RedisBudgetStore`] does while Redis cannot be reached.
///
/// Either way a call never waits longer than the store's timeout, and
/// settlements are queued and applied (once each) when Redis is back.
///
/// # Example
///
/// ```
/// use tower_realtime::store::OnUnavailable;
///
/// assert_eq!(OnUnavailable::default(), OnUnavailable::FailClosed);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnUnavailable {
    /// Admissions, reservations and balances fail with a [`StoreError`]
    /// (new sessions are refused with `503 budget_store_unavailable`; live
    /// sessions carry on and are settled when Redis returns). The default.
    #[default]
    FailClosed,
    /// Calls are answered by a store in this process, which counts only what
    /// this replica saw while Redis was unreachable; each such call is logged.
    FailOpen,
}

/// A [`BudgetStore`] in Redis, shared by every replica that uses the same
/// Redis and key prefix.
///
/// Each call is one Lua script run atomically in Redis: one round trip to
/// admit a session, one to reserve, one to settle. Every key of an identity
/// carries the identity as its hash tag (`rtb:{alice}:...`), so that each
/// script touches one Redis Cluster slot; the store itself connects to one
/// Redis server (standalone, or a primary behind Sentinel or a proxy), not
/// to a cluster's nodes. Windows are keys that expire when their window
/// ends; limits are arguments, so changing one needs nothing in Redis.
///
/// A settlement that spends a budget publishes the identity on
/// `rtb:exhausted:{identity}`; every `RedisBudgetStore` subscribes to those
/// channels and hands the identities to its [`exhausted`](BudgetStore::exhausted)
/// subscribers. Live sessions are leases that the replica holding them
/// renews, so the sessions of a replica that died stop counting after one
/// lease.
///
/// The connection is made lazily and remade after failures; while Redis is
/// unreachable, calls end within the timeout as [`OnUnavailable`] says.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_realtime::store::{OnUnavailable, RedisBudgetStore};
///
/// # async fn run() -> Result<(), tower_realtime::store::StoreError> {
/// let store = RedisBudgetStore::builder("redis://127.0.0.1:6379/")
///     .timeout(Duration::from_millis(500))
///     .on_unavailable(OnUnavailable::FailClosed)
///     .build()?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBudgetStore {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

/// Builds a [`RedisBudgetStore`].
#[must_use]
pub struct RedisBudgetStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    on_unavailable: OnUnavailable,
    reservation_ttl: Duration,
    session_lease: Duration,
}

struct Shared {
    connection: ConnectionManager,
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    on_unavailable: OnUnavailable,
    reservation_ttl: Duration,
    session_lease: Duration,
    scripts: Scripts,
    /// The fail-open meter.
    local: MemoryBudgetStore,
    /// Settlements Redis has not taken yet, oldest first.
    deferred: Mutex<VecDeque<Deferred>>,
    deferred_added: Notify,
    exhausted: broadcast::Sender<Arc<str>>,
    subscribed: watch::Sender<bool>,
    /// The sessions this replica holds, by identity: their leases are renewed.
    live: Mutex<HashMap<String, HashSet<String>>>,
}

/// The background tasks; they stop with the last clone of the store.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl fmt::Debug for RedisBudgetStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: it is not printed.
        f.debug_struct("RedisBudgetStore")
            .field("prefix", &self.shared.prefix)
            .field("timeout", &self.shared.timeout)
            .field("on_unavailable", &self.shared.on_unavailable)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisBudgetStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudgetStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("on_unavailable", &self.on_unavailable)
            .field("reservation_ttl", &self.reservation_ttl)
            .field("session_lease", &self.session_lease)
            .finish_non_exhaustive()
    }
}

impl RedisBudgetStore {
    /// Starts building a store on the Redis at `url` (`redis://host:port/db`,
    /// with `user:password@` if needed).
    pub fn builder(url: impl Into<String>) -> RedisBudgetStoreBuilder {
        RedisBudgetStoreBuilder {
            url: url.into(),
            prefix: "rtb".to_owned(),
            timeout: Duration::from_millis(500),
            on_unavailable: OnUnavailable::default(),
            reservation_ttl: RESERVATION_TTL,
            session_lease: Duration::from_secs(60),
        }
    }

    /// Waits until this store receives exhaustion announcements from Redis
    /// (right after it starts, and again after Redis comes back).
    pub async fn subscribed(&self) {
        let mut subscribed = self.shared.subscribed.subscribe();
        // The sender lives as long as `self`.
        let _ = subscribed.wait_for(|subscribed| *subscribed).await;
    }

    /// Settlements queued while Redis was unreachable, not applied yet.
    pub fn deferred_settlements(&self) -> usize {
        lock(&self.shared.deferred).len()
    }
}

impl RedisBudgetStoreBuilder {
    /// The prefix of every key and channel (default `rtb`): gateways that
    /// share a Redis but not their budgets use different prefixes.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one call may take, connecting included (default 500 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What calls do while Redis is unreachable (default [`OnUnavailable::FailClosed`]).
    pub fn on_unavailable(mut self, policy: OnUnavailable) -> Self {
        self.on_unavailable = policy;
        self
    }

    /// How long a reservation lasts unsettled before it is charged in full
    /// (default 10 minutes).
    pub fn reservation_ttl(mut self, ttl: Duration) -> Self {
        self.reservation_ttl = ttl;
        self
    }

    /// How long a live session counts without being renewed (default 60 s);
    /// the store renews its own sessions three times per lease.
    pub fn session_lease(mut self, lease: Duration) -> Self {
        self.session_lease = lease.max(Duration::from_millis(30));
        self
    }

    /// The store; it connects on first use and starts its background tasks
    /// (exhaustion subscription, lease renewal, deferred settlements) on the
    /// current Tokio runtime.
    ///
    /// Fails when the URL is not a Redis URL or when called outside a Tokio
    /// runtime.
    pub fn build(self) -> Result<RedisBudgetStore, StoreError> {
        let (client, connection) = connection::connect(&self.url, self.timeout, "budget store")?;
        // `connect` fails outside a runtime.
        let runtime = tokio::runtime::Handle::current();
        let shared = Arc::new(Shared {
            connection,
            client,
            prefix: self.prefix,
            timeout: self.timeout,
            on_unavailable: self.on_unavailable,
            reservation_ttl: self.reservation_ttl,
            session_lease: self.session_lease,
            scripts: Scripts::new(),
            local: MemoryBudgetStore::with_reservation_ttl(self.reservation_ttl),
            deferred: Mutex::new(VecDeque::new()),
            deferred_added: Notify::new(),
            exhausted: broadcast::channel(CAPACITY).0,
            subscribed: watch::channel(false).0,
            live: Mutex::new(HashMap::new()),
        });
        let tasks = vec![
            runtime.spawn(background::listen(shared.clone())),
            runtime.spawn(background::renew_leases(shared.clone())),
            runtime.spawn(background::apply_deferred(shared.clone())),
        ];
        Ok(RedisBudgetStore {
            shared,
            _tasks: Arc::new(Tasks(tasks)),
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn keys(&self, identity: &str) -> Keys {
        Keys::new(&self.prefix, identity)
    }

    /// Runs one Redis call within the timeout.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        connection::within(self.timeout, what, call).await
    }

    fn track(&self, identity: &str, session: &str) {
        lock(&self.live)
            .entry(identity.to_owned())
            .or_default()
            .insert(session.to_owned());
    }

    fn untrack(&self, identity: &str, session: &str) {
        let mut live = lock(&self.live);
        if let Some(sessions) = live.get_mut(identity) {
            sessions.remove(session);
            if sessions.is_empty() {
                live.remove(identity);
            }
        }
    }

    /// Falls back to the local meter when failing open, or fails.
    fn fallback<T>(
        &self,
        what: &str,
        error: StoreError,
        local: impl FnOnce() -> T,
    ) -> Result<T, StoreError> {
        match self.on_unavailable {
            OnUnavailable::FailClosed => {
                tracing::warn!(%error, "{what} refused: budget store unavailable");
                Err(error)
            }
            OnUnavailable::FailOpen => {
                tracing::warn!(%error, "{what} metered locally: budget store unavailable");
                Ok(local())
            }
        }
    }

    async fn settle_remote(&self, settlement: &Settlement<'_>) -> Result<Settled, StoreError> {
        let connection = self.connection.clone();
        let invocation =
            self.scripts
                .settle(&self.keys(settlement.identity), &self.prefix, settlement);
        let (applied, spent_budget): (u8, u64) =
            self.call("settle", invocation.run(connection)).await?;
        let exhausted = scripts::budget_refusal(settlement.limits, settlement.now, spent_budget);
        Ok(Settled::new(applied == 1, exhausted))
    }
}

impl BudgetStore for RedisBudgetStore {
    fn admit<'a>(&'a self, request: &'a SessionRequest<'a>) -> StoreFuture<'a, Admission> {
        let shared = &self.shared;
        Box::pin(async move {
            let invocation = shared.scripts.admit(
                &shared.keys(request.identity),
                request,
                shared.session_lease,
            );
            let answer = shared
                .call("admit", invocation.run(shared.connection.clone()))
                .await;
            match answer.and_then(|answer| scripts::admission(request, answer)) {
                Ok(admission) => {
                    if admission == Admission::Admitted {
                        shared.track(request.identity, request.session);
                    }
                    Ok(admission)
                }
                Err(error) => shared.fallback("session admission", error, || {
                    shared.local.admit_now(request)
                }),
            }
        })
    }

    fn release_session<'a>(&'a self, identity: &'a str, session: &'a str) -> StoreFuture<'a, ()> {
        let shared = &self.shared;
        Box::pin(async move {
            shared.untrack(identity, session);
            shared.local.release_now(identity, session);
            let key = shared.keys(identity).live();
            let mut connection = shared.connection.clone();
            // Unreachable: the lease, no longer renewed, ends it.
            shared
                .call(
                    "release",
                    redis::cmd("ZREM")
                        .arg(key)
                        .arg(session)
                        .exec_async(&mut connection),
                )
                .await
        })
    }

    fn reserve<'a>(&'a self, reservation: &'a Reservation<'a>) -> StoreFuture<'a, Grant> {
        let shared = &self.shared;
        Box::pin(async move {
            let invocation = shared.scripts.reserve(
                &shared.keys(reservation.identity),
                reservation,
                shared.reservation_ttl,
            );
            let answer = shared
                .call("reserve", invocation.run(shared.connection.clone()))
                .await;
            match answer.and_then(|answer| scripts::grant(reservation, answer)) {
                Ok(grant) => Ok(grant),
                Err(error) => shared.fallback("reservation", error, || {
                    shared.local.reserve_now(reservation)
                }),
            }
        })
    }

    fn settle<'a>(&'a self, settlement: &'a Settlement<'a>) -> StoreFuture<'a, Settled> {
        let shared = &self.shared;
        Box::pin(async move {
            match shared.settle_remote(settlement).await {
                Ok(settled) => Ok(settled),
                Err(error) => {
                    tracing::warn!(%error, "settlement deferred: budget store unavailable");
                    background::defer(shared, settlement);
                    let exhausted = match shared.on_unavailable {
                        OnUnavailable::FailClosed => None,
                        OnUnavailable::FailOpen => {
                            let local = shared.local.settle_now(settlement);
                            if local.applied() && local.exhausted().is_some() {
                                let _ = shared.exhausted.send(Arc::from(settlement.identity));
                            }
                            local.exhausted()
                        }
                    };
                    Ok(Settled::deferred(exhausted))
                }
            }
        })
    }

    fn balance<'a>(
        &'a self,
        identity: &'a str,
        limits: &'a Limits,
        now: SystemTime,
    ) -> StoreFuture<'a, Vec<Balance>> {
        let shared = &self.shared;
        Box::pin(async move {
            let invocation = shared.scripts.balance(&shared.keys(identity), limits, now);
            match shared
                .call("balance", invocation.run(shared.connection.clone()))
                .await
            {
                Ok(answer) => Ok(scripts::balances(limits, now, answer)),
                Err(error) => shared.fallback("balance", error, || {
                    shared.local.balance_now(identity, limits, now)
                }),
            }
        })
    }

    fn announce_exhausted<'a>(&'a self, identity: &'a str) -> StoreFuture<'a, ()> {
        let shared = &self.shared;
        Box::pin(async move {
            let channel = keys::exhausted_channel(&shared.prefix, identity);
            let mut connection = shared.connection.clone();
            let published = shared
                .call(
                    "announce",
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(identity)
                        .exec_async(&mut connection),
                )
                .await;
            if published.is_err() {
                // At least this replica's sessions hear of it.
                let _ = shared.exhausted.send(Arc::from(identity));
            }
            published
        })
    }

    fn exhausted(&self) -> ExhaustedIdentities {
        ExhaustedIdentities::new(self.shared.exhausted.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreErrorKind;

    #[test]
    fn building_outside_a_runtime_is_an_error_not_a_panic() {
        let error = RedisBudgetStore::builder("redis://127.0.0.1:1/")
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Connection);
        assert!(error.to_string().contains("Tokio runtime"), "{error}");
    }

    #[tokio::test]
    async fn an_invalid_url_is_an_error_that_does_not_repeat_it() {
        let error = RedisBudgetStore::builder("http://user:hunter2@example/")
            .build()
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("budget store unreachable: invalid Redis URL")
        );
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[tokio::test]
    async fn debug_never_prints_the_url() {
        let builder = RedisBudgetStore::builder("redis://:hunter2@127.0.0.1:1/");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let store = builder.build().unwrap();
        let printed = format!("{store:?}");
        assert!(printed.starts_with("RedisBudgetStore"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
