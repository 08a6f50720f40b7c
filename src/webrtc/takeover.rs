//! Taking over the sidebands of calls whose supervising replica stopped:
//! every replica looks for calls without a live lease, claims them, and
//! attaches a sideband of its own.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::{HeaderMap, Request};

use super::resolve::provider_calls;
use super::sideband::{Supervisor, admit_budget, attach};
use super::store::CallRecord;
use crate::admission::Identity;
use crate::hooks::SessionId;
use crate::layer::Config;

/// Starts this layer's search for orphaned calls, once, if WebRTC is
/// enabled and a Tokio runtime is at hand (else the next request starts it).
pub(crate) fn ensure_started(config: &Arc<Config>) {
    let Some(webrtc) = &config.webrtc else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if webrtc.takeover.set(()).is_err() {
        return;
    }
    let every = (webrtc.lease / 3).max(Duration::from_millis(10));
    let config = Arc::downgrade(config);
    runtime.spawn(search(config, every));
}

/// Looks for orphaned calls every `every` while the layer exists.
async fn search(config: Weak<Config>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(config) = config.upgrade() else {
            return;
        };
        if config.sessions.refuse_if_shutting_down().is_err() {
            return;
        }
        take_over_orphans(&config).await;
    }
}

async fn take_over_orphans(config: &Arc<Config>) {
    let Some(webrtc) = &config.webrtc else {
        return;
    };
    let Ok(orphans) = webrtc.store.orphaned_calls().await else {
        return;
    };
    for id in orphans {
        let claimed = webrtc
            .store
            .claim_sideband(&id, &webrtc.replica, webrtc.lease)
            .await;
        if !matches!(claimed, Ok(true)) {
            continue;
        }
        if let Ok(Some(call)) = webrtc.store.get_call(&id).await {
            take_over(config, call).await;
        }
    }
}

/// Attaches a sideband to `call`, whose lease this replica now holds; a
/// call that cannot be supervised any more is hung up (unless unsupervised
/// calls are allowed).
async fn take_over(config: &Arc<Config>, call: CallRecord) {
    let webrtc = config.webrtc.as_ref().expect("WebRTC is enabled");
    let (parts, ()) = Request::post(format!("{}/calls", config.path))
        .body(())
        .expect("a valid request")
        .into_parts();
    let identity = Identity::new(call.identity.as_str());
    let selector = format!("{}/{}", call.provider, call.model);
    let (target, calls) = match provider_calls(config, &selector, &parts, &identity).await {
        Ok(found) => found,
        Err(refusal) => {
            tracing::warn!(call = %call.id, code = %refusal.code, "cannot take over the call's sideband");
            return;
        }
    };
    let id = SessionId::next();
    let priced = (call.provider.as_str(), call.model.as_str());
    // The call's place under its identity's limits, kept under the call's
    // own key: the place the stopped replica held is taken over, not
    // counted twice (nor refused while it still counts).
    let slot = match admit_budget(config, priced, &call.identity, &call.id).await {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::warn!(call = %call.id, code = %refusal.code, "the call is out of budget; hanging it up");
            let _ = calls.action(&call.provider_call_id, "hangup", None).await;
            let _ = webrtc.store.remove_call(&call.id).await;
            return;
        }
    };
    let started = Instant::now();
    match attach(
        config,
        webrtc,
        &calls,
        &call.provider_call_id,
        &HeaderMap::new(),
    )
    .await
    {
        Ok(socket) => {
            tracing::info!(call = %call.id, "took over the call's sideband");
            Supervisor {
                config: Arc::clone(config),
                webrtc: webrtc.clone(),
                call,
                calls,
                socket,
                model_label: target.model_label,
                request_id: String::new(),
                connect_time: started.elapsed(),
                id,
                budget: slot,
            }
            .spawn();
        }
        Err(_) if webrtc.unsupervised => {}
        Err(refusal) => {
            tracing::warn!(call = %call.id, code = %refusal.code, "the call's sideband cannot be taken over; hanging the call up");
            let _ = calls.action(&call.provider_call_id, "hangup", None).await;
            let _ = webrtc.store.remove_call(&call.id).await;
        }
    }
}
