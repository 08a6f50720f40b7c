//! Why a session ended and what each side is told.

use std::time::Duration;

use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Utf8Bytes};

use super::pump::Stop;
use crate::hooks::{Close, ErrorEvent};
use crate::outcome::{ClosedBy, SessionEnd};

/// The close reason a client gets when its upstream went away. The code is
/// 1011: 1014 ("bad gateway") is registered, but tungstenite-based clients
/// read it as a protocol error (1002) and lose the reason.
pub(crate) const UPSTREAM_LOST: &str = "upstream connection lost";

/// One of the two peers of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Upstream,
}

/// A decision of the gateway that ends a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    Idle(Duration),
    MaxDuration(Duration),
    Shutdown,
}

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum Ending {
    /// A peer sent a close frame; it is mirrored to the other side.
    Closed { by: Side, frame: Option<CloseFrame> },
    /// A peer went away without a close frame (EOF, reset, failed write, no pong).
    Vanished { side: Side, detail: String },
    /// A peer broke the protocol or a size limit.
    Violation {
        side: Side,
        code: CloseCode,
        detail: String,
    },
    /// The gateway ended the session.
    Policy(Policy),
    /// A hook or a `SessionControl` ended the session.
    Hook(Close),
}

impl Ending {
    /// Classifies why the direction reading from `source` stopped.
    pub(crate) fn from_stop(source: Side, stop: Stop) -> Self {
        let destination = match source {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        };
        match stop {
            Stop::SourceClosed(frame) => Ending::Closed { by: source, frame },
            Stop::SourceFailed(error) => Self::from_read_error(source, error),
            Stop::DestinationFailed(error) => Ending::Vanished {
                side: destination,
                detail: error.to_string(),
            },
            Stop::Ended(close) => Ending::Hook(close),
        }
    }

    fn from_read_error(side: Side, error: Option<WsError>) -> Self {
        let vanished = |detail: String| Ending::Vanished { side, detail };
        let violation = |code, detail: String| Ending::Violation { side, code, detail };
        match error {
            None | Some(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                vanished("connection closed without a close frame".to_owned())
            }
            Some(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                vanished("connection reset without a close frame".to_owned())
            }
            Some(WsError::Capacity(error)) => violation(CloseCode::Size, error.to_string()),
            Some(WsError::Utf8(error)) => {
                violation(CloseCode::Invalid, format!("invalid UTF-8: {error}"))
            }
            Some(WsError::Protocol(error)) => violation(CloseCode::Protocol, error.to_string()),
            Some(error) => vanished(error.to_string()),
        }
    }

    /// Whether the upstream is gone or broken (nothing more can be asked
    /// of it).
    pub(crate) fn upstream_lost(&self) -> bool {
        matches!(
            self,
            Ending::Closed {
                by: Side::Upstream,
                ..
            } | Ending::Vanished {
                side: Side::Upstream,
                ..
            } | Ending::Violation {
                side: Side::Upstream,
                ..
            }
        )
    }

    /// What the session summary reports.
    pub(crate) fn summary(&self) -> SessionEnd {
        let by = |side: &Side| match side {
            Side::Client => ClosedBy::Client,
            Side::Upstream => ClosedBy::Upstream,
        };
        match self {
            Ending::Closed { by: side, frame } => SessionEnd {
                closed_by: by(side),
                code: frame.as_ref().map_or(1005, |f| u16::from(f.code)),
                reason: frame
                    .as_ref()
                    .map(|f| f.reason.to_string())
                    .unwrap_or_default(),
                error: None,
            },
            Ending::Vanished { side, detail } => SessionEnd {
                closed_by: by(side),
                code: 1006,
                reason: String::new(),
                error: Some(detail.clone()),
            },
            Ending::Violation { side, code, detail } => SessionEnd {
                closed_by: by(side),
                code: u16::from(*code),
                reason: String::new(),
                error: Some(detail.clone()),
            },
            Ending::Policy(policy) => {
                let (code, reason) = policy_close(*policy);
                SessionEnd {
                    closed_by: ClosedBy::Gateway,
                    code: u16::from(code),
                    reason: reason.to_owned(),
                    error: None,
                }
            }
            Ending::Hook(close) => SessionEnd {
                closed_by: ClosedBy::Hook,
                code: close.code,
                reason: truncate_reason(&close.reason),
                error: None,
            },
        }
    }

    /// What each side gets.
    pub(crate) fn plan(&self) -> Plan {
        match self {
            Ending::Closed { by, frame } => Plan::mirror(*by, frame.clone()),
            Ending::Vanished {
                side: Side::Client, ..
            } => Plan {
                client: Action::Drop,
                upstream: Action::close(CloseCode::Error, "client connection lost"),
                client_event: None,
            },
            Ending::Vanished {
                side: Side::Upstream,
                detail,
            } => Plan {
                client: Action::close(CloseCode::Error, UPSTREAM_LOST),
                upstream: Action::Drop,
                client_event: Some(error_event(
                    "server_error",
                    "upstream_connection_lost",
                    format!(
                        "The connection to the upstream provider was lost ({detail}); \
                         reconnect to continue."
                    ),
                )),
            },
            Ending::Violation { side, code, detail } => {
                let other_code = if *code == CloseCode::Size {
                    CloseCode::Size
                } else {
                    CloseCode::Error
                };
                let (client, upstream) = match side {
                    Side::Client => (
                        Action::close(*code, detail),
                        Action::close(other_code, &format!("client: {detail}")),
                    ),
                    Side::Upstream => (
                        Action::close(other_code, &format!("upstream: {detail}")),
                        Action::close(*code, detail),
                    ),
                };
                Plan {
                    client,
                    upstream,
                    client_event: None,
                }
            }
            Ending::Policy(policy) => {
                let (code, reason) = policy_close(*policy);
                Plan {
                    client: Action::close(code, reason),
                    upstream: Action::close(code, reason),
                    client_event: Some(policy_event(*policy)),
                }
            }
            Ending::Hook(close) => {
                let code = CloseCode::from(close.code);
                Plan {
                    client: Action::close(code, &close.reason),
                    upstream: Action::close(code, &close.reason),
                    client_event: close
                        .error
                        .as_ref()
                        .map(|error| Utf8Bytes::from(error.to_json_string())),
                }
            }
        }
    }
}

/// What to do with one side when a session ends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Send this close frame and wait (briefly) for the peer's answer.
    Close(Option<CloseFrame>),
    /// The peer sent a close frame: flush the automatic answer.
    Answer,
    /// The peer is gone: just drop the socket.
    Drop,
}

impl Action {
    fn close(code: CloseCode, reason: &str) -> Self {
        Action::Close(Some(close_frame(code, reason)))
    }
}

/// A close frame whose reason is cut to fit.
fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from(truncate_reason(reason)),
    }
}

/// The close handling of both sides, plus an `error` event for the client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) client: Action,
    pub(crate) upstream: Action,
    pub(crate) client_event: Option<Utf8Bytes>,
}

impl Plan {
    fn mirror(by: Side, frame: Option<CloseFrame>) -> Self {
        let frame = match frame {
            // 1002 complains about the hop it arrived on (tungstenite also
            // answers an invalid close code with it): the other side is told
            // that this peer failed, not that it broke the protocol itself.
            Some(frame) if frame.code == CloseCode::Protocol => {
                let side = match by {
                    Side::Client => "client",
                    Side::Upstream => "upstream",
                };
                let reason = if frame.reason.is_empty() {
                    format!("{side}: protocol error")
                } else {
                    format!("{side}: protocol error: {}", frame.reason)
                };
                Some(close_frame(CloseCode::Error, &reason))
            }
            frame => frame,
        };
        let (client, upstream) = match by {
            Side::Client => (Action::Answer, Action::Close(frame)),
            Side::Upstream => (Action::Close(frame), Action::Answer),
        };
        Plan {
            client,
            upstream,
            client_event: None,
        }
    }
}

fn policy_close(policy: Policy) -> (CloseCode, &'static str) {
    match policy {
        Policy::Idle(_) => (CloseCode::Policy, "idle timeout"),
        Policy::MaxDuration(_) => (CloseCode::Policy, "maximum session duration reached"),
        Policy::Shutdown => (CloseCode::Away, "gateway shutting down"),
    }
}

/// The OpenAI-shaped `error` event the client receives before a policy close.
fn policy_event(policy: Policy) -> Utf8Bytes {
    let (kind, code, message) = match policy {
        Policy::Idle(after) => (
            "invalid_request_error",
            "idle_timeout",
            format!(
                "The session was idle for {} and was closed.",
                seconds(after)
            ),
        ),
        Policy::MaxDuration(limit) => (
            "invalid_request_error",
            "session_expired",
            format!(
                "The session hit the maximum duration of {}.",
                seconds(limit)
            ),
        ),
        Policy::Shutdown => (
            "server_error",
            "gateway_shutting_down",
            "The gateway is shutting down; reconnect to continue.".to_owned(),
        ),
    };
    error_event(kind, code, message)
}

/// An OpenAI-shaped `error` event from the gateway.
fn error_event(kind: &'static str, code: &'static str, message: String) -> Utf8Bytes {
    Utf8Bytes::from(ErrorEvent::new(kind, code, message).to_json_string())
}

fn seconds(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{} s", millis / 1000)
    } else {
        format!("{millis} ms")
    }
}

/// Close reasons are limited to 123 bytes; cut on a character boundary.
fn truncate_reason(reason: &str) -> String {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason.to_owned();
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_close_frames() {
        let frame = CloseFrame {
            code: CloseCode::Library(4001),
            reason: Utf8Bytes::from_static("bye"),
        };
        let plan = Ending::Closed {
            by: Side::Upstream,
            frame: Some(frame.clone()),
        }
        .plan();
        assert_eq!(plan.client, Action::Close(Some(frame)));
        assert_eq!(plan.upstream, Action::Answer);
    }

    #[test]
    fn a_protocol_error_close_is_not_mirrored() {
        let frame = CloseFrame {
            code: CloseCode::Protocol,
            reason: Utf8Bytes::from_static("Protocol violation"),
        };
        let plan = Ending::from_stop(Side::Client, Stop::SourceClosed(Some(frame))).plan();
        assert_eq!(plan.client, Action::Answer);
        assert_eq!(
            plan.upstream,
            Action::close(
                CloseCode::Error,
                "client: protocol error: Protocol violation"
            )
        );
    }

    #[test]
    fn vanished_upstream_is_an_error_event_then_1011_for_the_client() {
        let plan = Ending::from_stop(Side::Upstream, Stop::SourceFailed(None)).plan();
        assert_eq!(plan.upstream, Action::Drop);
        assert_eq!(plan.client, Action::close(CloseCode::Error, UPSTREAM_LOST));
        let event: serde_json::Value =
            serde_json::from_str(&plan.client_event.expect("an error event")).unwrap();
        assert_eq!(event["type"], "error");
        assert_eq!(event["error"]["type"], "server_error");
        assert_eq!(event["error"]["code"], "upstream_connection_lost");
        assert!(
            event["error"]["message"]
                .as_str()
                .unwrap()
                .contains("connection closed without a close frame"),
            "{event}"
        );
    }

    #[test]
    fn a_hook_ending_closes_both_sides_and_tells_the_client_why() {
        let close = Close::policy("budget exceeded").error(crate::hooks::ErrorEvent::new(
            "insufficient_quota",
            "budget_exceeded",
            "spent",
        ));
        let ending = Ending::from_stop(Side::Client, Stop::Ended(close));
        let plan = ending.plan();
        assert_eq!(
            plan.client,
            Action::close(CloseCode::Policy, "budget exceeded")
        );
        assert_eq!(plan.upstream, plan.client);
        let event: serde_json::Value =
            serde_json::from_str(plan.client_event.as_deref().unwrap()).unwrap();
        assert_eq!(event["error"]["code"], "budget_exceeded");
        let end = ending.summary();
        assert_eq!((end.closed_by, end.code), (ClosedBy::Hook, 1008));
        assert_eq!(end.reason, "budget exceeded");
    }

    #[test]
    fn reasons_fit_a_close_frame() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(&cut));
    }

    #[test]
    fn policy_event_is_an_openai_error_event_in_a_fixed_order() {
        assert_eq!(
            policy_event(Policy::Idle(Duration::from_secs(30))).as_str(),
            r#"{"type":"error","event_id":"event_gateway_idle_timeout","error":{"type":"invalid_request_error","code":"idle_timeout","message":"The session was idle for 30 s and was closed.","param":null,"event_id":null}}"#
        );
    }
}
