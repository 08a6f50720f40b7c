//! [`RedisCallStore`]: client secrets, calls and sideband leases in Redis,
//! shared by every replica.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisError, Script};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::store::{CallRecord, CallStore, SecretRecord, SecretUse};
use crate::store::redis::connection;
use crate::store::{StoreError, StoreErrorKind, StoreFuture};

/// Takes one use of a secret: `unknown`, `used`, or `ok LEFT RECORD`
/// (`LEFT` is -1 for a secret without a limit).
const USE_SECRET: &str = r"
local record = redis.call('GET', KEYS[1])
if not record then return 'unknown' end
local uses = redis.call('GET', KEYS[2])
if not uses then return 'ok -1 ' .. record end
if tonumber(uses) <= 0 then return 'used' end
local left = redis.call('DECR', KEYS[2])
return 'ok ' .. left .. ' ' .. record
";

/// Gives a use back to a secret whose uses are counted and that has not
/// expired; `INCR` keeps the key's expiry.
const REFUND_SECRET: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCR', KEYS[1]) end
return 1
";

/// Takes or renews a lease unless another owner holds it.
const CLAIM: &str = r"
local holder = redis.call('GET', KEYS[1])
if (not holder) or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// A [`CallStore`] in Redis (cargo feature `redis`): replicas that share a
/// Redis and a key prefix serve each other's client secrets and calls, and
/// take over each other's sidebands.
///
/// A secret's uses are taken (and given back) and a sideband's lease is
/// claimed by one Lua script each, atomically. Keys expire with what they hold.
///
/// # Example
///
/// ```no_run
/// use tower_realtime::webrtc::{RedisCallStore, WebRtc};
///
/// # async fn run() -> Result<(), tower_realtime::store::StoreError> {
/// let store = RedisCallStore::builder("redis://127.0.0.1:6379/").key_prefix("gw:").build()?;
/// let webrtc = WebRtc::new().store(store);
/// # drop(webrtc);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisCallStore {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    use_secret: Script,
    refund_secret: Script,
    claim: Script,
}

/// Configures a [`RedisCallStore`]. Its `Debug` output leaves the URL
/// out: it may carry a password.
#[derive(Clone)]
#[must_use]
pub struct RedisCallStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
}

impl fmt::Debug for RedisCallStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCallStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisCallStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCallStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisCallStore {
    /// A store at `url` (`redis://host:port/db`); keys start with `rtw:`
    /// and every call waits at most 1 s for Redis.
    pub fn builder(url: impl Into<String>) -> RedisCallStoreBuilder {
        RedisCallStoreBuilder {
            url: url.into(),
            prefix: "rtw:".to_owned(),
            timeout: Duration::from_secs(1),
        }
    }
}

impl RedisCallStoreBuilder {
    /// The prefix of every key of the store.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one call waits for Redis before it fails.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The store; it connects lazily (and reconnects) in the current Tokio runtime.
    pub fn build(self) -> Result<RedisCallStore, StoreError> {
        let (_, connection) = connection::connect(&self.url, self.timeout, "call store")?;
        Ok(RedisCallStore {
            connection,
            prefix: self.prefix,
            timeout: self.timeout,
            use_secret: Script::new(USE_SECRET),
            refund_secret: Script::new(REFUND_SECRET),
            claim: Script::new(CLAIM),
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn encode(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("records serialize")
}

fn decode<T: DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|error| {
        StoreError::new(
            StoreErrorKind::Response,
            format!("a stored record is not readable: {error}"),
        )
    })
}

impl RedisCallStore {
    fn key(&self, kind: &str, id: &str) -> String {
        // One hash tag per secret or call: its keys share a slot (Cluster).
        format!("{}{kind}:{{{id}}}", self.prefix)
    }

    fn calls_key(&self) -> String {
        format!("{}calls", self.prefix)
    }

    async fn run<T>(
        &self,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        connection::within(self.timeout, "Redis", call).await
    }

    /// The record stored at `key`, if any.
    async fn get<T: DeserializeOwned>(&self, key: String) -> Result<Option<T>, StoreError> {
        let mut connection = self.connection.clone();
        let json: Option<String> = self
            .run(redis::cmd("GET").arg(key).query_async(&mut connection))
            .await?;
        json.as_deref().map(decode).transpose()
    }
}

impl CallStore for RedisCallStore {
    fn put_secret<'a>(
        &'a self,
        token: &'a str,
        record: &'a SecretRecord,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("SET")
                .arg(self.key("secret", token))
                .arg(encode(record))
                .arg("PX")
                .arg(millis(ttl))
                .ignore();
            if let Some(uses) = record.uses_left {
                pipe.cmd("SET")
                    .arg(self.key("uses", token))
                    .arg(uses)
                    .arg("PX")
                    .arg(millis(ttl))
                    .ignore();
            }
            self.run(pipe.query_async::<()>(&mut connection)).await
        })
    }

    fn get_secret<'a>(&'a self, token: &'a str) -> StoreFuture<'a, Option<SecretRecord>> {
        Box::pin(async move { self.get(self.key("secret", token)).await })
    }

    fn use_secret<'a>(&'a self, token: &'a str) -> StoreFuture<'a, SecretUse> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut invocation = self.use_secret.key(self.key("secret", token));
            invocation.key(self.key("uses", token));
            let answer: String = self.run(invocation.invoke_async(&mut connection)).await?;
            match answer.as_str() {
                "unknown" => Ok(SecretUse::Unknown),
                "used" => Ok(SecretUse::UsedUp),
                granted => {
                    let (left, json) = granted
                        .strip_prefix("ok ")
                        .and_then(|rest| rest.split_once(' '))
                        .ok_or_else(|| {
                            StoreError::new(StoreErrorKind::Response, "unexpected script answer")
                        })?;
                    let mut record: SecretRecord = decode(json)?;
                    record.uses_left = left.parse::<u32>().ok();
                    Ok(SecretUse::Granted(record))
                }
            }
        })
    }

    fn refund_secret<'a>(&'a self, token: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let invocation = self.refund_secret.key(self.key("uses", token));
            let _: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
            Ok(())
        })
    }

    fn put_call<'a>(&'a self, record: &'a CallRecord, ttl: Duration) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(self.key("call", &record.id))
                .arg(encode(record))
                .arg("PX")
                .arg(millis(ttl))
                .ignore()
                .cmd("SADD")
                .arg(self.calls_key())
                .arg(&record.id)
                .ignore();
            self.run(pipe.query_async::<()>(&mut connection)).await
        })
    }

    fn get_call<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<CallRecord>> {
        Box::pin(async move { self.get(self.key("call", id)).await })
    }

    fn remove_call<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut pipe = redis::pipe();
            pipe.cmd("DEL")
                .arg(self.key("call", id))
                .arg(self.key("lease", id))
                .ignore()
                .cmd("SREM")
                .arg(self.calls_key())
                .arg(id)
                .ignore();
            self.run(pipe.query_async::<()>(&mut connection)).await
        })
    }

    fn claim_sideband<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let mut invocation = self.claim.key(self.key("lease", id));
            invocation.arg(owner).arg(millis(lease));
            let claimed: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
            Ok(claimed == 1)
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn orphaned_calls(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let ids: Vec<String> = self
                .run(
                    redis::cmd("SMEMBERS")
                        .arg(self.calls_key())
                        .query_async(&mut connection),
                )
                .await?;
            let mut orphans = Vec::new();
            for id in ids {
                let mut pipe = redis::pipe();
                pipe.cmd("EXISTS")
                    .arg(self.key("call", &id))
                    .cmd("EXISTS")
                    .arg(self.key("lease", &id));
                let (call, lease): (bool, bool) =
                    self.run(pipe.query_async(&mut connection)).await?;
                if !call {
                    // Expired: forget it.
                    let _: Result<(), _> = self
                        .run(
                            redis::cmd("SREM")
                                .arg(self.calls_key())
                                .arg(&id)
                                .query_async(&mut connection),
                        )
                        .await;
                } else if !lease {
                    orphans.push(id);
                }
            }
            Ok(orphans)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_output_shows_no_redis_password() {
        let builder = RedisCallStore::builder("redis://user:hunter2secret@127.0.0.1:1/0");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        assert!(shown.contains("rtw:"), "{shown}");
        let store = builder.build().unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
    }
}
