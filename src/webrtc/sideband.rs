//! The gateway's own sideband of a call: attached before the call is
//! answered, run through the event pipeline (usage, hooks, locks, budgets),
//! held by a renewable lease, and the call's kill switch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use http::HeaderMap;
use http::StatusCode;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::Instrument;

use super::config::WebRtc;
use super::lock::CallLock;
use super::provider_calls::ProviderCalls;
use super::store::CallRecord;
use crate::admission::Identity;
use crate::budget::session_hook::BudgetHook;
use crate::budget::{self, SessionSlot};
use crate::error::Rejection;
use crate::hooks::{Close, PinModel, SessionControl, SessionId};
use crate::layer::Config;
use crate::outcome::ClosedBy;
use crate::relay::{self, Ending, Policy};
use crate::session::finish;
use crate::upstream::UpstreamSocket;
use crate::usage::{Meter, Observation, SessionInfo, telemetry};

/// How long to wait between attempts to attach a sideband.
const ATTACH_RETRY: Duration = Duration::from_millis(250);

/// What the provider gets on the sideband before a call is hung up: the
/// response in progress stops at once, whatever the hang-up takes.
const CANCEL: &str = r#"{"type":"response.cancel"}"#;

/// Dials the sideband of the provider's call `provider_call_id`, retrying
/// refusals that may be a race with the call's creation or a passing
/// failure (404, 5xx; not a refused credential) until `webrtc`'s attach
/// timeout.
pub(crate) async fn attach(
    config: &Config,
    webrtc: &WebRtc,
    calls: &ProviderCalls,
    provider_call_id: &str,
    forwarded: &HeaderMap,
) -> Result<UpstreamSocket, Rejection> {
    let deadline = tokio::time::Instant::now() + webrtc.attach_timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let timeout = left.min(config.dialer.timeout);
        let target = calls.sideband(provider_call_id);
        let refusal = match config.dialer.dial(target, forwarded.clone(), timeout).await {
            Ok(socket) => return Ok(socket),
            Err(refusal) => refusal,
        };
        // Not the gateway's credential being refused: that will not change.
        let retryable = refusal.status == StatusCode::NOT_FOUND
            || (refusal.status.is_server_error() && refusal.code != "upstream_auth_failed");
        if !retryable || tokio::time::Instant::now() + ATTACH_RETRY >= deadline {
            return Err(refusal);
        }
        tokio::time::sleep(ATTACH_RETRY).await;
    }
}

/// Admits a call's sideband on `call` (provider, model) under the layer's
/// budget, if it has one: `429` when the identity's budget is spent or its
/// session limits reached, `403` when a money budget cannot price the model.
pub(crate) async fn admit_budget(
    config: &Config,
    call: (&str, &str),
    identity: &str,
    call_id: &str,
) -> Result<Option<SessionSlot>, Rejection> {
    let Some(budget) = &config.budget else {
        return Ok(None);
    };
    config.budget_listener.start(budget, &config.live);
    budget::admission::priced(budget, identity, std::iter::once(call))?;
    let key = format!("call-{call_id}");
    Ok(Some(
        budget::admission::admit_as(budget, identity, &key).await?,
    ))
}

/// What a supervisor needs to run a call's sideband.
pub(crate) struct Supervisor {
    pub(crate) config: Arc<Config>,
    pub(crate) webrtc: WebRtc,
    pub(crate) call: CallRecord,
    pub(crate) calls: ProviderCalls,
    pub(crate) socket: UpstreamSocket,
    pub(crate) model_label: String,
    pub(crate) request_id: String,
    pub(crate) connect_time: Duration,
    /// The sideband's session id (its budget slot is under it).
    pub(crate) id: SessionId,
    /// The sideband's place under its identity's session limits.
    pub(crate) budget: Option<SessionSlot>,
}

impl Supervisor {
    /// Runs the sideband in a task of its own until the call ends.
    pub(crate) fn spawn(self) {
        let span = tracing::info_span!(
            "realtime_call",
            call = %self.call.id,
            identity = %self.call.identity,
            provider = %self.call.provider,
            model = %self.call.model,
        );
        // Shutdown waits for the supervisor: it may hang the call up.
        let hold = self.config.sessions.hold_drain();
        tokio::spawn(
            async move {
                self.run().await;
                drop(hold);
            }
            .instrument(span),
        );
    }

    async fn run(self) {
        let Supervisor {
            config,
            webrtc,
            call,
            calls,
            mut socket,
            model_label,
            request_id,
            connect_time,
            id,
            budget: slot,
        } = self;
        let info = SessionInfo {
            id,
            identity: Identity::new(call.identity.as_str()),
            provider: call.provider.clone(),
            model: call.model.clone(),
            model_label,
            deployment: None,
            attempts: Vec::new(),
            request_id,
            pcm_input_rate: 24_000,
            pcm_input_rates: vec![24_000],
            connect_time,
            started_at: SystemTime::now(),
            started: Instant::now(),
        };
        let active = telemetry::session_started(&info);
        if let Some(observer) = &config.observer {
            observer.observe(Observation::SessionStart(&info));
        }
        let mut client = detached_client(&config).await;
        let observer = config.observer.as_deref();
        let mut meter =
            (observer.is_some() || cfg!(feature = "metrics")).then(|| Meter::new(&info, observer));
        let control = SessionControl::new(info.clone());
        let listed = config.live.register(&control);
        lock(&webrtc.supervised).insert(call.id.clone(), control.clone());
        let handed_off = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(renew_lease(
            webrtc.clone(),
            call.id.clone(),
            control.clone(),
            Arc::clone(&handed_off),
        ));
        let mut hooks: Vec<_> = config.hooks.iter().map(|new| new.make(&info)).collect();
        let mut budget = None;
        if let (Some(limits), Some(slot)) = (&config.budget, &slot) {
            let (hook, handle) = BudgetHook::new(limits, &info, slot.session(), control.clone());
            hooks.push(Box::new(hook));
            budget = Some(handle);
        }
        hooks.push(Box::new(CallLock::new(&call.session)));
        if config.pin_model {
            hooks.push(Box::new(PinModel::new(&info)));
        }
        let shared = webrtc.store.is_shared();
        let farewell = {
            let (supervised, id) = (Arc::clone(&webrtc.supervised), call.id.clone());
            let handed_off = Arc::clone(&handed_off);
            Box::new(move |ending: &Ending| {
                let ours =
                    lock(&supervised).contains_key(&id) && !handed_off.load(Ordering::SeqCst);
                (disposition(ending, ours, shared) == Disposition::HangUp)
                    .then(|| Utf8Bytes::from_static(CANCEL))
            })
        };
        let mut pipeline = relay::Pipeline::new(hooks, control).with_farewell(farewell);
        // A call's sideband may be silent for long: no idle timeout.
        let mut relay_config = config.relay.clone();
        relay_config.idle_timeout = None;
        let report = relay::run(
            &mut client,
            &mut socket,
            &relay_config,
            config.sessions.subscribe(),
            calls.secrets(),
            &mut pipeline,
            &mut meter,
        )
        .await;
        renewal.abort();
        drop((listed, pipeline, client, socket));
        // Still listed: no hang-up request or takeover ended it elsewhere.
        let still_ours = lock(&webrtc.supervised).remove(&call.id).is_some()
            && !handed_off.load(Ordering::SeqCst);
        let end = report.ending.summary();
        match disposition(&report.ending, still_ours, shared) {
            Disposition::Leave => {}
            Disposition::Forget => {
                let _ = webrtc.store.remove_call(&call.id).await;
            }
            Disposition::HangUp => {
                // Budgets, hooks, limits, or a lost sideband: the call
                // cannot go on unsupervised, and only a hang-up stops media
                // (the sideband got `response.cancel` before its close).
                match calls.action(&call.provider_call_id, "hangup", None).await {
                    Ok(()) => tracing::info!(reason = %end.reason, "call hung up by the gateway"),
                    Err(refusal) => {
                        tracing::warn!(code = %refusal.code, "hanging up the call failed")
                    }
                }
                let _ = webrtc.store.remove_call(&call.id).await;
            }
        }
        let metered = meter.map(Meter::finish).unwrap_or_default();
        finish(
            &config,
            info,
            active,
            metered,
            budget,
            [report.client_to_upstream, report.upstream_to_client],
            end,
        )
        .await;
        drop(slot);
    }
}

/// What becomes of a call once its supervisor's sideband has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// The gateway ends it: `response.cancel` on the sideband, then a hang-up.
    HangUp,
    /// The provider ended it: the gateway forgets it.
    Forget,
    /// It goes on without this supervisor (taken over, hung up by its
    /// owner, or left to the replicas sharing the store at shutdown).
    Leave,
}

/// What becomes of a call whose sideband ended as `ending`; `ours` when no
/// hang-up request or takeover ended it elsewhere, `shared` when other
/// replicas share the call store.
fn disposition(ending: &Ending, ours: bool, shared: bool) -> Disposition {
    match ending {
        // Other replicas take the call over once the lease lapses (with a
        // store of its own, nobody would: the call is hung up).
        Ending::Policy(Policy::Shutdown) if shared => Disposition::Leave,
        Ending::Closed { .. } if ending.summary().closed_by == ClosedBy::Upstream => {
            Disposition::Forget
        }
        _ if ours => Disposition::HangUp,
        _ => Disposition::Leave,
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Ends the local supervisor of call `id` without hanging the call up
/// (someone else did); `false` when this replica does not supervise it.
pub(crate) fn release(webrtc: &WebRtc, id: &str) -> bool {
    let control = lock(&webrtc.supervised).remove(id);
    match control {
        Some(control) => control.close(Close::new(1000, "call ended")),
        None => false,
    }
}

/// Renews the sideband's lease every third of it; a call that is gone or
/// taken over by another replica ends the supervisor without a hang-up.
async fn renew_lease(
    webrtc: WebRtc,
    id: String,
    control: SessionControl,
    handed_off: Arc<AtomicBool>,
) {
    let every = (webrtc.lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        let call = webrtc.store.get_call(&id).await;
        let claimed = match call {
            Ok(Some(_)) => webrtc
                .store
                .claim_sideband(&id, &webrtc.replica, webrtc.lease)
                .await
                .unwrap_or(true),
            Ok(None) => false,
            // The store is down: keep supervising; the lease shows the rest.
            Err(_) => true,
        };
        if !claimed {
            handed_off.store(true, Ordering::SeqCst);
            control.close(Close::new(1000, "call ended"));
            return;
        }
    }
}

/// The client side of a sideband that has no client: an in-memory
/// WebSocket whose far end reads and drops everything (answering pings).
async fn detached_client(config: &Config) -> WebSocketStream<tokio::io::DuplexStream> {
    let (near, far) = tokio::io::duplex(64 << 10);
    let websocket = config.dialer.websocket;
    tokio::spawn(async move {
        let mut far = WebSocketStream::from_raw_socket(far, Role::Client, Some(websocket)).await;
        while let Some(Ok(_)) = far.next().await {}
    });
    WebSocketStream::from_raw_socket(near, Role::Server, Some(websocket)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::Side;

    #[test]
    fn only_calls_the_gateway_ends_are_hung_up() {
        let spent = || Ending::Hook(Close::policy("insufficient_quota"));
        let shutdown = || Ending::Policy(Policy::Shutdown);
        let provider = || Ending::Closed {
            by: Side::Upstream,
            frame: None,
        };
        for shared in [false, true] {
            assert_eq!(disposition(&spent(), true, shared), Disposition::HangUp);
            // Taken over, or hung up by its owner: not the supervisor's.
            assert_eq!(disposition(&spent(), false, shared), Disposition::Leave);
            assert_eq!(disposition(&provider(), true, shared), Disposition::Forget);
        }
        // At shutdown, a store of its own leaves nobody to supervise it.
        assert_eq!(disposition(&shutdown(), true, false), Disposition::HangUp);
        assert_eq!(disposition(&shutdown(), true, true), Disposition::Leave);
        assert_eq!(disposition(&shutdown(), false, false), Disposition::Leave);
    }
}
