//! Where budgets and per-identity session limits are counted: in this
//! process ([`MemoryBudgetStore`]) or, shared by every replica, in Redis
//! (`RedisBudgetStore`, cargo feature `redis`, which also shares the health
//! of deployments: `RedisBudgetStore::deployment_health`).
//!
//! A [`BudgetStore`] answers four questions for an identity (the tenant an
//! admission check named), each atomically:
//!
//! - [`admit`](BudgetStore::admit): may it open one more session? (budgets
//!   not spent, fewer live sessions than its cap, fewer new sessions this
//!   minute than its cap); if so the session counts as live until
//!   [`release_session`](BudgetStore::release_session).
//! - [`reserve`](BudgetStore::reserve): may a response start that is
//!   estimated to cost this much? The estimate is held against every budget
//!   until the response is settled, so concurrent responses cannot together
//!   spend more than one reservation beyond a budget.
//! - [`settle`](BudgetStore::settle): the response cost this much; release
//!   its reservation. Idempotent per settlement id (a response id), so a
//!   retried settle never charges twice.
//! - [`exhausted`](BudgetStore::exhausted): identities whose budget a
//!   settlement spent, on any replica sharing the store, so their live
//!   sessions can be ended.
//!
//! Time is an argument of every call (a window is the UTC minute, hour, day
//! or month of the time given), so callers and tests choose it.
//!
//! # Example
//!
//! ```
//! use tower_realtime::budget::{Limit, Limits, Spend, Window};
//! use tower_realtime::store::{Admission, BudgetStore, Grant, MemoryBudgetStore, Reservation, Settlement, SessionRequest};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = MemoryBudgetStore::new();
//! let limits = Limits::new().with(Limit::tokens(Window::Day, 1_000)).max_live_sessions(1);
//!
//! let admission = store.admit(&SessionRequest::new("alice", "sess_1", &limits)).await.unwrap();
//! assert_eq!(admission, Admission::Admitted);
//!
//! let want = Spend::new().with_tokens(800);
//! let grant = store.reserve(&Reservation::new("alice", "resp_1", &limits, want)).await.unwrap();
//! assert_eq!(grant, Grant::Granted(want));
//!
//! let actual = Spend::new().with_tokens(1_000);
//! let settled = store
//!     .settle(&Settlement::new("alice", "resp_1", &limits, actual).releasing("resp_1"))
//!     .await
//!     .unwrap();
//! assert!(settled.exhausted().is_some());
//! store.release_session("alice", "sess_1").await.unwrap();
//! # });
//! ```

mod error;
mod exhausted;
mod ledger;
mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
mod request;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

pub use error::{StoreError, StoreErrorKind};
pub use exhausted::ExhaustedIdentities;
pub use memory::MemoryBudgetStore;
#[cfg(feature = "redis")]
pub use redis::{OnUnavailable, RedisBudgetStore, RedisBudgetStoreBuilder, RedisDeploymentHealth};
pub use request::{Admission, Balance, Grant, Reservation, SessionRequest, Settled, Settlement};

use crate::budget::Limits;

/// The future every [`BudgetStore`] call returns: boxed, so the trait is
/// object safe and a store can be shared as `Arc<dyn BudgetStore>`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where budgets and session limits are counted (see the [module docs](self)).
///
/// Every call ends: an implementation that talks to a server bounds each
/// call with a timeout and reports a [`StoreError`] instead of waiting.
pub trait BudgetStore: Send + Sync + 'static {
    /// Admits a session of `request.identity` or says why not. Admitting a
    /// session id that is live already succeeds without counting it twice.
    fn admit<'a>(&'a self, request: &'a SessionRequest<'a>) -> StoreFuture<'a, Admission>;

    /// Ends a live session; releasing one that is not live does nothing.
    fn release_session<'a>(&'a self, identity: &'a str, session: &'a str) -> StoreFuture<'a, ()>;

    /// Holds an estimate against every budget, or refuses. Each meter is
    /// granted what it asked for, or what is left when that is less but at
    /// least the reservation's minimum. Reserving an id again adds to it.
    fn reserve<'a>(&'a self, reservation: &'a Reservation<'a>) -> StoreFuture<'a, Grant>;

    /// Charges what a response cost and releases its reservation; a
    /// settlement id seen before (within a day) changes nothing.
    fn settle<'a>(&'a self, settlement: &'a Settlement<'a>) -> StoreFuture<'a, Settled>;

    /// What is spent and held of each budget of `limits` at `now`.
    fn balance<'a>(
        &'a self,
        identity: &'a str,
        limits: &'a Limits,
        now: SystemTime,
    ) -> StoreFuture<'a, Vec<Balance>>;

    /// Tells every subscriber (on every replica) that `identity` is out of budget.
    fn announce_exhausted<'a>(&'a self, identity: &'a str) -> StoreFuture<'a, ()>;

    /// Identities announced exhausted from now on, by a settlement that
    /// spent a budget or by [`announce_exhausted`](Self::announce_exhausted).
    fn exhausted(&self) -> ExhaustedIdentities;
}

impl<S: BudgetStore + ?Sized> BudgetStore for Arc<S> {
    fn admit<'a>(&'a self, request: &'a SessionRequest<'a>) -> StoreFuture<'a, Admission> {
        (**self).admit(request)
    }

    fn release_session<'a>(&'a self, identity: &'a str, session: &'a str) -> StoreFuture<'a, ()> {
        (**self).release_session(identity, session)
    }

    fn reserve<'a>(&'a self, reservation: &'a Reservation<'a>) -> StoreFuture<'a, Grant> {
        (**self).reserve(reservation)
    }

    fn settle<'a>(&'a self, settlement: &'a Settlement<'a>) -> StoreFuture<'a, Settled> {
        (**self).settle(settlement)
    }

    fn balance<'a>(
        &'a self,
        identity: &'a str,
        limits: &'a Limits,
        now: SystemTime,
    ) -> StoreFuture<'a, Vec<Balance>> {
        (**self).balance(identity, limits, now)
    }

    fn announce_exhausted<'a>(&'a self, identity: &'a str) -> StoreFuture<'a, ()> {
        (**self).announce_exhausted(identity)
    }

    fn exhausted(&self) -> ExhaustedIdentities {
        (**self).exhausted()
    }
}
