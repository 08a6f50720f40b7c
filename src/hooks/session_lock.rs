//! Session defaults and locks: settings the application fixes and clients
//! cannot override.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::event::{Direction, Event};
use super::hook::{Hook, HookContext, NewHook};
use super::interest::Interest;
use super::verdict::Verdict;
use crate::usage::SessionInfo;

/// Settings a session starts with and keeps, whatever the client sends.
///
/// When the upstream announces the session (`session.created`), the hook
/// sends it a `session.update` with the locked settings. After that, every
/// client `session.update` and `response.create` is rewritten before it goes
/// upstream: locked `voice` and `tools` replace the client's, the
/// instructions prefix is put in front of the client's `instructions`, and
/// `max_output_tokens` (`max_response_output_tokens` in the beta schema) is
/// capped, `"inf"` included. A rewritten event is re-serialised from what
/// was checked. Both the GA schema (`audio.output.voice`) and the beta
/// schema (`voice`) are handled.
///
/// # Example
///
/// ```
/// use tower_realtime::hooks::SessionLock;
/// use tower_realtime::{Providers, RealtimeLayer};
///
/// let layer = RealtimeLayer::new(Providers::new()).hook(
///     SessionLock::new()
///         .instructions_prefix("You are the support agent of Example Inc. ")
///         .voice("marin")
///         .max_output_tokens(1_024),
/// );
/// # drop(layer);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SessionLock {
    locks: Arc<Locks>,
}

#[derive(Debug, Clone, Default)]
struct Locks {
    instructions_prefix: Option<String>,
    voice: Option<String>,
    tools: Option<Value>,
    max_output_tokens: Option<u64>,
}

impl SessionLock {
    /// No locks yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn edit(mut self, change: impl FnOnce(&mut Locks)) -> Self {
        change(Arc::make_mut(&mut self.locks));
        self
    }

    /// Text put in front of every `instructions` the client sets (and the
    /// session's instructions when it starts).
    pub fn instructions_prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.edit(|locks| locks.instructions_prefix = Some(prefix))
    }

    /// The voice of every response.
    pub fn voice(self, voice: impl Into<String>) -> Self {
        let voice = voice.into();
        self.edit(|locks| locks.voice = Some(voice))
    }

    /// The tools of the session (a JSON array of tool definitions).
    pub fn tools(self, tools: Value) -> Self {
        self.edit(|locks| locks.tools = Some(tools))
    }

    /// The most output tokens of one response.
    pub fn max_output_tokens(self, cap: u64) -> Self {
        self.edit(|locks| locks.max_output_tokens = Some(cap))
    }
}

impl NewHook for SessionLock {
    type Hook = SessionLock;

    fn new_session(&self, _session: &SessionInfo) -> Self {
        self.clone()
    }
}

impl Hook for SessionLock {
    fn interest(&self) -> Interest {
        Interest::new()
            .client_events(["session.update", "response.create"])
            .upstream_events(["session.created"])
    }

    fn on_event(&mut self, event: Event, cx: &mut HookContext<'_>) -> Verdict {
        let Some(mut json) = event.to_json() else {
            return Verdict::forward(event);
        };
        if cx.direction() == Direction::UpstreamToClient {
            // The GA schema nests the voice under `audio`.
            let ga = json.pointer("/session/audio").is_some();
            let mut session = Map::new();
            if ga {
                session.insert("type".into(), "realtime".into());
            }
            self.locks.apply(&mut session, ga, true);
            if session.len() > usize::from(ga) {
                cx.reply(Event::json(
                    &json!({"type": "session.update", "session": session}),
                ));
            }
            return Verdict::forward(event);
        }
        let (key, beta_cap) = match event.event_type() {
            Some("session.update") => ("session", "max_response_output_tokens"),
            _ => ("response", "max_output_tokens"),
        };
        if let Some(object) = json.as_object_mut() {
            let target = object
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(target) = target.as_object_mut() {
                self.locks
                    .apply(target, target.contains_key("audio"), false);
                if let Some(cap) = self.locks.max_output_tokens {
                    for field in ["max_output_tokens", beta_cap] {
                        if let Some(value) = target.get_mut(field) {
                            *value = Value::from(value.as_u64().map_or(cap, |v| v.min(cap)));
                        }
                    }
                    if key == "response" {
                        target
                            .entry("max_output_tokens")
                            .or_insert(Value::from(cap));
                    }
                }
            }
        }
        Verdict::forward(Event::json(&json))
    }
}

impl Locks {
    /// Applies the locks to a session or response object. `start`: the
    /// session's first update, which sets every lock.
    fn apply(&self, object: &mut Map<String, Value>, ga: bool, start: bool) {
        if let Some(prefix) = &self.instructions_prefix {
            match object.get("instructions").and_then(Value::as_str) {
                Some(text) if !text.starts_with(prefix.as_str()) => {
                    object.insert("instructions".into(), format!("{prefix}{text}").into());
                }
                None if start => {
                    object.insert("instructions".into(), prefix.clone().into());
                }
                _ => {}
            }
        }
        if let Some(voice) = &self.voice {
            if start || object.contains_key("voice") {
                if ga {
                    object.remove("voice");
                } else {
                    object.insert("voice".into(), voice.clone().into());
                }
            }
            if ga {
                let output = object
                    .entry("audio")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|audio| audio.entry("output").or_insert_with(|| json!({})));
                if let Some(Value::Object(output)) = output
                    && (start || output.contains_key("voice"))
                {
                    output.insert("voice".into(), voice.clone().into());
                }
            }
        }
        if let Some(tools) = &self.tools
            && (start || object.contains_key("tools"))
        {
            object.insert("tools".into(), tools.clone());
        }
        if let (Some(cap), true) = (self.max_output_tokens, start) {
            let field = if ga {
                "max_output_tokens"
            } else {
                "max_response_output_tokens"
            };
            object.insert(field.into(), cap.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::testing::{decide, decide_in};

    fn lock() -> SessionLock {
        SessionLock::new()
            .instructions_prefix("Be kind. ")
            .voice("marin")
            .tools(json!([]))
            .max_output_tokens(100)
    }

    #[test]
    fn clients_cannot_override_the_locks() {
        let mut lock = lock();
        let out = decide(
            &mut lock,
            json!({"type": "session.update", "session": {"type": "realtime", "instructions": "Be rude.",
                "audio": {"output": {"voice": "ash"}}, "tools": [{"type": "function", "name": "f"}],
                "max_output_tokens": "inf"}}),
        );
        let session = &out.forwarded[0]["session"];
        assert_eq!(session["instructions"], "Be kind. Be rude.");
        assert_eq!(session["audio"]["output"]["voice"], "marin");
        assert_eq!(session["tools"], json!([]));
        assert_eq!(session["max_output_tokens"], 100);
        let out = decide(
            &mut lock,
            json!({"type": "session.update", "session": {"voice": "ash", "max_response_output_tokens": 50}}),
        );
        assert_eq!(out.forwarded[0]["session"]["voice"], "marin");
        assert_eq!(
            out.forwarded[0]["session"]["max_response_output_tokens"],
            50
        );
        let out = decide(
            &mut lock,
            json!({"type": "response.create", "event_id": "e"}),
        );
        assert_eq!(
            out.forwarded[0],
            json!({"type": "response.create", "event_id": "e", "response": {"max_output_tokens": 100}})
        );
        let out = decide(
            &mut lock,
            json!({"type": "response.create", "response": {"max_output_tokens": 4096, "instructions": "Shout."}}),
        );
        assert_eq!(out.forwarded[0]["response"]["max_output_tokens"], 100);
        assert_eq!(
            out.forwarded[0]["response"]["instructions"],
            "Be kind. Shout."
        );
    }

    #[test]
    fn the_session_starts_with_the_locks() {
        let mut lock = lock();
        let created = json!({"type": "session.created", "session": {"id": "s", "audio": {}}});
        let out = decide_in(
            &mut lock,
            Direction::UpstreamToClient,
            Event::json(&created),
        );
        assert_eq!(out.forwarded, std::slice::from_ref(&created));
        assert_eq!(
            out.replied,
            [
                json!({"type": "session.update", "session": {"type": "realtime", "instructions": "Be kind. ",
                "audio": {"output": {"voice": "marin"}}, "tools": [], "max_output_tokens": 100}})
            ]
        );
        // Nothing locked, nothing sent.
        let mut none = SessionLock::new();
        let out = decide_in(
            &mut none,
            Direction::UpstreamToClient,
            Event::json(&created),
        );
        assert!(out.replied.is_empty());
    }
}
