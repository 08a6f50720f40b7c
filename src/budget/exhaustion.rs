//! Ending the live sessions of identities whose budget is spent.

use super::Budget;
use super::session_hook::spent_close;
use crate::hooks::LiveSessions;

/// Listens, for as long as the budget's store lives, for identities
/// announced out of budget (by a settlement on any replica sharing the
/// store), and ends every session of theirs among `live`.
pub(crate) fn listen(budget: &Budget, live: LiveSessions) {
    let mut exhausted = budget.store().exhausted();
    tokio::spawn(async move {
        while let Some(identity) = exhausted.recv().await {
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
