//! The mock upstream server: a loopback listener and its recorded history.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::log::{Log, RecordedRequest};
use super::script::{DynScript, Echo, Handshake, Script};
use super::session::UpstreamSession;
use crate::provider::Compatible;

/// Configures a [`MockUpstream`] before it starts.
#[must_use]
pub struct MockUpstreamBuilder {
    handshake: Handshake,
    script: Arc<dyn DynScript>,
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

    /// Listens on `127.0.0.1` at a free port.
    pub async fn start(self) -> io::Result<MockUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Log::default());
        let sessions = Arc::new(Mutex::new(Vec::new()));
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
    sessions: Arc<Mutex<Vec<AbortHandle>>>,
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
        self.log.connections.load(Ordering::SeqCst)
    }

    /// Every WebSocket handshake received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.requests.lock().expect("log lock").clone()
    }

    /// Every text and binary message received so far, across sessions.
    pub fn received(&self) -> Vec<Message> {
        self.log.messages.lock().expect("log lock").clone()
    }

    /// Every close frame received from the gateway (`None`: one without a code).
    pub fn closes(&self) -> Vec<Option<CloseFrame>> {
        self.log.closes.lock().expect("log lock").clone()
    }

    /// Sessions whose script has finished.
    pub fn sessions_ended(&self) -> usize {
        self.log.ended.load(Ordering::SeqCst)
    }

    /// Cuts every live session without a close frame, as a crashing upstream would.
    pub fn abort_sessions(&self) {
        for session in self.sessions.lock().expect("sessions lock").drain(..) {
            session.abort();
        }
    }

    /// Waits until `condition` holds, up to `timeout`; returns whether it did.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        condition: impl Fn(&MockUpstream) -> bool,
    ) -> bool {
        let wait = async {
            loop {
                let changed = self.log.changed.notified();
                if condition(self) {
                    return;
                }
                // Also poll now and then, for conditions on state outside the log.
                let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
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
    sessions: Arc<Mutex<Vec<AbortHandle>>>,
) {
    let mut number = 0;
    while let Ok((stream, _)) = listener.accept().await {
        number += 1;
        log.connection();
        let task = tokio::spawn(serve(
            stream,
            handshake.clone(),
            Arc::clone(&script),
            Arc::clone(&log),
            number,
        ));
        let mut sessions = sessions.lock().expect("sessions lock");
        sessions.retain(|session| !session.is_finished());
        sessions.push(task.abort_handle());
    }
}

// The callback's error type is tungstenite's `ErrorResponse`.
#[allow(clippy::result_large_err)]
pub(crate) async fn serve(
    mut stream: TcpStream,
    handshake: Handshake,
    script: Arc<dyn DynScript>,
    log: Arc<Log>,
    number: usize,
) {
    let _ = stream.set_nodelay(true);
    match handshake {
        Handshake::Hangup => return,
        Handshake::Stall => {
            // Read whatever comes, answer nothing, until the peer gives up.
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        Handshake::Accept | Handshake::Reject { .. } => {}
    }
    let mut recorded = None;
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let record = RecordedRequest {
            path: request.uri().path().to_owned(),
            query: request.uri().query().map(str::to_owned),
            headers: request.headers().clone(),
        };
        log.request(record.clone());
        recorded = Some(record);
        match &handshake {
            Handshake::Reject {
                status,
                headers,
                body,
            } => Err(rejection(*status, headers, body)),
            _ => Ok(response),
        }
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let request = recorded.expect("the callback ran");
    script
        .run_boxed(UpstreamSession::new(
            socket,
            Arc::clone(&log),
            request,
            number,
        ))
        .await;
    log.session_ended();
}

fn rejection(
    status: http::StatusCode,
    headers: &[(http::HeaderName, HeaderValue)],
    body: &str,
) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(body.to_owned()));
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    map.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    map.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    for (name, value) in headers {
        map.insert(name.clone(), value.clone());
    }
    response
}
