//! `POST /v1/realtime/calls/{id}/{hangup|accept|reject|refer}` by the
//! call's owner, translated to the provider's call id.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::Value;

use super::attach::find_call;
use super::caller::{call_owner, store_failed};
use super::config::WebRtc;
use super::resolve::provider_calls;
use super::sideband::release;
use crate::error::Rejection;
use crate::layer::Config;

/// What a client may do to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Hangup,
    Accept,
    Reject,
    Refer,
}

impl Action {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "hangup" => Self::Hangup,
            "accept" => Self::Accept,
            "reject" => Self::Reject,
            "refer" => Self::Refer,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Hangup => "hangup",
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Refer => "refer",
        }
    }
}

/// Runs `action` on call `id` for its owner; `404` for an unknown call.
pub(crate) async fn act(
    config: &Arc<Config>,
    webrtc: &WebRtc,
    parts: &Parts,
    id: &str,
    action: Action,
    body: &Bytes,
) -> Result<Response<Bytes>, Rejection> {
    let call = find_call(webrtc, id).await?;
    let identity = call_owner(config, parts, &call).await?;
    let mut json = if body.is_empty() {
        None
    } else {
        Some(serde_json::from_slice::<Value>(body).map_err(|_| {
            Rejection::bad_request("invalid_json", "the request body is not valid JSON")
        })?)
    };
    if action == Action::Accept {
        // An accepted call gets the locked session, as a created one does.
        json = Some(call.session.clone());
    }
    let selector = format!("{}/{}", call.provider, call.model);
    let (_target, calls) = provider_calls(config, &selector, parts, &identity).await?;
    calls
        .action(&call.provider_call_id, action.as_str(), json.as_ref())
        .await?;
    if matches!(action, Action::Hangup | Action::Reject | Action::Refer) {
        webrtc.store.remove_call(id).await.map_err(store_failed)?;
        release(webrtc, id);
    }
    tracing::info!(call = %id, action = action.as_str(), "call action");
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}
