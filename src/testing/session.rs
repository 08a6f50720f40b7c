//! One session on the mock upstream, as its script sees it.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::log::{Log, RecordedRequest};

/// An accepted upstream session: what its script uses to talk to the gateway.
///
/// Every text and binary message it receives, and every close frame, is
/// recorded on the [`MockUpstream`](super::MockUpstream).
#[derive(Debug)]
pub struct UpstreamSession {
    socket: WebSocketStream<TcpStream>,
    log: Arc<Log>,
    request: RecordedRequest,
    id: String,
}

impl UpstreamSession {
    pub(crate) fn new(
        socket: WebSocketStream<TcpStream>,
        log: Arc<Log>,
        request: RecordedRequest,
        number: usize,
    ) -> Self {
        Self {
            socket,
            log,
            request,
            id: format!("sess_mock{number:06}"),
        }
    }

    /// The handshake that opened this session.
    pub fn request(&self) -> &RecordedRequest {
        &self.request
    }

    /// The session id announced in `session.created`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `model` query parameter of the handshake, if any.
    pub fn model(&self) -> Option<String> {
        self.request
            .query_pairs()
            .into_iter()
            .find_map(|(name, value)| (name == "model").then_some(value))
    }

    /// Sends a message; `false` when the gateway is gone.
    pub async fn send(&mut self, message: Message) -> bool {
        self.socket.send(message).await.is_ok()
    }

    /// Queues a message without flushing; `false` when the gateway is gone.
    pub async fn feed(&mut self, message: Message) -> bool {
        self.socket.feed(message).await.is_ok()
    }

    /// Flushes queued messages; `false` when the gateway is gone.
    pub async fn flush(&mut self) -> bool {
        self.socket.flush().await.is_ok()
    }

    /// Sends a JSON event as a text message; `false` when the gateway is gone.
    pub async fn send_json(&mut self, event: &serde_json::Value) -> bool {
        self.send(Message::text(event.to_string())).await
    }

    /// Sends the `session.created` event of the OpenAI GA schema, its
    /// fields in the order OpenAI sends them.
    pub async fn session_created(&mut self) -> bool {
        let id = serde_json::Value::from(self.id.as_str());
        let model = serde_json::Value::from(self.model());
        let event = format!(
            r#"{{"type":"session.created","event_id":"event_{session}_0","session":{{"id":{id},"object":"realtime.session","type":"realtime","model":{model},"output_modalities":["audio"],"audio":{{"input":{{"format":{{"type":"audio/pcm","rate":24000}}}},"output":{{"format":{{"type":"audio/pcm","rate":24000}},"voice":"alloy"}}}}}}}}"#,
            session = self.id,
        );
        self.send(Message::text(event)).await
    }

    /// The next text or binary message, or `None` once the gateway closed
    /// (its close frame is recorded and answered) or went away.
    pub async fn recv(&mut self) -> Option<Message> {
        while let Some(Ok(message)) = self.socket.next().await {
            match message {
                Message::Text(_) | Message::Binary(_) => {
                    self.log.message(&message);
                    return Some(message);
                }
                Message::Close(frame) => {
                    self.log.close(frame);
                    // Drive tungstenite's answer to the close out.
                    while let Some(Ok(_)) = self.socket.next().await {}
                    return None;
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
        None
    }

    /// Sends every message back until the gateway closes.
    pub async fn echo(&mut self) {
        while let Some(message) = self.recv().await {
            if !self.send(message).await {
                return;
            }
        }
    }

    /// Closes with `code` and `reason`, and waits for the gateway's answer.
    pub async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        if self.socket.send(Message::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(message)) = self.socket.next().await {
                if let Message::Close(frame) = message {
                    self.log.close(frame);
                }
            }
        }
    }

    /// The raw socket, for scripts that misbehave on purpose (drop it
    /// without a close frame, stop reading, ...).
    pub fn into_socket(self) -> WebSocketStream<TcpStream> {
        self.socket
    }
}
