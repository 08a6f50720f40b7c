//! Where client secrets and calls live: [`CallStore`], in memory by default.

use std::collections::HashMap;
use std::fmt;
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

/// A WebRTC call the gateway set up. Its `Debug` output shows whether a
/// client secret created it, never the secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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

impl fmt::Debug for CallRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallRecord")
            .field("id", &self.id)
            .field("provider_call_id", &self.provider_call_id)
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("identity", &self.identity)
            .field("session", &self.session)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
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

    /// Gives back a use of the secret under `token` taken by
    /// [`use_secret`](Self::use_secret) for a call that was not set up. The
    /// secret keeps its expiry; one without a limit of uses, or gone,
    /// stays as it is.
    fn refund_secret<'a>(&'a self, token: &'a str) -> StoreFuture<'a, ()>;

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

    /// Whether other replicas share the store and take over the sidebands
    /// of a replica that stops. When not (the default), a replica shutting
    /// down hangs its calls up: nobody would supervise them any more.
    fn is_shared(&self) -> bool {
        false
    }
}

/// A [`CallStore`] in this process's memory: for one replica, which hangs
/// its calls up when it shuts down.
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
#[derive(Clone, Default)]
pub struct MemoryCallStore {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    secrets: HashMap<String, (SecretRecord, tokio::time::Instant)>,
    calls: HashMap<String, (CallRecord, tokio::time::Instant)>,
    leases: HashMap<String, (String, tokio::time::Instant)>,
    /// When expired entries are next dropped (lookups skip them meanwhile).
    next_sweep: Option<tokio::time::Instant>,
}

/// How often a [`MemoryCallStore`] drops its expired entries: a sweep
/// visits every entry, so it runs at most this often, not on every request.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The record, unless it expired by `now`.
fn live<T>(entry: Option<&(T, tokio::time::Instant)>, now: tokio::time::Instant) -> Option<&T> {
    entry
        .filter(|(_, until)| *until > now)
        .map(|(record, _)| record)
}

impl State {
    fn sweep(&mut self, now: tokio::time::Instant) {
        if self.next_sweep.is_some_and(|next| now < next) {
            return;
        }
        self.next_sweep = Some(now + SWEEP_EVERY);
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

/// Counts only: the keys of its maps are client secrets.
impl fmt::Debug for MemoryCallStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        f.debug_struct("MemoryCallStore")
            .field("secrets", &state.secrets.len())
            .field("calls", &state.calls.len())
            .field("leases", &state.leases.len())
            .finish()
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
        ready(self.with(|state, now| live(state.secrets.get(token), now).cloned()))
    }

    fn use_secret<'a>(&'a self, token: &'a str) -> StoreFuture<'a, SecretUse> {
        ready(self.with(|state, now| match state.secrets.get_mut(token) {
            Some((record, until)) if *until > now => match &mut record.uses_left {
                Some(0) => SecretUse::UsedUp,
                Some(left) => {
                    *left -= 1;
                    SecretUse::Granted(record.clone())
                }
                None => SecretUse::Granted(record.clone()),
            },
            _ => SecretUse::Unknown,
        }))
    }

    fn refund_secret<'a>(&'a self, token: &'a str) -> StoreFuture<'a, ()> {
        self.with(|state, now| {
            if let Some((record, until)) = state.secrets.get_mut(token)
                && *until > now
                && let Some(left) = &mut record.uses_left
            {
                *left = left.saturating_add(1);
            }
        });
        ready(())
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
        ready(self.with(|state, now| live(state.calls.get(id), now).cloned()))
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
                .iter()
                .filter(|(id, (_, until))| {
                    *until > now && live(state.leases.get(*id), now).is_none()
                })
                .map(|(id, _)| id.clone())
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(token: Option<&str>) -> CallRecord {
        CallRecord {
            id: "gw_call_1".into(),
            provider_call_id: "rtc_1".into(),
            provider: "openai".into(),
            model: "gpt-realtime".into(),
            identity: "alice".into(),
            session: Value::Null,
            token: token.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn debug_output_shows_no_client_secret() {
        let secret = "gw_ek_secretsecretsecret";
        let record = call(Some(secret));
        let shown = format!("{record:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(
            shown.contains("[redacted]") && shown.contains("gw_call_1"),
            "{shown}"
        );
        assert!(!format!("{:?}", call(None)).contains("[redacted]"));

        let store = MemoryCallStore::new();
        let minted = SecretRecord {
            identity: "alice".into(),
            provider: "openai".into(),
            model: "gpt-realtime".into(),
            session: Value::Null,
            origin: None,
            uses_left: None,
            expires_at: u64::MAX,
        };
        store
            .put_secret(secret, &minted, Duration::from_secs(60))
            .await
            .unwrap();
        store
            .put_call(&record, Duration::from_secs(60))
            .await
            .unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert_eq!(shown, "MemoryCallStore { secrets: 1, calls: 1, leases: 0 }");
    }

    // Tokio's clock, paused: no stall between two steps can expire a lease.
    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_forgotten() {
        let store = MemoryCallStore::new();
        let mut brief = call(None);
        brief.id = "gw_call_brief".into();
        store
            .put_call(&call(None), Duration::from_secs(60))
            .await
            .unwrap();
        store
            .put_call(&brief, Duration::from_millis(50))
            .await
            .unwrap();
        let lease = Duration::from_millis(50);
        assert!(store.claim_sideband("gw_call_1", "a", lease).await.unwrap());
        assert!(
            store
                .orphaned_calls()
                .await
                .unwrap()
                .iter()
                .all(|id| id != "gw_call_1")
        );
        tokio::time::sleep(lease * 4).await;
        assert_eq!(store.orphaned_calls().await.unwrap(), ["gw_call_1"]);
        assert_eq!(store.get_call("gw_call_brief").await.unwrap(), None);
        // Dropped from memory at the next sweep, at most a second later.
        tokio::time::sleep(SWEEP_EVERY + lease * 4).await;
        assert!(store.get_call("gw_call_1").await.unwrap().is_some());
        assert_eq!(
            format!("{store:?}"),
            "MemoryCallStore { secrets: 0, calls: 1, leases: 0 }"
        );
    }

    #[tokio::test]
    async fn a_refunded_use_can_be_taken_again() {
        let store = MemoryCallStore::new();
        let mut minted = SecretRecord {
            identity: "alice".into(),
            provider: "openai".into(),
            model: "gpt-realtime".into(),
            session: Value::Null,
            origin: None,
            uses_left: Some(1),
            expires_at: u64::MAX,
        };
        let ttl = Duration::from_secs(60);
        store.put_secret("gw_ek_once", &minted, ttl).await.unwrap();
        assert!(matches!(
            store.use_secret("gw_ek_once").await.unwrap(),
            SecretUse::Granted(_)
        ));
        assert_eq!(
            store.use_secret("gw_ek_once").await.unwrap(),
            SecretUse::UsedUp
        );
        store.refund_secret("gw_ek_once").await.unwrap();
        minted.uses_left = Some(0);
        assert_eq!(
            store.use_secret("gw_ek_once").await.unwrap(),
            SecretUse::Granted(minted)
        );
        assert_eq!(
            store.use_secret("gw_ek_once").await.unwrap(),
            SecretUse::UsedUp
        );
        // Unknown secrets are not created by a refund.
        store.refund_secret("gw_ek_unknown").await.unwrap();
        assert_eq!(store.get_secret("gw_ek_unknown").await.unwrap(), None);
    }

    // Tokio's clock, paused: no stall between two steps can expire a lease.
    #[tokio::test(start_paused = true)]
    async fn an_expired_secret_is_unknown_before_the_sweep() {
        let store = MemoryCallStore::new();
        let minted = SecretRecord {
            identity: "alice".into(),
            provider: "openai".into(),
            model: "gpt-realtime".into(),
            session: Value::Null,
            origin: None,
            uses_left: Some(3),
            expires_at: u64::MAX,
        };
        // The first request sweeps; the secret expires before the next sweep.
        store
            .put_secret("gw_ek_brief", &minted, Duration::from_millis(50))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.get_secret("gw_ek_brief").await.unwrap(), None);
        assert_eq!(
            store.use_secret("gw_ek_brief").await.unwrap(),
            SecretUse::Unknown
        );
    }
}
