//! WebRTC calls on the demo provider, the way OpenAI serves them:
//! `POST /v1/realtime/calls` answers an SDP offer (`201`, the SDP answer,
//! `Location: /v1/realtime/calls/rtc_…`), a small WebRTC peer (`str0m`,
//! on a UDP socket on loopback) greets the caller with the demo's chime in
//! G.711 μ-law, `POST /v1/realtime/calls/{id}/hangup` ends the call, and a
//! sideband WebSocket (`/v1/realtime?call_id=rtc_…`) sees the call's events,
//! `response.done` with usage among them.
//!
//! [`CallsFront`] serves all of it on one port, in front of the demo's
//! WebSocket upstream, which still serves every other session.

mod endpoints;
mod events;
mod front;
mod offer;
mod pcmu;
mod peer;
mod sideband;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};

pub use self::front::CallsFront;

/// What a call's peer is asked to do, by a hangup or a sideband.
#[derive(Debug)]
enum Command {
    /// `response.create`: play the chime again.
    Respond,
}

/// One live call: its events (kept, so that a late sideband sees them
/// all) and how to reach its peer.
#[derive(Debug)]
struct Call {
    id: String,
    /// Every event of the call so far, `session.created` first.
    history: Mutex<Vec<Value>>,
    live: broadcast::Sender<Value>,
    commands: mpsc::UnboundedSender<Command>,
    ended: watch::Sender<bool>,
}

impl Call {
    /// Records `event` and sends it to every attached sideband.
    fn emit(&self, event: Value) {
        self.history
            .lock()
            .expect("history lock")
            .push(event.clone());
        // No sideband attached is fine: the history keeps the event.
        let _ = self.live.send(event);
    }

    /// The events so far and a receiver for the ones to come, without a gap.
    fn subscribe(&self) -> (Vec<Value>, broadcast::Receiver<Value>) {
        let history = self.history.lock().expect("history lock");
        (history.clone(), self.live.subscribe())
    }

    /// Resolves once the call has ended.
    fn ended(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut ended = self.ended.subscribe();
        async move {
            // The sender lives as long as the call.
            let _ = ended.wait_for(|ended| *ended).await;
        }
    }

    fn hang_up(&self) {
        self.ended.send_replace(true);
    }
}

/// The live calls, by id.
#[derive(Debug, Clone)]
struct Calls {
    calls: Arc<Mutex<HashMap<String, Arc<Call>>>>,
    counter: Arc<AtomicU64>,
    /// How long a call's browser may stay silent (it never connected, or
    /// stopped answering ICE consent checks) before the call is dropped.
    patience: Duration,
}

impl Calls {
    fn new(patience: Duration) -> Self {
        Self {
            calls: Arc::default(),
            counter: Arc::default(),
            patience,
        }
    }

    /// Registers a new call; its peer reads `commands` and watches `ended`.
    fn open(&self) -> (Arc<Call>, mpsc::UnboundedReceiver<Command>) {
        let number = self.counter.fetch_add(1, Ordering::Relaxed);
        let random = RandomState::new().hash_one(number);
        let id = format!("rtc_demo{number:04}{random:016x}");
        let (commands, receiver) = mpsc::unbounded_channel();
        let call = Arc::new(Call {
            id: id.clone(),
            history: Mutex::new(Vec::new()),
            live: broadcast::channel(64).0,
            commands,
            ended: watch::channel(false).0,
        });
        self.lock().insert(id, Arc::clone(&call));
        (call, receiver)
    }

    fn get(&self, id: &str) -> Option<Arc<Call>> {
        self.lock().get(id).cloned()
    }

    /// Forgets a call whose peer has stopped.
    fn close(&self, id: &str) {
        if let Some(call) = self.lock().remove(id) {
            call.hang_up();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Call>>> {
        self.calls.lock().expect("calls lock")
    }
}
