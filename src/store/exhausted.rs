//! The identities whose budget is spent, as a store learns of them.

use std::sync::Arc;

use tokio::sync::broadcast;

/// Identities announced out of budget, from the moment this was made.
///
/// Each subscriber sees every announcement (several per identity when
/// several settlements overspend). A subscriber that falls far behind skips
/// the oldest ones, with a warning in the log.
///
/// # Example
///
/// ```
/// use tower_realtime::store::{BudgetStore, MemoryBudgetStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = MemoryBudgetStore::new();
/// let mut exhausted = store.exhausted();
/// store.announce_exhausted("alice").await.unwrap();
/// assert_eq!(exhausted.recv().await.as_deref(), Some("alice"));
/// # });
/// ```
#[derive(Debug)]
pub struct ExhaustedIdentities {
    receiver: broadcast::Receiver<Arc<str>>,
}

impl ExhaustedIdentities {
    pub(crate) fn new(receiver: broadcast::Receiver<Arc<str>>) -> Self {
        Self { receiver }
    }

    /// The next identity announced; `None` once the store is gone.
    pub async fn recv(&mut self) -> Option<Arc<str>> {
        loop {
            match self.receiver.recv().await {
                Ok(identity) => return Some(identity),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "exhausted identities skipped by a slow subscriber");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// How many announcements a subscriber may fall behind by.
pub(crate) const CAPACITY: usize = 1_024;
