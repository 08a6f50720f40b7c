//! What the mock upstream received.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderMap;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use url::form_urlencoded;

/// One upstream handshake as it arrived.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The request path, e.g. `/v1/realtime`.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Every header, as sent.
    pub headers: HeaderMap,
}

impl RecordedRequest {
    /// The decoded query parameters, in order.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_realtime::testing::RecordedRequest;
    ///
    /// let request = RecordedRequest {
    ///     path: "/v1/realtime".into(),
    ///     query: Some("model=gpt%2Frealtime&x=1".into()),
    ///     headers: Default::default(),
    /// };
    /// assert_eq!(request.query_pairs(), [("model".into(), "gpt/realtime".into()), ("x".into(), "1".into())]);
    /// ```
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_deref().unwrap_or("").as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }

    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Everything a scripted server ([`MockUpstream`](super::MockUpstream),
/// [`WebRtcUpstream`](super::WebRtcUpstream)) has seen, shared with its sessions.
#[derive(Debug, Default)]
pub(crate) struct Log {
    connections: AtomicUsize,
    requests: Mutex<Vec<RecordedRequest>>,
    messages: Mutex<Vec<Message>>,
    /// Messages are not kept (an upstream that serves indefinitely).
    forget_messages: bool,
    closes: Mutex<Vec<Option<CloseFrame>>>,
    ended: AtomicUsize,
    changed: Notify,
}

impl Log {
    pub(crate) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub(crate) fn request(&self, request: RecordedRequest) {
        self.requests.lock().expect("log lock").push(request);
        self.changed.notify_waiters();
    }

    /// A log that counts everything but keeps no message.
    pub(crate) fn forgetting_messages() -> Self {
        Self {
            forget_messages: true,
            ..Self::default()
        }
    }

    pub(crate) fn message(&self, message: &Message) {
        if !self.forget_messages {
            self.messages
                .lock()
                .expect("log lock")
                .push(message.clone());
        }
        self.changed.notify_waiters();
    }

    pub(crate) fn close(&self, frame: Option<CloseFrame>) {
        self.closes.lock().expect("log lock").push(frame);
        self.changed.notify_waiters();
    }

    pub(crate) fn session_ended(&self) {
        self.ended.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Wakes [`wait_until`](Self::wait_until) for a change recorded elsewhere.
    pub(crate) fn changed(&self) {
        self.changed.notify_waiters();
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().expect("log lock").clone()
    }

    pub(crate) fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("log lock").clone()
    }

    pub(crate) fn closes(&self) -> Vec<Option<CloseFrame>> {
        self.closes.lock().expect("log lock").clone()
    }

    pub(crate) fn ended(&self) -> usize {
        self.ended.load(Ordering::SeqCst)
    }

    /// Waits until `condition` holds, up to `timeout`; returns whether it
    /// did. It is checked on every change, and every `poll` for
    /// conditions on state outside the log.
    pub(crate) async fn wait_until(
        &self,
        timeout: Duration,
        poll: Duration,
        condition: impl Fn() -> bool,
    ) -> bool {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if condition() {
                    return;
                }
                let _ = tokio::time::timeout(poll, changed).await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}
