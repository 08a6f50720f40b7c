//! Live sessions: the concurrency limit, and graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use tokio::sync::{Notify, watch};

use crate::budget::SessionSlot;
use crate::deployment::DeploymentSlot;
use crate::error::{ErrorType, Rejection};

/// Counts the sessions of one layer and tells them when to shut down.
#[derive(Debug)]
pub(crate) struct Sessions {
    /// Admitted and not ended: what `max_sessions` limits.
    active: AtomicUsize,
    /// Of those, the ones still dialling their upstream.
    dialling: AtomicUsize,
    /// What drained waits for besides active sessions: ended sessions
    /// whose place under their identity's session limits is still being
    /// given back to the budget store, and WebRTC calls' supervisors.
    releasing: AtomicUsize,
    shutdown: watch::Sender<bool>,
    drained: Notify,
}

impl Sessions {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            active: AtomicUsize::new(0),
            dialling: AtomicUsize::new(0),
            releasing: AtomicUsize::new(0),
            shutdown: watch::Sender::new(false),
            drained: Notify::new(),
        })
    }

    /// Admits one more session, unless the layer is shutting down (503) or
    /// `max` sessions are live (503 with `Retry-After`).
    pub(crate) fn try_open(
        self: &Arc<Self>,
        max: Option<usize>,
    ) -> Result<SessionPermit, Rejection> {
        self.refuse_if_shutting_down()?;
        let admitted = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                max.is_none_or(|max| active < max).then_some(active + 1)
            });
        if admitted.is_err() {
            return Err(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorType::RateLimit,
                "too_many_sessions",
                "the gateway is at its limit of concurrent realtime sessions; retry shortly",
            )
            .retry_after(1));
        }
        self.dialling.fetch_add(1, Ordering::AcqRel);
        Ok(SessionPermit {
            sessions: Arc::clone(self),
            dialling: true,
            deployment: None,
            budget: None,
            budget_mark: 0,
        })
    }

    /// 503 once shutdown has begun.
    pub(crate) fn refuse_if_shutting_down(&self) -> Result<(), Rejection> {
        if *self.shutdown.borrow() {
            return Err(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorType::Server,
                "gateway_shutting_down",
                "the gateway is shutting down",
            ));
        }
        Ok(())
    }

    /// Resolves to `true` when shutdown begins.
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    fn dialling(&self) -> usize {
        self.dialling.load(Ordering::Acquire)
    }

    fn releasing(&self) -> usize {
        self.releasing.load(Ordering::Acquire)
    }

    /// Whether no session is active and nothing holds the drain.
    fn is_drained(&self) -> bool {
        self.active() == 0 && self.releasing() == 0
    }

    /// Gives `slot` back to its store in the background; the layer is not
    /// drained until that is done (each store call ends within the store's
    /// timeout).
    fn release(self: &Arc<Self>, slot: SessionSlot) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to release it on: its lease ends it.
            return;
        };
        let hold = self.hold_drain();
        runtime.spawn(async move {
            slot.release().await;
            drop(hold);
        });
    }

    /// Keeps the layer from being drained until the hold is dropped.
    pub(crate) fn hold_drain(self: &Arc<Self>) -> DrainHold {
        self.releasing.fetch_add(1, Ordering::AcqRel);
        DrainHold {
            sessions: Arc::clone(self),
        }
    }
}

/// Work shutdown waits for (a WebRTC call's supervisor, which may hang its
/// call up once its sideband closes); dropping it ends the wait.
#[derive(Debug)]
pub(crate) struct DrainHold {
    sessions: Arc<Sessions>,
}

impl Drop for DrainHold {
    fn drop(&mut self) {
        if self.sessions.releasing.fetch_sub(1, Ordering::AcqRel) == 1
            && self.sessions.active() == 0
        {
            self.sessions.drained.notify_waiters();
        }
    }
}

/// A session's place in the count; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct SessionPermit {
    sessions: Arc<Sessions>,
    dialling: bool,
    /// The session's place under its deployment's cap, freed with the permit.
    deployment: Option<DeploymentSlot>,
    /// The session's place under its identity's session limits, freed with
    /// the permit, and the budget listener's mark when it was admitted.
    budget: Option<SessionSlot>,
    budget_mark: u64,
}

impl SessionPermit {
    /// Keeps the session's place under its identity's session limits while
    /// it lives; `mark` is the budget listener's when it was admitted.
    pub(crate) fn hold_budget(&mut self, slot: SessionSlot, mark: u64) {
        self.budget = Some(slot);
        self.budget_mark = mark;
    }

    /// The budget listener's mark when the session was admitted.
    pub(crate) fn budget_mark(&self) -> u64 {
        self.budget_mark
    }

    /// The session's place under its identity's session limits, if it has a budget.
    pub(crate) fn budget_slot(&self) -> Option<&SessionSlot> {
        self.budget.as_ref()
    }

    /// Keeps the session's place under its deployment's cap while it lives.
    pub(crate) fn hold(&mut self, slot: DeploymentSlot) {
        self.deployment = Some(slot);
    }

    /// The session's upstream is connected: it no longer counts as dialling.
    pub(crate) fn connected(&mut self) {
        if std::mem::take(&mut self.dialling) {
            self.sessions.dialling.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        self.connected();
        // Counted as releasing before it stops counting as active, so that
        // no one sees the layer drained in between.
        if let Some(slot) = self.budget.take() {
            self.sessions.release(slot);
        }
        if self.sessions.active.fetch_sub(1, Ordering::AcqRel) == 1
            && self.sessions.releasing() == 0
        {
            self.sessions.drained.notify_waiters();
        }
    }
}

/// Graceful shutdown of a layer's sessions, and their count.
///
/// Get one from [`RealtimeLayer::shutdown_handle`](crate::RealtimeLayer::shutdown_handle).
/// Once shutdown begins, new upgrades get `503`, and every live session
/// gets an `error` event and close code `1001` on both sides. axum's
/// graceful shutdown does not wait for upgraded connections, so wait for
/// this handle as well.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_realtime::{Providers, RealtimeLayer};
///
/// # async fn run() -> std::io::Result<()> {
/// let layer = RealtimeLayer::new(Providers::new());
/// let shutdown = layer.shutdown_handle();
/// let app = axum::Router::new().layer(layer);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, app)
///     .with_graceful_shutdown(async move {
///         let _ = tokio::signal::ctrl_c().await;
///         // Close live sessions (1001) and wait up to 10 s for them to end.
///         shutdown.shutdown(Duration::from_secs(10)).await;
///     })
///     .await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    sessions: Arc<Sessions>,
}

impl ShutdownHandle {
    pub(crate) fn new(sessions: Arc<Sessions>) -> Self {
        Self { sessions }
    }

    /// How many sessions are admitted and not ended: the ones still
    /// dialling their upstream and the live ones. This is what
    /// [`max_sessions`](crate::RealtimeLayer::max_sessions) limits.
    pub fn active_sessions(&self) -> usize {
        self.sessions.active()
    }

    /// How many sessions are still dialling their upstream (no `101` yet).
    pub fn dialling_sessions(&self) -> usize {
        self.sessions.dialling()
    }

    /// How many sessions have their upstream connected: the active ones
    /// that are no longer dialling.
    pub fn live_sessions(&self) -> usize {
        // Read in this order, so that a session moving from dialling to
        // live in between is counted at most once, never below zero.
        let dialling = self.sessions.dialling();
        self.sessions.active().saturating_sub(dialling)
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.sessions.shutdown.borrow()
    }

    /// Begins shutdown without waiting: new upgrades get `503` and live
    /// sessions are closed with `1001`.
    pub fn begin(&self) {
        self.sessions.shutdown.send_replace(true);
    }

    /// Waits until no session is live, every ended session's place under
    /// its identity's session limits is given back to the budget store (so
    /// that other replicas admit reconnects at once), and every WebRTC
    /// call's sideband is closed (and the call hung up, unless replicas
    /// share the call store: see [`CallStore::is_shared`](crate::webrtc::CallStore::is_shared)).
    pub async fn drained(&self) {
        loop {
            let drained = self.sessions.drained.notified();
            if self.sessions.is_drained() {
                return;
            }
            drained.await;
        }
    }

    /// Begins shutdown and waits until every session has ended (see
    /// [`drained`](Self::drained)) or `deadline` has passed. Returns
    /// whether every session ended in time.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.begin();
        tokio::time::timeout(deadline, self.drained()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limit_and_drain() {
        let sessions = Sessions::new();
        let handle = ShutdownHandle::new(Arc::clone(&sessions));
        let mut first = sessions.try_open(Some(1)).unwrap();
        let refused = sessions.try_open(Some(1)).unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.header("retry-after").unwrap(), "1");
        assert_eq!(handle.active_sessions(), 1);
        assert_eq!((handle.dialling_sessions(), handle.live_sessions()), (1, 0));
        first.connected();
        first.connected();
        assert_eq!((handle.dialling_sessions(), handle.live_sessions()), (0, 1));

        let mut signal = sessions.subscribe();
        let waiter = tokio::spawn({
            let handle = handle.clone();
            async move { handle.shutdown(Duration::from_secs(5)).await }
        });
        signal.wait_for(|&down| down).await.unwrap();
        assert_eq!(
            sessions.try_open(None).unwrap_err().code,
            "gateway_shutting_down"
        );
        drop(first);
        assert!(waiter.await.unwrap());
        assert_eq!(handle.active_sessions(), 0);
    }

    #[test]
    fn a_permit_dropped_while_dialling_leaves_no_count() {
        let sessions = Sessions::new();
        let handle = ShutdownHandle::new(Arc::clone(&sessions));
        let dialling = sessions.try_open(None).unwrap();
        let mut live = sessions.try_open(None).unwrap();
        live.connected();
        assert_eq!(
            (
                handle.active_sessions(),
                handle.dialling_sessions(),
                handle.live_sessions()
            ),
            (2, 1, 1)
        );
        drop(dialling);
        drop(live);
        assert_eq!(
            (
                handle.active_sessions(),
                handle.dialling_sessions(),
                handle.live_sessions()
            ),
            (0, 0, 0)
        );
    }
}
