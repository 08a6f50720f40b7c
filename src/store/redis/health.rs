//! Deployment health shared by every replica through Redis.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;

use super::{RedisBudgetStore, Shared, keys, lock};
use crate::deployment::{DeploymentHealth, HealthFuture, LocalHealth, unit_random};
use crate::store::StoreError;

/// How long health is kept in this process only after Redis failed to
/// answer, before Redis is asked again: sessions opened meanwhile do not
/// each wait for the timeout.
const RETRY_REDIS_AFTER: Duration = Duration::from_secs(1);

/// [`DeploymentHealth`] shared by every replica that uses the same Redis and
/// key prefix: a deployment that failed on one replica is skipped by all of
/// them until its cooldown ends. Made by [`RedisBudgetStore::deployment_health`],
/// on the store's connection, key prefix and timeout.
///
/// The backoff is [`LocalHealth`]'s (1 s doubling to 60 s by default, a
/// random part up to half taken off, `Retry-After` honoured when longer),
/// counted across replicas. A cooldown is a key that expires when it ends
/// (`{prefix}:deployment:{selector}:cooldown`); the count of failures in a
/// row is forgotten on success, or twice the longest cooldown after the
/// last failure.
///
/// Every call waits at most the store's timeout. While Redis does not
/// answer, health is kept in this process (which records every failure all
/// along), and Redis is asked again a second later: dials never wait on it.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_realtime::Providers;
/// use tower_realtime::store::RedisBudgetStore;
///
/// # async fn run() -> Result<(), tower_realtime::store::StoreError> {
/// let store = RedisBudgetStore::builder("redis://127.0.0.1:6379/").build()?;
/// let providers = Providers::new().deployment_health(
///     store
///         .deployment_health()
///         .backoff(Duration::from_secs(2), Duration::from_secs(120)),
/// );
/// # let _ = providers; Ok(()) }
/// ```
pub struct RedisDeploymentHealth {
    shared: Arc<Shared>,
    /// The answer while Redis does not give one.
    local: LocalHealth,
    /// Deployments this process saw a failure count of in Redis: a success
    /// on them resets it there (other successes need no round trip).
    counted: Mutex<HashSet<String>>,
    /// Until when Redis is not asked, after it failed to answer.
    resting_until: Mutex<Option<Instant>>,
    failed: Script,
}

impl RedisBudgetStore {
    /// Deployment health shared through this store's Redis (see
    /// [`RedisDeploymentHealth`]); plug it in with
    /// [`Providers::deployment_health`](crate::Providers::deployment_health).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_realtime::Providers;
    /// use tower_realtime::store::RedisBudgetStore;
    ///
    /// # async fn run() -> Result<(), tower_realtime::store::StoreError> {
    /// let store = RedisBudgetStore::builder("redis://127.0.0.1:6379/").build()?;
    /// let providers = Providers::new().deployment_health(store.deployment_health());
    /// # let _ = providers; Ok(()) }
    /// ```
    pub fn deployment_health(&self) -> RedisDeploymentHealth {
        RedisDeploymentHealth {
            shared: Arc::clone(&self.shared),
            local: LocalHealth::new(),
            counted: Mutex::new(HashSet::new()),
            resting_until: Mutex::new(None),
            failed: Script::new(include_str!("deployment_failed.lua")),
        }
    }
}

impl RedisDeploymentHealth {
    /// The first cooldown after a failure, and the longest (a `Retry-After`
    /// may ask for longer); as [`LocalHealth::backoff`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_realtime::store::RedisBudgetStore;
    ///
    /// # async fn run() -> Result<(), tower_realtime::store::StoreError> {
    /// let health = RedisBudgetStore::builder("redis://127.0.0.1:6379/")
    ///     .build()?
    ///     .deployment_health()
    ///     .backoff(Duration::from_millis(500), Duration::from_secs(30));
    /// # let _ = health; Ok(()) }
    /// ```
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.local = self.local.backoff(base, max);
        self
    }

    fn key(&self, deployment: &str, name: &str) -> String {
        keys::deployment(&self.shared.prefix, deployment, name)
    }

    /// Whether Redis may be asked now.
    fn awake(&self) -> bool {
        lock(&self.resting_until).is_none_or(|until| Instant::now() >= until)
    }

    /// Redis failed to answer: keep health here for a while.
    fn rest(&self, error: &StoreError) {
        let mut resting_until = lock(&self.resting_until);
        if resting_until.is_none_or(|until| Instant::now() >= until) {
            tracing::warn!(%error, "deployment health kept in this process: Redis unavailable");
        }
        *resting_until = Some(Instant::now() + RETRY_REDIS_AFTER);
    }

    async fn remote_cooldown(&self, deployment: &str) -> Result<Option<Duration>, StoreError> {
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("PTTL")
            .arg(self.key(deployment, "cooldown"))
            .cmd("EXISTS")
            .arg(self.key(deployment, "failures"));
        let mut connection = self.shared.connection.clone();
        let (remaining_ms, counted): (i64, bool) = self
            .shared
            .call("deployment cooldown", pipeline.query_async(&mut connection))
            .await?;
        if counted {
            lock(&self.counted).insert(deployment.to_owned());
        }
        Ok(u64::try_from(remaining_ms)
            .ok()
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis))
    }

    async fn remote_failed(
        &self,
        deployment: &str,
        retry_after: Option<Duration>,
    ) -> Result<(), StoreError> {
        let (base, max) = self.local.backoff_bounds();
        let mut invocation = self.failed.prepare_invoke();
        invocation
            .key(self.key(deployment, "failures"))
            .key(self.key(deployment, "cooldown"))
            .arg(millis(base))
            .arg(millis(max))
            .arg(unit_random())
            .arg(retry_after.map_or(0, millis))
            .arg(millis(max.saturating_mul(2)));
        let mut connection = self.shared.connection.clone();
        let _cooldown_ms: u64 = self
            .shared
            .call(
                "deployment failure",
                invocation.invoke_async(&mut connection),
            )
            .await?;
        lock(&self.counted).insert(deployment.to_owned());
        Ok(())
    }

    async fn remote_succeeded(&self, deployment: &str) -> Result<(), StoreError> {
        let mut connection = self.shared.connection.clone();
        self.shared
            .call(
                "deployment recovery",
                redis::cmd("DEL")
                    .arg(self.key(deployment, "failures"))
                    .arg(self.key(deployment, "cooldown"))
                    .exec_async(&mut connection),
            )
            .await
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Debug for RedisDeploymentHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: it is not printed.
        let (base, max) = self.local.backoff_bounds();
        f.debug_struct("RedisDeploymentHealth")
            .field("prefix", &self.shared.prefix)
            .field("timeout", &self.shared.timeout)
            .field("base", &base)
            .field("max", &max)
            .finish_non_exhaustive()
    }
}

impl DeploymentHealth for RedisDeploymentHealth {
    fn cooldown<'a>(&'a self, deployment: &'a str) -> HealthFuture<'a, Option<Duration>> {
        Box::pin(async move {
            if self.awake() {
                match self.remote_cooldown(deployment).await {
                    Ok(cooldown) => return cooldown,
                    Err(error) => self.rest(&error),
                }
            }
            self.local.cooldown_now(deployment)
        })
    }

    fn failed<'a>(
        &'a self,
        deployment: &'a str,
        retry_after: Option<Duration>,
    ) -> HealthFuture<'a, ()> {
        Box::pin(async move {
            self.local.failed_now(deployment, retry_after);
            if self.awake()
                && let Err(error) = self.remote_failed(deployment, retry_after).await
            {
                self.rest(&error);
            }
        })
    }

    fn succeeded<'a>(&'a self, deployment: &'a str) -> HealthFuture<'a, ()> {
        Box::pin(async move {
            self.local.succeeded_now(deployment);
            let counted = lock(&self.counted).remove(deployment);
            if counted
                && self.awake()
                && let Err(error) = self.remote_succeeded(deployment).await
            {
                self.rest(&error);
            }
        })
    }
}
