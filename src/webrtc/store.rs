//! Where client secrets and calls live: [`CallStore`], in memory by default.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{StoreError, StoreFuture};

/// A gateway client secret, as minted by `POST /v1/realtime/client_secrets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// The identity that minted it; calls made with it belong to it.
    pub identity: String,
    /// The provider's name in the registry.
    pub provider: String,
    /// The upstream model (without the provider prefix).
    pub model: String,
    /// The session configuration calls made with it get, model included.
    pub session: Value,
    /// The only `Origin` it may be used from, if bound to one.
    pub origin: Option<String>,
    /// How many calls it may still create (`None`: any number until it expires).
    pub uses_left: Option<u32>,
    /// When it expires, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// A WebRTC call the gateway set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The gateway's id of the call (`gw_call_…`), the only one clients see.
    pub id: String,
    /// The provider's id of the call (`rtc_…`), never shown to clients.
    pub provider_call_id: String,
    /// The provider's name in the registry.
    pub provider: String,
    /// The upstream model.
    pub model: String,
    /// The identity the call belongs to.
    pub identity: String,
    /// The session configuration locked for the call.
    pub session: Value,
    /// The client secret that created it, if one did: it may hang the call up.
    pub token: Option<String>,
}

/// What using a client secret found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SecretUse {
    /// The secret is valid; one use was taken.
    Granted(SecretRecord),
    /// The secret exists but has no uses left.
    UsedUp,
    /// No such secret (never minted, or gone since it expired).
    Unknown,
}

/// Shared state of WebRTC calls: client secrets, calls and the leases of
/// their sidebands. Every method is atomic, so replicas sharing a store
/// can serve any request of any call.
///
/// [`MemoryCallStore`] keeps it in this process; `RedisCallStore` (cargo
/// feature `redis`) shares it between replicas.
pub trait CallStore: Send + Sync + 'static {
    /// Stores a client secret under `token`, forgotten after `ttl`.
    fn put_secret<'a>(
        &'a self,
        token: &'a str,
        record: &'a SecretRecord,
        ttl: Duration,
    ) -> StoreFuture<'a, ()>;

    /// The secret under `token`, without using it.
    fn get_secret<'a>(&'a self, token: &'a str) -> StoreFuture<'a, Option<SecretRecord>>;

    /// Takes one use of the secret under `token`.
    fn use_secret<'a>(&'a self, token: &'a str) -> StoreFuture<'a, SecretUse>;

    /// Stores a call, forgotten after `ttl`.
    fn put_call<'a>(&'a self, record: &'a CallRecord, ttl: Duration) -> StoreFuture<'a, ()>;

    /// The call with gateway id `id`.
    fn get_call<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<CallRecord>>;

    /// Forgets a call (and its sideband lease).
    fn remove_call<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()>;

    /// Makes `owner` the supervisor of call `id` for `lease`, if no other
    /// owner holds an unexpired lease (renewing its own lease is allowed).
    fn claim_sideband<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool>;

    /// The ids of stored calls whose sideband lease has expired (or was
    /// never taken), for another replica to take over.
    fn orphaned_calls(&self) -> StoreFuture<'_, Vec<String>>;
}

/// A [`CallStore`] in this process's memory: for one replica.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_realtime::webrtc::{CallStore, MemoryCallStore, SecretUse};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = MemoryCallStore::new();
/// assert_eq!(store.use_secret("gw_ek_unknown").await.unwrap(), SecretUse::Unknown);
/// assert!(store.claim_sideband("gw_call_1", "replica-a", Duration::from_secs(30)).await.unwrap());
/// assert!(!store.claim_sideband("gw_call_1", "replica-b", Duration::from_secs(30)).await.unwrap());
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryCallStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    secrets: HashMap<String, (SecretRecord, tokio::time::Instant)>,
    calls: HashMap<String, (CallRecord, tokio::time::Instant)>,
    leases: HashMap<String, (String, tokio::time::Instant)>,
}

impl State {
    fn sweep(&mut self, now: tokio::time::Instant) {
        self.secrets.retain(|_, (_, until)| *until > now);
        self.calls.retain(|_, (_, until)| *until > now);
        self.leases.retain(|_, (_, until)| *until > now);
    }
}

impl MemoryCallStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State, tokio::time::Instant) -> T) -> T {
        let now = tokio::time::Instant::now();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        state.sweep(now);
        f(&mut state, now)
    }
}

fn ready<T: Send + 'static>(value: T) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Ok::<_, StoreError>(value)))
}

impl CallStore for MemoryCallStore {
    fn put_secret<'a>(
        &'a self,
        token: &'a str,
        record: &'a SecretRecord,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.with(|state, now| {
            state
                .secrets
                .insert(token.to_owned(), (record.clone(), now + ttl))
        });
        ready(())
    }

    fn get_secret<'a>(&'a self, token: &'a str) -> StoreFuture<'a, Option<SecretRecord>> {
        ready(self.with(|state, _| state.secrets.get(token).map(|(record, _)| record.clone())))
    }

    fn use_secret<'a>(&'a self, token: &'a str) -> StoreFuture<'a, SecretUse> {
        ready(self.with(|state, _| match state.secrets.get_mut(token) {
            None => SecretUse::Unknown,
            Some((record, _)) => match &mut record.uses_left {
                Some(0) => SecretUse::UsedUp,
                Some(left) => {
                    *left -= 1;
                    SecretUse::Granted(record.clone())
                }
                None => SecretUse::Granted(record.clone()),
            },
        }))
    }

    fn put_call<'a>(&'a self, record: &'a CallRecord, ttl: Duration) -> StoreFuture<'a, ()> {
        self.with(|state, now| {
            state
                .calls
                .insert(record.id.clone(), (record.clone(), now + ttl))
        });
        ready(())
    }

    fn get_call<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<CallRecord>> {
        ready(self.with(|state, _| state.calls.get(id).map(|(record, _)| record.clone())))
    }

    fn remove_call<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        self.with(|state, _| {
            state.calls.remove(id);
            state.leases.remove(id);
        });
        ready(())
    }

    fn claim_sideband<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        ready(self.with(|state, now| {
            let free = match state.leases.get(id) {
                Some((holder, until)) => holder == owner || *until <= now,
                None => true,
            };
            if free {
                state
                    .leases
                    .insert(id.to_owned(), (owner.to_owned(), now + lease));
            }
            free
        }))
    }

    fn orphaned_calls(&self) -> StoreFuture<'_, Vec<String>> {
        ready(self.with(|state, now| {
            state
                .calls
                .keys()
                .filter(|id| state.leases.get(*id).is_none_or(|(_, until)| *until <= now))
                .cloned()
                .collect()
        }))
    }
}
