//! The mock upstream server: a loopback listener and its recorded history.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::log::{Log, RecordedRequest};
use super::script::{DynScript, Echo, Handshake, Script};
use super::sessions::Sessions;
use crate::provider::Compatible;

/// Configures a [`MockUpstream`] before it starts.
#[must_use]
pub struct MockUpstreamBuilder {
    handshake: Handshake,
    script: Arc<dyn DynScript>,
    forget_messages: bool,
}

impl std::fmt::Debug for MockUpstreamBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstreamBuilder")
            .field("handshake", &self.handshake)
            .finish_non_exhaustive()
    }
}

impl MockUpstreamBuilder {
    /// How every handshake is answered (default: [`Handshake::Accept`]).
    pub fn handshake(mut self, handshake: Handshake) -> Self {
        self.handshake = handshake;
        self
    }

    /// What every accepted session does (default: `session.created`, then echo).
    pub fn script(mut self, script: impl Script) -> Self {
        self.script = Arc::new(script);
        self
    }

    /// Keeps no message the sessions receive ([`MockUpstream::received`]
    /// stays empty), for an upstream that serves as long as a gateway does,
    /// such as a demo.
    pub fn forget_messages(mut self) -> Self {
        self.forget_messages = true;
        self
    }

    /// Listens on `127.0.0.1` at a free port.
    pub async fn start(self) -> io::Result<MockUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(if self.forget_messages {
            Log::forgetting_messages()
        } else {
            Log::default()
        });
        let sessions = Arc::new(Sessions::default());
        let accept_loop = tokio::spawn(accept_loop(
            listener,
            self.handshake,
            self.script,
            Arc::clone(&log),
            Arc::clone(&sessions),
        ));
        Ok(MockUpstream {
            addr,
            log,
            sessions,
            accept_loop,
        })
    }
}

/// A scripted upstream realtime server on `127.0.0.1`. Dropping it stops
/// the listener and cuts every live session without a close frame.
pub struct MockUpstream {
    addr: SocketAddr,
    log: Arc<Log>,
    sessions: Arc<Sessions>,
    accept_loop: JoinHandle<()>,
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockUpstream {
    /// Starts configuring an upstream.
    pub fn builder() -> MockUpstreamBuilder {
        MockUpstreamBuilder {
            handshake: Handshake::Accept,
            script: Arc::new(Echo),
            forget_messages: false,
        }
    }

    /// An upstream that sends `session.created`, then echoes.
    pub async fn echo() -> io::Result<Self> {
        Self::builder().start().await
    }

    /// An upstream running `script` for every session.
    pub async fn with_script(script: impl Script) -> io::Result<Self> {
        Self::builder().script(script).start().await
    }

    /// An OpenAI-compatible [`Provider`](crate::provider::Provider) that
    /// dials this upstream, to register under a name of your choice.
    ///
    /// It sends no credential: the mock upstream checks none.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_realtime::Providers;
    /// use tower_realtime::testing::MockUpstream;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let upstream = MockUpstream::echo().await?;
    /// let providers = Providers::new().with("echo", upstream.provider());
    /// assert_eq!(providers.names().collect::<Vec<_>>(), ["echo"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn provider(&self) -> Compatible {
        Compatible::new(&self.base_url()).expect("a loopback base URL is valid")
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`: a base URL for the OpenAI-compatible providers.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.log.connections()
    }

    /// Every WebSocket handshake received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.requests()
    }

    /// Every text and binary message received so far, across sessions.
    pub fn received(&self) -> Vec<Message> {
        self.log.messages()
    }

    /// Every close frame received from the gateway (`None`: one without a code).
    pub fn closes(&self) -> Vec<Option<CloseFrame>> {
        self.log.closes()
    }

    /// Sessions whose script has finished.
    pub fn sessions_ended(&self) -> usize {
        self.log.ended()
    }

    /// Cuts every live session without a close frame, as a crashing upstream would.
    pub fn abort_sessions(&self) {
        self.sessions.abort();
    }

    /// Waits until `condition` holds, up to `timeout`; returns whether it did.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        condition: impl Fn(&MockUpstream) -> bool,
    ) -> bool {
        // Polled now and then too, for conditions on state outside the log.
        self.log
            .wait_until(timeout, Duration::from_millis(50), || condition(self))
            .await
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.abort_sessions();
    }
}

async fn accept_loop(
    listener: TcpListener,
    handshake: Handshake,
    script: Arc<dyn DynScript>,
    log: Arc<Log>,
    sessions: Arc<Sessions>,
) {
    let mut number = 0;
    while let Ok((stream, _)) = listener.accept().await {
        number += 1;
        log.connection();
        sessions.spawn(stream, handshake.clone(), &script, &log, number);
    }
}
