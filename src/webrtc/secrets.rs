//! `POST /v1/realtime/client_secrets`: a gateway client secret for a browser.

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::caller::{now_unix, store_failed};
use super::config::{WebRtc, clamp_ttl};
use super::resolve::provider_calls;
use super::store::SecretRecord;
use super::token::new_token;
use crate::admission::admit;
use crate::error::Rejection;
use crate::layer::Config;

/// How long a secret is remembered after it expires, so that its use is
/// refused as expired rather than unknown.
const EXPIRED_GRACE: Duration = Duration::from_secs(300);

/// Mints a client secret bound to the caller's identity, the routed model,
/// the session configuration and optionally an origin and a number of uses.
pub(crate) async fn mint(
    config: &Config,
    webrtc: &WebRtc,
    parts: &Parts,
    body: &Bytes,
) -> Result<Response<Bytes>, Rejection> {
    let identity = admit(config, parts).await?;
    let request: Value = serde_json::from_slice(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            Rejection::bad_request("invalid_json", "the request body must be a JSON object")
        })?;
    let ttl = match request.pointer("/expires_after") {
        None | Some(Value::Null) => webrtc.secret_ttl,
        Some(after) => {
            if after
                .get("anchor")
                .is_some_and(|anchor| anchor != "created_at")
            {
                return Err(Rejection::bad_request(
                    "invalid_expires_after",
                    "`expires_after.anchor` must be `created_at`",
                )
                .with_param("expires_after.anchor"));
            }
            match after.get("seconds").map(Value::as_u64) {
                None => webrtc.secret_ttl,
                Some(Some(seconds)) => clamp_ttl(seconds),
                Some(None) => {
                    return Err(Rejection::bad_request(
                        "invalid_expires_after",
                        "`expires_after.seconds` must be a whole number of seconds",
                    )
                    .with_param("expires_after.seconds"));
                }
            }
        }
    };
    let mut session = match request.get("session") {
        Some(Value::Object(session)) => session.clone(),
        _ => {
            return Err(Rejection::bad_request(
                "missing_session",
                "`session` with a `model` is required",
            )
            .with_param("session"));
        }
    };
    let selector = session
        .get("model")
        .and_then(Value::as_str)
        .filter(|model| !model.is_empty())
        .ok_or_else(|| {
            Rejection::bad_request(
                "missing_model",
                "`session.model` is required, e.g. openai/gpt-realtime",
            )
            .with_param("session.model")
        })?
        .to_owned();
    let (target, _calls) = provider_calls(config, &selector, parts, &identity).await?;
    session.insert("model".into(), target.model.clone().into());
    session
        .entry("type")
        .or_insert_with(|| Value::from("realtime"));
    let session = Value::Object(session);
    let origin = match request.get("origin") {
        None | Some(Value::Null) => None,
        Some(Value::String(origin)) => Some(origin.trim().to_ascii_lowercase()),
        Some(_) => {
            return Err(
                Rejection::bad_request("invalid_origin", "`origin` must be a string")
                    .with_param("origin"),
            );
        }
    };
    let uses_left = match request.get("max_uses") {
        None | Some(Value::Null) => None,
        Some(uses) => Some(
            uses.as_u64()
                .filter(|uses| *uses >= 1)
                .and_then(|uses| u32::try_from(uses).ok())
                .ok_or_else(|| {
                    Rejection::bad_request("invalid_max_uses", "`max_uses` must be at least 1")
                        .with_param("max_uses")
                })?,
        ),
    };
    let expires_at = now_unix() + ttl.as_secs();
    let record = SecretRecord {
        identity: identity.name().to_owned(),
        provider: target.provider_name.clone(),
        model: target.model.clone(),
        session: session.clone(),
        origin,
        uses_left,
        expires_at,
    };
    let token = new_token();
    webrtc
        .store
        .put_secret(&token, &record, ttl + EXPIRED_GRACE)
        .await
        .map_err(store_failed)?;
    tracing::info!(
        identity = identity.name(),
        provider = %target.provider_name,
        model = %target.model,
        ttl_seconds = ttl.as_secs(),
        "client secret minted"
    );
    let body = json!({"value": token, "expires_at": expires_at, "session": session});
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
