//! How sessions are shared among the deployments of one tier.

/// How a session picks among the available deployments of one priority
/// tier; set for every alias with `Providers::deployment_balancing`.
///
/// # Example
///
/// ```
/// use tower_realtime::Providers;
/// use tower_realtime::deployment::{Balancing, Deployment};
///
/// let providers = Providers::new()
///     .deployments("voice", [Deployment::new("east/m"), Deployment::new("west/m")])
///     .deployment_balancing(Balancing::LeastSessions);
/// # let _ = providers;
/// assert_eq!(Balancing::default(), Balancing::Weighted);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Balancing {
    /// A deployment comes first in proportion to its weight (the default).
    #[default]
    Weighted,
    /// The deployment with the fewest live sessions in this process comes
    /// first; weights break ties.
    LeastSessions,
}
