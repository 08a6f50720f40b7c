//! A client's own sideband, `/v1/realtime?call_id=gw_call_…`: relayed to
//! the provider's sideband of the call like any session.

use http::request::Parts;
use http::{HeaderMap, StatusCode};
use url::form_urlencoded;

use super::caller::store_failed;
use super::config::WebRtc;
use super::resolve::provider_calls;
use super::store::CallRecord;
use crate::admission::Identity;
use crate::deployment::Connected;
use crate::error::{ErrorType, Rejection};
use crate::layer::Config;
use crate::provider::Protocol;

/// The gateway call id a realtime upgrade asks to attach to, if any.
pub(crate) fn requested_call(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "call_id")
        .map(|(_, id)| id.into_owned())
}

/// The call `id`, or `404`.
pub(crate) async fn find_call(webrtc: &WebRtc, id: &str) -> Result<CallRecord, Rejection> {
    webrtc
        .store
        .get_call(id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| {
            Rejection::new(
                StatusCode::NOT_FOUND,
                ErrorType::InvalidRequest,
                "call_not_found",
                "No such call (it ended, or never existed).",
            )
            .with_param("call_id")
        })
}

/// Dials the provider's sideband of `call` for its owner's session.
pub(crate) async fn connect(
    config: &Config,
    parts: &Parts,
    identity: &Identity,
    call: &CallRecord,
    forwarded: HeaderMap,
) -> Result<Connected, Rejection> {
    let selector = format!("{}/{}", call.provider, call.model);
    let (target, calls) = provider_calls(config, &selector, parts, identity).await?;
    let upstream = config
        .dialer
        .dial(
            calls.sideband(&call.provider_call_id),
            forwarded,
            config.dialer.timeout,
        )
        .await?;
    Ok(Connected {
        upstream,
        protocol: Protocol::OpenAiRealtime,
        target,
        intent: None,
        pcm_input_rate: 24_000,
        pcm_input_rates: vec![24_000],
        secrets: calls.secrets().to_vec(),
        attempts: Vec::new(),
        slot: None,
    })
}
