//! Who is calling a WebRTC endpoint: a gateway client secret, or a client
//! the admission hook admits.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use http::header::ORIGIN;
use http::request::Parts;

use super::config::WebRtc;
use super::store::{CallRecord, CallStore, SecretRecord, SecretUse};
use super::token::is_token;
use crate::admission::{Identity, admit, client_token};
use crate::error::{ErrorType, Rejection};
use crate::layer::Config;

/// Seconds since the Unix epoch.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// The gateway client secret the request presents, if it presents one.
pub(crate) fn presented_secret(parts: &Parts) -> Option<&str> {
    client_token(&parts.headers).filter(|token| is_token(token))
}

/// Checks the client secret `token` for a new call from this request and
/// takes one of its uses: `401` when unknown, expired or used up, `403`
/// from an origin it is not bound to.
pub(crate) async fn use_secret(
    webrtc: &WebRtc,
    parts: &Parts,
    token: &str,
) -> Result<(SecretRecord, TakenUse), Rejection> {
    let record = webrtc
        .store
        .get_secret(token)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| unauthorized("invalid_client_secret", "The client secret is not valid."))?;
    if record.expires_at <= now_unix() {
        return Err(unauthorized(
            "client_secret_expired",
            "The client secret has expired.",
        ));
    }
    if let Some(bound) = &record.origin {
        let origin = parts.headers.get(ORIGIN).and_then(|o| o.to_str().ok());
        if !origin.is_some_and(|origin| origin.eq_ignore_ascii_case(bound)) {
            return Err(forbidden(
                "origin_not_allowed",
                "The client secret may not be used from this origin.",
            ));
        }
    }
    match webrtc.store.use_secret(token).await.map_err(store_failed)? {
        SecretUse::Granted(record) => Ok((
            record,
            TakenUse {
                store: Arc::clone(&webrtc.store),
                token: Some(token.to_owned()),
            },
        )),
        SecretUse::UsedUp => Err(unauthorized(
            "client_secret_used_up",
            "The client secret has been used as many times as it allows.",
        )),
        SecretUse::Unknown => Err(unauthorized(
            "invalid_client_secret",
            "The client secret is not valid.",
        )),
    }
}

/// A use taken of a client secret for a call: given back unless the call
/// is set up, so that a call failing (or abandoned by its client) does not
/// spend it.
pub(crate) struct TakenUse {
    store: Arc<dyn CallStore>,
    token: Option<String>,
}

impl TakenUse {
    /// The call is set up: the use stays taken.
    pub(crate) fn keep(mut self) {
        self.token = None;
    }

    /// The call was not set up: the use is given back before the client
    /// hears so, so that it can retry at once.
    pub(crate) async fn give_back(mut self) {
        if let Some(token) = self.token.take() {
            refund(&*self.store, &token).await;
        }
    }
}

/// A request dropped before it was answered gives its use back too.
impl Drop for TakenUse {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = Arc::clone(&self.store);
            runtime.spawn(async move { refund(&*store, &token).await });
        }
    }
}

async fn refund(store: &dyn CallStore, token: &str) {
    if let Err(error) = store.refund_secret(token).await {
        tracing::warn!(%error, "a client secret's use could not be given back");
    }
}

/// The identity of a request about an existing `call`: the client secret
/// that created it, or a client the admission hook admits as its owner.
/// Anyone else gets `403`.
pub(crate) async fn call_owner(
    config: &Config,
    parts: &Parts,
    call: &CallRecord,
) -> Result<Identity, Rejection> {
    let identity = match presented_secret(parts) {
        Some(token) if call.token.as_deref() == Some(token) => {
            return Ok(Identity::new(call.identity.as_str()));
        }
        Some(_) => {
            return Err(forbidden(
                "not_call_owner",
                "This client secret did not create this call.",
            ));
        }
        None => admit(config, parts).await?,
    };
    if identity.name() != call.identity {
        return Err(forbidden(
            "not_call_owner",
            "This call belongs to another identity.",
        ));
    }
    Ok(identity)
}

pub(crate) fn unauthorized(code: &'static str, message: &str) -> Rejection {
    Rejection::new(
        StatusCode::UNAUTHORIZED,
        ErrorType::InvalidRequest,
        code,
        message,
    )
}

pub(crate) fn forbidden(code: &'static str, message: &str) -> Rejection {
    Rejection::new(StatusCode::FORBIDDEN, ErrorType::Permission, code, message)
}

/// The store failed: the request cannot be checked, so it is refused.
pub(crate) fn store_failed(error: crate::store::StoreError) -> Rejection {
    tracing::warn!(%error, "the WebRTC call store failed");
    Rejection::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorType::Server,
        "store_unavailable",
        "the gateway's call store is unavailable",
    )
}
