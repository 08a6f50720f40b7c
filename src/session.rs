//! One relayed session, from the client's upgrade to the end.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::layer::Config;
use crate::relay::{self, Tap};
use crate::sessions::SessionPermit;
use crate::upstream::UpstreamSocket;

/// A session whose upstream is connected and whose `101` is on its way.
pub(crate) struct Session {
    pub(crate) config: Arc<Config>,
    pub(crate) permit: SessionPermit,
    /// Boxed: the socket (rustls variant inline) would otherwise be kept
    /// both in `Session` and in the local it is moved to, in every idle
    /// session's task.
    pub(crate) upstream: Box<UpstreamSocket>,
    pub(crate) on_upgrade: OnUpgrade,
}

impl Session {
    /// Waits for the client's side of the upgrade, then relays until the end.
    pub(crate) async fn run(self) {
        let Session {
            config,
            permit,
            mut upstream,
            on_upgrade,
        } = self;
        let websocket = config.dialer.websocket;
        let mut client = match on_upgrade.await {
            Ok(upgraded) => {
                WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(websocket),
                )
                .await
            }
            Err(error) => {
                tracing::debug!(%error, "client upgrade failed");
                let close = CloseFrame {
                    code: CloseCode::Error,
                    reason: "client upgrade failed".into(),
                };
                let _ =
                    tokio::time::timeout(config.relay.close_timeout, upstream.close(Some(close)))
                        .await;
                return;
            }
        };
        tracing::debug!("session open");
        let report = relay::run(
            &mut client,
            &mut *upstream,
            &config.relay,
            config.sessions.subscribe(),
            &mut NoTap,
        )
        .await;
        drop((client, upstream));
        tracing::debug!(
            end = %report.ending.summary(),
            client_messages = report.client_to_upstream.messages,
            upstream_messages = report.upstream_to_client.messages,
            "session closed"
        );
        drop(permit);
    }
}

struct NoTap;

impl Tap for NoTap {
    fn client_message(&mut self, _: &Message) {}
    fn upstream_message(&mut self, _: &Message) {}
}
