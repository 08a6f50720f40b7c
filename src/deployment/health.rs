//! Which deployments are cooling down after a failure.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::random::unit_random;

/// Remembers which deployments failed recently, so that sessions skip them
/// for a while and probe them again later.
///
/// Deployments are named by their selector (`azure-east/gpt-realtime`).
/// Cooldowns are durations, not instants, so that an implementation can
/// keep them in a store shared by replicas. The default is [`LocalHealth`]
/// (this process only).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_realtime::deployment::DeploymentHealth;
///
/// /// Never cools anything down: every session tries every deployment.
/// struct Forgetful;
///
/// impl DeploymentHealth for Forgetful {
///     fn cooldown(&self, _deployment: &str) -> Option<Duration> {
///         None
///     }
///     fn failed(&self, _deployment: &str, _retry_after: Option<Duration>) {}
///     fn succeeded(&self, _deployment: &str) {}
/// }
/// # let _ = Forgetful;
/// ```
pub trait DeploymentHealth: Send + Sync + 'static {
    /// How long `deployment` still cools down, or `None` when it may be tried.
    fn cooldown(&self, deployment: &str) -> Option<Duration>;
    /// A session could not open on `deployment`; the upstream asked to wait
    /// `retry_after` when it sent `Retry-After`.
    fn failed(&self, deployment: &str, retry_after: Option<Duration>);
    /// A session opened on `deployment`.
    fn succeeded(&self, deployment: &str);
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
/// let health = LocalHealth::new().backoff(Duration::from_secs(2), Duration::from_secs(60));
/// health.failed("azure-east/gpt-realtime", Some(Duration::from_secs(30)));
/// assert!(health.cooldown("azure-east/gpt-realtime") > Some(Duration::from_secs(29)));
/// assert_eq!(health.cooldown("openai/gpt-realtime"), None);
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

    fn backoff_after(&self, count: u32) -> Duration {
        let doubled = self.base.saturating_mul(
            1u32.checked_shl(count.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let full = doubled.min(self.max);
        full / 2 + (full / 2).mul_f64((self.jitter)().clamp(0.0, 1.0))
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
    fn cooldown(&self, deployment: &str) -> Option<Duration> {
        let now = (self.clock)();
        let failures = self.failures.lock().expect("not poisoned");
        let until = failures.get(deployment)?.until;
        (until > now).then(|| until - now)
    }

    fn failed(&self, deployment: &str, retry_after: Option<Duration>) {
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

    fn succeeded(&self, deployment: &str) {
        self.failures
            .lock()
            .expect("not poisoned")
            .remove(deployment);
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
        assert_eq!(health.cooldown(EAST), None);
        for expected in [1, 2, 4, 8, 8] {
            health.failed(EAST, None);
            assert_eq!(secs(health.cooldown(EAST)), Some(expected));
        }
        elapsed.fetch_add(7_999, Ordering::SeqCst);
        assert!(health.cooldown(EAST).is_some());
        elapsed.fetch_add(1, Ordering::SeqCst);
        assert_eq!(health.cooldown(EAST), None, "probed again once cooled");
        // Still counted: the next failure backs off the most.
        health.failed(EAST, None);
        assert_eq!(secs(health.cooldown(EAST)), Some(8));
        health.succeeded(EAST);
        assert_eq!(health.cooldown(EAST), None);
        health.failed(EAST, None);
        assert_eq!(secs(health.cooldown(EAST)), Some(1), "recovery resets");
    }

    #[test]
    fn jitter_takes_off_up_to_half() {
        let (low, _) = health(0.0);
        low.failed(EAST, None);
        low.failed(EAST, None);
        assert_eq!(low.cooldown(EAST), Some(Duration::from_secs(1)));
        let (mid, _) = health(0.5);
        mid.failed(EAST, None);
        mid.failed(EAST, None);
        assert_eq!(mid.cooldown(EAST), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn retry_after_is_honoured_when_longer() {
        let (health, elapsed) = health(0.0);
        health.failed(EAST, Some(Duration::from_secs(30)));
        assert_eq!(health.cooldown(EAST), Some(Duration::from_secs(30)));
        elapsed.fetch_add(30_000, Ordering::SeqCst);
        assert_eq!(health.cooldown(EAST), None);
        health.failed(EAST, Some(Duration::from_millis(10)));
        assert_eq!(health.cooldown(EAST), Some(Duration::from_secs(1)));
        assert_eq!(health.cooldown("openai/gpt-realtime"), None);
    }
}
