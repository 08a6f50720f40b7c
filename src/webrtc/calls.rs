//! `POST /v1/realtime/calls`: the SDP offer through the gateway.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::request::Parts;
use http::{HeaderName, Response, StatusCode};
use serde_json::Value;
use url::form_urlencoded;

use super::caller::{presented_secret, store_failed, use_secret};
use super::config::WebRtc;
use super::offer::Offer;
use super::resolve::provider_calls;
use super::sideband::{Supervisor, admit_budget, attach};
use super::store::CallRecord;
use super::token::new_call_id;
use crate::admission::{Identity, admit};
use crate::error::{ErrorType, Rejection};
use crate::hooks::SessionId;
use crate::layer::Config;
use crate::request_id::request_id;
use crate::upstream::headers::forwarded;

/// Forwards a client's offer to the provider with the gateway's credential
/// and the call's locked session, attaches the gateway's sideband, and
/// answers `201` with the SDP answer and the gateway's call id.
pub(crate) async fn create(
    config: &Arc<Config>,
    webrtc: &WebRtc,
    parts: &Parts,
    body: &Bytes,
) -> Result<Response<Bytes>, Rejection> {
    let offer = Offer::parse(
        parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok()),
        body,
    )?;
    if offer.sdp.len() > webrtc.max_sdp_bytes {
        return Err(too_large(webrtc.max_sdp_bytes));
    }
    let (caller, taken) = match presented_secret(parts) {
        Some(token) => {
            let (secret, taken) = use_secret(webrtc, parts, token).await?;
            let caller = Caller {
                identity: Identity::new(secret.identity.as_str()),
                selector: format!("{}/{}", secret.provider, secret.model),
                session: secret.session,
                token: Some(token.to_owned()),
            };
            (caller, Some(taken))
        }
        None => {
            let identity = admit(config, parts).await?;
            let mut session = offer
                .session
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default()));
            let selector = session
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| query_model(parts.uri.query()))
                .ok_or_else(|| {
                    Rejection::bad_request(
                        "missing_model",
                        "name the model in `session.model` or `?model=`, e.g. openai/gpt-realtime",
                    )
                    .with_param("model")
                })?;
            if let Some(object) = session.as_object_mut() {
                object
                    .entry("type")
                    .or_insert_with(|| Value::from("realtime"));
            }
            let caller = Caller {
                identity,
                selector,
                session,
                token: None,
            };
            (caller, None)
        }
    };
    let created = set_up(config, webrtc, parts, &offer, caller).await;
    if let Some(taken) = taken {
        match &created {
            Ok(_) => taken.keep(),
            // A failed call does not spend a use of its client secret.
            Err(_) => taken.give_back().await,
        }
    }
    created
}

/// Who places a call, and what for.
struct Caller {
    identity: Identity,
    /// The model as the client names it (`openai/gpt-realtime`).
    selector: String,
    session: Value,
    /// The client secret placing the call, if one does.
    token: Option<String>,
}

/// Sets `caller`'s call up with `offer`: the provider's answer, the
/// gateway's sideband, the stored call.
async fn set_up(
    config: &Arc<Config>,
    webrtc: &WebRtc,
    parts: &Parts,
    offer: &Offer,
    caller: Caller,
) -> Result<Response<Bytes>, Rejection> {
    let Caller {
        identity,
        selector,
        session,
        token,
    } = caller;
    let (target, calls) = provider_calls(config, &selector, parts, &identity).await?;
    let mut session = session;
    session["model"] = Value::from(target.model.clone());

    // Admitted under the budget before the provider hears of the call.
    let id = SessionId::next();
    let call_id = new_call_id();
    let priced = (target.provider_name.as_str(), target.model.as_str());
    let slot = admit_budget(config, priced, identity.name(), &call_id).await?;
    let started = Instant::now();
    let request_id = request_id(&parts.headers);
    let forwarded = forwarded(&parts.headers, &config.forward_headers, &request_id);
    let (answer, provider_call_id) = calls
        .create(
            &offer.sdp,
            &session,
            &passed_query(parts.uri.query()),
            forwarded.clone(),
        )
        .await?;
    let call = CallRecord {
        id: call_id,
        provider_call_id,
        provider: target.provider_name.clone(),
        model: target.model.clone(),
        identity: identity.name().to_owned(),
        session,
        token,
    };
    let supervised = match attach(config, webrtc, &calls, &call.provider_call_id, &forwarded).await
    {
        Ok(socket) => Some(socket),
        Err(refusal) if webrtc.unsupervised => {
            tracing::warn!(code = %refusal.code, "the call's sideband did not attach; the call goes on unsupervised");
            None
        }
        Err(refusal) => {
            tracing::warn!(code = %refusal.code, "the call's sideband did not attach; hanging the call up");
            if let Err(hangup) = calls.action(&call.provider_call_id, "hangup", None).await {
                tracing::warn!(code = %hangup.code, "hanging up the unsupervised call failed");
            }
            return Err(Rejection::new(
                StatusCode::BAD_GATEWAY,
                ErrorType::Upstream,
                "sideband_unavailable",
                format!(
                    "the gateway could not supervise the call ({}), so it was hung up",
                    refusal.code
                ),
            ));
        }
    };
    // Claimed before it is stored: no other replica takes it over meanwhile.
    let stored = async {
        if supervised.is_some() {
            webrtc
                .store
                .claim_sideband(&call.id, &webrtc.replica, webrtc.lease)
                .await?;
        }
        webrtc.store.put_call(&call, webrtc.call_ttl).await
    };
    if let Err(error) = stored.await {
        // A call nobody can find again cannot be hung up later: end it now.
        let _ = calls.action(&call.provider_call_id, "hangup", None).await;
        return Err(store_failed(error));
    }
    let gateway_id = call.id.clone();
    if let Some(socket) = supervised {
        Supervisor {
            config: Arc::clone(config),
            webrtc: webrtc.clone(),
            call,
            calls,
            socket,
            model_label: target.model_label.clone(),
            request_id: request_id.to_str().unwrap_or_default().to_owned(),
            connect_time: started.elapsed(),
            id,
            budget: slot,
        }
        .spawn();
    }
    tracing::info!(
        call = %gateway_id,
        identity = identity.name(),
        provider = %target.provider_name,
        model = %target.model,
        "call created"
    );
    let mut response = Response::new(answer);
    *response.status_mut() = StatusCode::CREATED;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
    headers.insert(
        LOCATION,
        HeaderValue::from_str(&format!("{}/calls/{gateway_id}", config.path))
            .expect("a valid header"),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// The query parameters of an offer that go upstream: Azure's
/// `webrtcfilter` (which keeps instructions off the browser's data channel).
fn passed_query(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "webrtcfilter")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .take(1)
        .collect()
}

fn query_model(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "model")
        .map(|(_, value)| value.into_owned())
        .filter(|model| !model.is_empty())
}

/// `413` for a body or an offer over the limit.
pub(crate) fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorType::InvalidRequest,
        "request_too_large",
        format!("the request is larger than {limit} bytes"),
    )
}
