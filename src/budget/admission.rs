//! A session's budget check before anything is dialled.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use http::StatusCode;

use super::{Budget, BudgetError, Meter, SessionSlot};
use crate::error::{ErrorType, Rejection};
use crate::hooks::SessionId;

/// Admits `identity`'s session `id`, or refuses it: `429` when a limit says
/// no, `503` when the store cannot answer (and fails closed).
pub(crate) async fn admit(
    budget: &Budget,
    identity: &str,
    id: SessionId,
) -> Result<SessionSlot, Rejection> {
    admit_as(budget, identity, &session_key(id)).await
}

/// [`admit`] under a key that is the same on every replica (a call's):
/// admitting a key the store already counts renews it, whatever the limits.
pub(crate) async fn admit_as(
    budget: &Budget,
    identity: &str,
    key: &str,
) -> Result<SessionSlot, Rejection> {
    budget.admit(identity, key).await.map_err(rejection)
}

/// Refuses a session that may open on a model its price table cannot price
/// (under [`UnknownModel::Refuse`](super::UnknownModel::Refuse)) when
/// `identity` has a money budget: `403` (`model_not_priced`), before
/// anything is dialled.
pub(crate) fn priced<'a>(
    budget: &Budget,
    identity: &str,
    mut models: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), Rejection> {
    let money = budget
        .limits(identity)
        .budgets()
        .iter()
        .any(|limit| limit.meter() == Meter::Money);
    if !money {
        return Ok(());
    }
    match models.find_map(|(provider, model)| budget.unpriced(provider, model)) {
        None => Ok(()),
        Some(unpriced) => Err(Rejection::new(
            StatusCode::FORBIDDEN,
            ErrorType::Permission,
            "model_not_priced",
            format!(
                "{unpriced}: sessions on it cannot be held to a money budget; ask the operator to price it"
            ),
        )
        .with_param("model")),
    }
}

/// The session's id in the store: unique among every replica's sessions.
fn session_key(id: SessionId) -> String {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        // Randomly keyed by the standard library, mixed with the process.
        RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
    });
    format!("{process:016x}-{id}")
}

fn rejection(error: BudgetError) -> Rejection {
    let kind = match &error {
        BudgetError::Refused(refusal) if refusal.code() == "insufficient_quota" => {
            ErrorType::InsufficientQuota
        }
        BudgetError::Refused(_) => ErrorType::RateLimit,
        BudgetError::Unavailable(_) => ErrorType::Server,
    };
    if let BudgetError::Unavailable(cause) = &error {
        tracing::warn!(%cause, "budget store unavailable: session refused");
    }
    let rejection = Rejection::new(error.status(), kind, error.code(), error.to_string());
    match error.retry_after_secs() {
        Some(seconds) => rejection.retry_after(seconds),
        None => rejection,
    }
}
