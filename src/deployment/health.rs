//! Which deployments are cooling down after a failure.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::random::unit_random;

/// The future every [`DeploymentHealth`] call returns: boxed, so the trait
/// is object safe.
pub type HealthFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Remembers which deployments failed recently, so that sessions skip them
/// for a while and probe them again later.
///
/// Deployments are named by their selector (`azure-east/gpt-realtime`).
/// Cooldowns are durations, not instants, so that an implementation can
/// keep them in a store shared by replicas. The default is [`LocalHealth`]
/// (this process only); `RedisDeploymentHealth` (cargo feature `redis`)
/// shares it through Redis.
///
/// Sessions wait for these calls before they dial: an implementation that
/// talks to a server bounds each call with a timeout and answers from what
/// it knows itself rather than waiting.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_realtime::deployment::{DeploymentHealth, HealthFuture};
///
/// /// Never cools anything down: every session tries every deployment.
/// struct Forgetful;
///
/// impl DeploymentHealth for Forgetful {
///     fn cooldown<'a>(&'a self, _deployment: &'a str) -> HealthFuture<'a, Option<Duration>> {
///         Box::pin(async { None })
///     }
///     fn failed<'a>(&'a self, _deployment: &'a str, _retry_after: Option<Duration>) -> HealthFuture<'a, ()> {
///         Box::pin(async {})
///     }
///     fn succeeded<'a>(&'a self, _deployment: &'a str) -> HealthFuture<'a, ()> {
///         Box::pin(async {})
///     }
/// }
/// # let _ = Forgetful;
/// ```
pub trait DeploymentHealth: Send + Sync + 'static {
    /// How long `deployment` still cools down, or `None` when it may be tried.
    fn cooldown<'a>(&'a self, deployment: &'a str) -> HealthFuture<'a, Option<Duration>>;
    /// A session could not open on `deployment`; the upstream asked to wait
    /// `retry_after` when it sent `Retry-After`.
    fn failed<'a>(
        &'a self,
        deployment: &'a str,
        retry_after: Option<Duration>,
    ) -> HealthFuture<'a, ()>;
    /// A session opened on `deployment`.
    fn succeeded<'a>(&'a self, deployment: &'a str) -> HealthFuture<'a, ()>;
}

/// Deployment health in this process: a deployment that failed `n` times
/// in a row cools down for `base × 2ⁿ⁻¹` (at most `max`), of which a random
/// half is taken off, or for as long as its `Retry-After` asked when that is
/// longer. A session that opens on it resets the count.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_realtime::deployment::{DeploymentHealth, LocalHealth};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let health = LocalHealth::new().backoff(Duration::from_secs(2), Duration::from_secs(60));
/// health.failed("azure-east/gpt-realtime", Some(Duration::from_secs(30))).await;
/// assert!(health.cooldown("azure-east/gpt-realtime").await > Some(Duration::from_secs(29)));
/// assert_eq!(health.cooldown("openai/gpt-realtime").await, None);
/// # });
/// ```
pub struct LocalHealth {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, Failures>>,
    clock: Arc<dyn Fn() -> Instant + Send + Sync>,
    /// A number in `[0, 1)`: how much of the backoff's second half is kept.
    jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    until: Instant,
}

/// The first cooldown: long enough to spare a failing deployment the
/// sessions of the next second, short enough to find it recovered soon.
const DEFAULT_BASE: Duration = Duration::from_secs(1);
/// The longest cooldown.
const DEFAULT_MAX: Duration = Duration::from_secs(60);

impl LocalHealth {
    /// Cooldowns from 1 s, doubling to at most 60 s.
    pub fn new() -> Self {
        Self {
            base: DEFAULT_BASE,
            max: DEFAULT_MAX,
            failures: Mutex::new(HashMap::new()),
            clock: Arc::new(Instant::now),
            jitter: Arc::new(unit_random),
        }
    }

    /// The first cooldown after a failure, and the longest (a `Retry-After`
    /// may ask for longer).
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max = max.max(base);
        self
    }

    #[cfg(test)]
    fn with_clock(
        mut self,
        clock: impl Fn() -> Instant + Send + Sync + 'static,
        jitter: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Self {
        self.clock = Arc::new(clock);
        self.jitter = Arc::new(jitter);
        self
    }

    /// The first cooldown and the longest.
    #[cfg(feature = "redis")]
    pub(crate) fn backoff_bounds(&self) -> (Duration, Duration) {
        (self.base, self.max)
    }

    fn backoff_after(&self, count: u32) -> Duration {
        let doubled = self.base.saturating_mul(
            1u32.checked_shl(count.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let full = doubled.min(self.max);
        full / 2 + (full / 2).mul_f64((self.jitter)().clamp(0.0, 1.0))
    }

    /// [`DeploymentHealth::cooldown`], at once.
    pub(crate) fn cooldown_now(&self, deployment: &str) -> Option<Duration> {
        let now = (self.clock)();
        let failures = self.failures.lock().expect("not poisoned");
        let until = failures.get(deployment)?.until;
        (until > now).then(|| until - now)
    }

    /// [`DeploymentHealth::failed`], at once.
    pub(crate) fn failed_now(&self, deployment: &str, retry_after: Option<Duration>) {
        let now = (self.clock)();
        let mut failures = self.failures.lock().expect("not poisoned");
        let count = failures.get(deployment).map_or(0, |f| f.count) + 1;
        let wait = self
            .backoff_after(count)
            .max(retry_after.unwrap_or_default());
        failures.insert(
            deployment.to_owned(),
            Failures {
                count,
                until: now + wait,
            },
        );
    }

    /// [`DeploymentHealth::succeeded`], at once.
    pub(crate) fn succeeded_now(&self, deployment: &str) {
        self.failures
            .lock()
            .expect("not poisoned")
            .remove(deployment);
    }
}

impl Default for LocalHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LocalHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalHealth")
            .field("base", &self.base)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl DeploymentHealth for LocalHealth {
    fn cooldown<'a>(&'a self, deployment: &'a str) -> HealthFuture<'a, Option<Duration>> {
        Box::pin(std::future::ready(self.cooldown_now(deployment)))
    }

    fn failed<'a>(
        &'a self,
        deployment: &'a str,
        retry_after: Option<Duration>,
    ) -> HealthFuture<'a, ()> {
        self.failed_now(deployment, retry_after);
        Box::pin(std::future::ready(()))
    }

    fn succeeded<'a>(&'a self, deployment: &'a str) -> HealthFuture<'a, ()> {
        self.succeeded_now(deployment);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A health whose clock moves only when the test says so, and whose
    /// jitter keeps the whole backoff.
    fn health(jitter: f64) -> (LocalHealth, Arc<AtomicU64>) {
        let start = Instant::now();
        let elapsed_ms = Arc::new(AtomicU64::new(0));
        let clock = Arc::clone(&elapsed_ms);
        let health = LocalHealth::new()
            .backoff(Duration::from_secs(1), Duration::from_secs(8))
            .with_clock(
                move || start + Duration::from_millis(clock.load(Ordering::SeqCst)),
                move || jitter,
            );
        (health, elapsed_ms)
    }

    const EAST: &str = "azure-east/gpt-realtime";

    #[test]
    fn cooldowns_double_up_to_the_maximum_and_end() {
        let (health, elapsed) = health(0.999_999);
        let secs = |d: Option<Duration>| d.map(|d| d.as_millis().div_ceil(1000));
        assert_eq!(health.cooldown_now(EAST), None);
        for expected in [1, 2, 4, 8, 8] {
            health.failed_now(EAST, None);
            assert_eq!(secs(health.cooldown_now(EAST)), Some(expected));
        }
        elapsed.fetch_add(7_999, Ordering::SeqCst);
        assert!(health.cooldown_now(EAST).is_some());
        elapsed.fetch_add(1, Ordering::SeqCst);
        assert_eq!(health.cooldown_now(EAST), None, "probed again once cooled");
        // Still counted: the next failure backs off the most.
        health.failed_now(EAST, None);
        assert_eq!(secs(health.cooldown_now(EAST)), Some(8));
        health.succeeded_now(EAST);
        assert_eq!(health.cooldown_now(EAST), None);
        health.failed_now(EAST, None);
        assert_eq!(secs(health.cooldown_now(EAST)), Some(1), "recovery resets");
    }

    #[test]
    fn jitter_takes_off_up_to_half() {
        let (low, _) = health(0.0);
        low.failed_now(EAST, None);
        low.failed_now(EAST, None);
        assert_eq!(low.cooldown_now(EAST), Some(Duration::from_secs(1)));
        let (mid, _) = health(0.5);
        mid.failed_now(EAST, None);
        mid.failed_now(EAST, None);
        assert_eq!(mid.cooldown_now(EAST), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn retry_after_is_honoured_when_longer() {
        let (health, elapsed) = health(0.0);
        health.failed_now(EAST, Some(Duration::from_secs(30)));
        assert_eq!(health.cooldown_now(EAST), Some(Duration::from_secs(30)));
        elapsed.fetch_add(30_000, Ordering::SeqCst);
        assert_eq!(health.cooldown_now(EAST), None);
        health.failed_now(EAST, Some(Duration::from_millis(10)));
        assert_eq!(health.cooldown_now(EAST), Some(Duration::from_secs(1)));
        assert_eq!(health.cooldown_now("openai/gpt-realtime"), None);
    }
}
