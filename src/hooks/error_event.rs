//! [`ErrorEvent`]: the OpenAI-shaped `error` event hooks answer clients with.

use std::borrow::Cow;

use serde::Serialize;

use super::event::Event;

/// An OpenAI realtime `error` event, as the gateway sends it to a client:
///
/// ```json
/// {"type":"error","event_id":"event_gateway_CODE","error":{"type":"…","code":"…","message":"…","param":null,"event_id":"…"}}
/// ```
///
/// `error.event_id` names the client event it answers, when there is one.
///
/// # Example
///
/// ```
/// use tower_realtime::hooks::{ErrorEvent, Event};
///
/// let refused = Event::text(r#"{"type":"conversation.item.delete","event_id":"evt_7"}"#);
/// let error = ErrorEvent::invalid_request("event_not_allowed", "not here")
///     .answering(&refused)
///     .to_event();
/// let json = error.to_json().unwrap();
/// assert_eq!(json["type"], "error");
/// assert_eq!(json["error"]["code"], "event_not_allowed");
/// assert_eq!(json["error"]["event_id"], "evt_7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEvent {
    kind: Cow<'static, str>,
    code: Cow<'static, str>,
    message: String,
    param: Option<String>,
    event_id: Option<String>,
}

impl ErrorEvent {
    /// An error of OpenAI error type `kind` (`invalid_request_error`,
    /// `server_error`, `insufficient_quota`, …) with a machine-readable `code`.
    pub fn new(
        kind: impl Into<Cow<'static, str>>,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            code: code.into(),
            message: message.into(),
            param: None,
            event_id: None,
        }
    }

    /// An `invalid_request_error`.
    pub fn invalid_request(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new("invalid_request_error", code, message)
    }

    /// Names the client event this error answers (its `event_id`, if it has one).
    pub fn answering(mut self, event: &Event) -> Self {
        self.event_id = event.event_id();
        self
    }

    /// Names the parameter at fault.
    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// The error's `code`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The event, written with its members in the order above.
    pub fn to_event(&self) -> Event {
        Event::text(self.to_json_string())
    }

    pub(crate) fn to_json_string(&self) -> String {
        let event = Wire {
            kind: "error",
            event_id: format!("event_gateway_{}", self.code),
            error: WireError {
                kind: &self.kind,
                code: &self.code,
                message: &self.message,
                param: self.param.as_deref(),
                event_id: self.event_id.as_deref(),
            },
        };
        serde_json::to_string(&event).expect("strings always serialize")
    }
}

/// The event as written; serde keeps the declaration order.
#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    event_id: String,
    error: WireError<'a>,
}

#[derive(Serialize)]
struct WireError<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    code: &'a str,
    message: &'a str,
    param: Option<&'a str>,
    event_id: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_in_a_fixed_order_and_escaped() {
        let event = ErrorEvent::new("server_error", "x", "say \"hi\"").param("a.b");
        assert_eq!(
            event.to_json_string(),
            r#"{"type":"error","event_id":"event_gateway_x","error":{"type":"server_error","code":"x","message":"say \"hi\"","param":"a.b","event_id":null}}"#
        );
    }
}
