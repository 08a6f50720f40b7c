//! The locked session of a call, re-applied after anyone changes it.

use serde_json::{Map, Value, json};

use crate::hooks::{Event, Hook, HookContext, Interest, Verdict};

/// Watches a call's sideband for `session.updated` (a browser may send
/// `session.update` on its data channel, which the gateway never sees) and
/// answers any that departs from the call's locked session with a
/// `session.update` that restores it.
///
/// Only the locked fields are compared, each as a subset (a provider may
/// add defaults). If the provider's answer to the gateway's own update
/// still differs (it normalises a value), the hook does not insist until
/// the session changes again, so the two never loop.
pub(crate) struct CallLock {
    locked: Map<String, Value>,
    awaiting_own: bool,
}

impl CallLock {
    /// Locks the fields of `session` other than `model` and `type`.
    pub(crate) fn new(session: &Value) -> Self {
        let mut locked = session.as_object().cloned().unwrap_or_default();
        locked.remove("model");
        locked.remove("type");
        Self {
            locked,
            awaiting_own: false,
        }
    }

    fn holds(&self, session: &Value) -> bool {
        self.locked.iter().all(|(key, value)| {
            session
                .get(key)
                .is_some_and(|actual| contains(actual, value))
        })
    }
}

/// Whether `actual` has every member of `wanted` (recursively for objects).
fn contains(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(actual), Value::Object(wanted)) => wanted
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|a| contains(a, value))),
        (actual, wanted) => actual == wanted,
    }
}

impl Hook for CallLock {
    fn interest(&self) -> Interest {
        Interest::new().upstream_events(["session.updated"])
    }

    fn on_event(&mut self, event: Event, cx: &mut HookContext<'_>) -> Verdict {
        if self.locked.is_empty() {
            return Verdict::forward(event);
        }
        let Some(session) = event
            .to_json()
            .and_then(|json| json.get("session").cloned())
        else {
            return Verdict::forward(event);
        };
        let own_answer = std::mem::take(&mut self.awaiting_own);
        if !self.holds(&session) {
            if own_answer {
                tracing::warn!(
                    "the provider changed the locked session of a call; not re-applying it again"
                );
            } else {
                let mut restore = self.locked.clone();
                restore.insert("type".into(), "realtime".into());
                cx.reply(Event::json(
                    &json!({"type": "session.update", "session": restore}),
                ));
                self.awaiting_own = true;
            }
        }
        Verdict::forward(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_hold() {
        let lock = CallLock::new(&json!({
            "model": "m", "type": "realtime", "instructions": "Be brief.",
            "audio": {"output": {"voice": "marin"}}
        }));
        assert!(lock.holds(&json!({
            "model": "other", "instructions": "Be brief.",
            "audio": {"output": {"voice": "marin", "speed": 1.0}}
        })));
        assert!(
            !lock.holds(
                &json!({"instructions": "Be long.", "audio": {"output": {"voice": "marin"}}})
            )
        );
        assert!(!lock.holds(&json!({"instructions": "Be brief."})));
    }
}
