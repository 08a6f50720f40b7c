//! Deployments: one model alias served by several `provider/model` targets,
//! tried in priority tiers, balanced by weight (or by fewest live sessions,
//! [`Balancing`]) within a tier, cooled down after a failure and capped in
//! live sessions. Health is kept in this process ([`LocalHealth`]) or shared
//! by replicas through Redis (`RedisBudgetStore::deployment_health`, cargo
//! feature `redis`).
//!
//! # Example
//!
//! ```
//! use tower_realtime::deployment::Deployment;
//! use tower_realtime::provider::OpenAi;
//! use tower_realtime::{Providers, Secret};
//!
//! let providers = Providers::new()
//!     .with("azure-east", OpenAi::new(Secret::new("k1")))
//!     .with("azure-west", OpenAi::new(Secret::new("k2")))
//!     .with("openai", OpenAi::new(Secret::new("k3")))
//!     .deployments(
//!         "voice",
//!         [
//!             // Three sessions in four to the east, one to the west...
//!             Deployment::new("azure-east/gpt-realtime").weight(3).max_sessions(100),
//!             Deployment::new("azure-west/gpt-realtime").max_sessions(100),
//!             // ...and OpenAI only when both Azure regions fail or are full.
//!             Deployment::new("openai/gpt-realtime").tier(1),
//!         ],
//!     );
//! # let _ = providers;
//! ```

mod attempt;
mod balancing;
mod failover;
mod health;
mod plan;
mod random;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use attempt::Attempt;
pub use balancing::Balancing;
pub(crate) use failover::{Connected, connect};
pub use health::{DeploymentHealth, HealthFuture, LocalHealth};
#[cfg(feature = "redis")]
pub(crate) use random::unit_random;

/// One target of a model alias: a `provider/model` selector with its
/// priority tier, weight and session cap.
///
/// # Example
///
/// ```
/// use tower_realtime::deployment::Deployment;
///
/// let west = Deployment::new("azure-west/gpt-realtime").tier(0).weight(2).max_sessions(50);
/// assert_eq!(west.selector(), "azure-west/gpt-realtime");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Deployment {
    selector: String,
    tier: u32,
    weight: u32,
    max_sessions: Option<usize>,
}

impl Deployment {
    /// A deployment of tier 0, weight 1, without a cap.
    pub fn new(selector: impl Into<String>) -> Self {
        Self {
            selector: selector.into(),
            tier: 0,
            weight: 1,
            max_sessions: None,
        }
    }

    /// Its priority: lower tiers are tried first; a tier is tried only when
    /// every deployment of the tiers before it failed, cooled down or was full.
    pub fn tier(mut self, tier: u32) -> Self {
        self.tier = tier;
        self
    }

    /// Its share of the sessions of its tier (default 1; 0 only when the
    /// others of its tier cannot take a session).
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// At most `limit` live sessions: beyond it, sessions go to other
    /// deployments, or are refused with `503 too_many_sessions` when all are full.
    pub fn max_sessions(mut self, limit: usize) -> Self {
        self.max_sessions = Some(limit);
        self
    }

    /// The `provider/model` selector (or a model of the default provider).
    pub fn selector(&self) -> &str {
        &self.selector
    }
}

/// A deployment as a layer uses it: the configuration and the live count.
#[derive(Debug)]
pub(crate) struct DeploymentEntry {
    pub(crate) spec: Deployment,
    live: Arc<AtomicUsize>,
}

impl DeploymentEntry {
    pub(crate) fn new(spec: Deployment, live: Arc<AtomicUsize>) -> Self {
        Self { spec, live }
    }

    /// Its live sessions in this process.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Takes a place among its live sessions, unless it is full.
    pub(crate) fn try_take(&self) -> Option<DeploymentSlot> {
        let max = self.spec.max_sessions;
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                max.is_none_or(|max| live < max).then_some(live + 1)
            })
            .ok()?;
        Some(DeploymentSlot {
            live: Arc::clone(&self.live),
        })
    }
}

/// A session's place among a deployment's live sessions; dropping it frees it.
#[derive(Debug)]
pub(crate) struct DeploymentSlot {
    live: Arc<AtomicUsize>,
}

impl Drop for DeploymentSlot {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}
