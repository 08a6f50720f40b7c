//! Ending the live sessions of identities whose budget is spent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};

use super::Budget;
use super::session_hook::spent_close;
use crate::hooks::{LiveSessions, SessionControl};

/// How many recent announcements are kept for sessions still dialling.
const KEPT: usize = 1_024;

/// The listener of one layer's budget, and the identities it heard of
/// lately, for the sessions that were dialling when they were announced
/// (not live yet, so the listener could not end them).
#[derive(Debug)]
pub(crate) struct Listener {
    started: Once,
    recent: Mutex<Recent>,
}

/// The count of announcements heard, and the latest ones with their number.
#[derive(Debug, Default)]
struct Recent {
    heard: u64,
    kept: VecDeque<(u64, Arc<str>)>,
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            started: Once::new(),
            recent: Mutex::default(),
        }
    }
}

impl Listener {
    /// Starts listening to `budget` for the sessions among `live`, once;
    /// returns a mark for [`announced_since`](Self::announced_since).
    /// Call it before a session is admitted.
    pub(crate) fn start(self: &Arc<Self>, budget: &Budget, live: &LiveSessions) -> u64 {
        self.started
            .call_once(|| listen(budget, live.clone(), Arc::clone(self)));
        self.lock().heard
    }

    /// Whether `identity` was announced out of budget after `mark`.
    pub(crate) fn announced_since(&self, identity: &str, mark: u64) -> bool {
        self.lock()
            .kept
            .iter()
            .rev()
            .take_while(|(number, _)| *number > mark)
            .any(|(_, announced)| &**announced == identity)
    }

    /// Ends a session that has just gone live when its identity was
    /// announced out of budget while it was admitted and dialling. Call it
    /// once the session is listed among the live sessions.
    pub(crate) fn check(&self, control: &SessionControl, mark: u64) {
        if self.announced_since(control.info().identity().name(), mark) {
            control.close(spent_close());
        }
    }

    fn record(&self, identity: &Arc<str>) {
        let mut recent = self.lock();
        recent.heard += 1;
        let number = recent.heard;
        recent.kept.push_back((number, Arc::clone(identity)));
        if recent.kept.len() > KEPT {
            recent.kept.pop_front();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Listens, for as long as the budget's store lives, for identities
/// announced out of budget (by a settlement on any replica sharing the
/// store), and ends every session of theirs among `live`. Each is recorded
/// before the live sessions are searched, and a session checks the record
/// after it is listed: a session going live meanwhile is found either way.
fn listen(budget: &Budget, live: LiveSessions, listener: Arc<Listener>) {
    let mut exhausted = budget.store().exhausted();
    tokio::spawn(async move {
        while let Some(identity) = exhausted.recv().await {
            listener.record(&identity);
            let sessions = live.find(|info| info.identity().name() == &*identity);
            if !sessions.is_empty() {
                tracing::info!(
                    identity = &*identity,
                    sessions = sessions.len(),
                    "budget spent: ending the identity's sessions"
                );
            }
            for session in sessions {
                session.close(spent_close());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_are_found_after_their_mark_only() {
        let listener = Listener::default();
        listener.record(&Arc::from("alice"));
        let mark = listener.lock().heard;
        assert!(!listener.announced_since("alice", mark));
        listener.record(&Arc::from("bob"));
        assert!(listener.announced_since("bob", mark));
        assert!(!listener.announced_since("alice", mark));
        for _ in 0..KEPT * 2 {
            listener.record(&Arc::from("carol"));
        }
        assert_eq!(listener.lock().kept.len(), KEPT);
        assert!(listener.announced_since("carol", mark));
    }
}
