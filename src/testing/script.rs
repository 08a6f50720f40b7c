//! What the mock upstream does with a handshake and a session.

use std::future::Future;
use std::pin::Pin;

use http::{HeaderName, HeaderValue, StatusCode};

use super::session::UpstreamSession;

/// How the mock upstream answers a WebSocket handshake.
///
/// # Example
///
/// ```
/// use tower_realtime::testing::Handshake;
///
/// let refuse = Handshake::reject(401, r#"{"error":{"message":"Incorrect API key"}}"#)
///     .header("retry-after", "3");
/// assert!(matches!(refuse, Handshake::Reject { .. }));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Handshake {
    /// Switch protocols and run the script.
    Accept,
    /// Answer with this status, headers and body.
    Reject {
        /// The HTTP status.
        status: StatusCode,
        /// Extra response headers.
        headers: Vec<(HeaderName, HeaderValue)>,
        /// The response body.
        body: String,
    },
    /// Read the request and never answer (for connect timeouts).
    Stall,
    /// Close the TCP connection without answering.
    Hangup,
}

impl Handshake {
    /// Refuses with `status` and `body`.
    ///
    /// # Panics
    ///
    /// When `status` is not a valid HTTP status code.
    pub fn reject(status: u16, body: impl Into<String>) -> Self {
        Handshake::Reject {
            status: StatusCode::from_u16(status).expect("a valid status code"),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a response header to a [`Handshake::Reject`]; other kinds are unchanged.
    ///
    /// # Panics
    ///
    /// When `name` or `value` is not a valid header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Handshake::Reject { headers, .. } = &mut self {
            headers.push((
                HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"),
                HeaderValue::from_str(value).expect("a valid header value"),
            ));
        }
        self
    }
}

/// What the mock upstream does in an accepted session.
///
/// Closures `Fn(UpstreamSession) -> impl Future<Output = ()>` are scripts.
///
/// # Example
///
/// ```
/// use tower_realtime::testing::{MockUpstream, UpstreamSession};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// // An upstream that greets, then closes with 4000 at the first message.
/// let upstream = MockUpstream::builder()
///     .script(|mut session: UpstreamSession| async move {
///         session.session_created().await;
///         if session.recv().await.is_some() {
///             session.close(4000, "done").await;
///         }
///     })
///     .start()
///     .await?;
/// # drop(upstream);
/// # Ok(())
/// # }
/// ```
pub trait Script: Send + Sync + 'static {
    /// Runs one accepted session; the socket closes when the future ends.
    fn run(&self, session: UpstreamSession) -> impl Future<Output = ()> + Send;
}

impl<F, Fut> Script for F
where
    F: Fn(UpstreamSession) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn run(&self, session: UpstreamSession) -> impl Future<Output = ()> + Send {
        self(session)
    }
}

/// The default script: `session.created`, then echo until the gateway closes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Echo;

impl Script for Echo {
    async fn run(&self, mut session: UpstreamSession) {
        session.session_created().await;
        session.echo().await;
    }
}

/// A [`Script`] behind a pointer.
pub(crate) trait DynScript: Send + Sync + 'static {
    fn run_boxed(&self, session: UpstreamSession) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl<S: Script> DynScript for S {
    fn run_boxed(&self, session: UpstreamSession) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.run(session))
    }
}
