//! A local OAuth 2.0 token endpoint for service-account (JWT bearer) grants.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::form_urlencoded;

#[derive(Debug, Default)]
struct State {
    assertions: Mutex<Vec<String>>,
    issued: AtomicUsize,
    expires_in: AtomicU64,
    refuse: AtomicBool,
}

/// An OAuth token endpoint on `127.0.0.1` that grants
/// `urn:ietf:params:oauth:grant-type:jwt-bearer` requests, as Google's
/// `token_uri` does for service accounts: it answers
/// `{"access_token":"token-N","expires_in":…,"token_type":"Bearer"}` and
/// records every assertion (the signed JWT) it was sent.
///
/// # Example
///
/// ```
/// use tower_realtime::testing::TokenEndpoint;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let endpoint = TokenEndpoint::start().await?;
/// assert!(endpoint.url().ends_with("/token"));
/// assert_eq!(endpoint.issued(), 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TokenEndpoint {
    addr: SocketAddr,
    state: Arc<State>,
    accept_loop: JoinHandle<()>,
}

impl TokenEndpoint {
    /// Listens on a free port; tokens last an hour unless set otherwise.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            expires_in: AtomicU64::new(3600),
            ..State::default()
        });
        let shared = Arc::clone(&state);
        let accept_loop = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            state,
            accept_loop,
        })
    }

    /// `http://127.0.0.1:PORT/token`, for a key's `token_uri`.
    pub fn url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The lifetime of the tokens granted from now on, in seconds.
    pub fn set_expires_in(&self, seconds: u64) {
        self.state.expires_in.store(seconds, Ordering::SeqCst);
    }

    /// Refuses every grant from now on (`400 {"error":"invalid_grant"}`), or
    /// grants again.
    pub fn refuse(&self, refuse: bool) {
        self.state.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Tokens granted so far.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// Every assertion received, in order.
    pub fn assertions(&self) -> Vec<String> {
        self.state.assertions.lock().expect("lock").clone()
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn answer(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    };
    let form_ok = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| value == "application/x-www-form-urlencoded");
    if request.method() != http::Method::POST || !form_ok {
        return reply(
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_request"}"#.into(),
        );
    }
    let Ok(body) = request.into_body().collect().await else {
        return reply(
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_request"}"#.into(),
        );
    };
    let body = body.to_bytes();
    let mut grant = None;
    let mut assertion = None;
    for (name, value) in form_urlencoded::parse(&body) {
        match &*name {
            "grant_type" => grant = Some(value.into_owned()),
            "assertion" => assertion = Some(value.into_owned()),
            _ => {}
        }
    }
    let (Some("urn:ietf:params:oauth:grant-type:jwt-bearer"), Some(assertion)) =
        (grant.as_deref(), assertion)
    else {
        return reply(
            StatusCode::BAD_REQUEST,
            r#"{"error":"unsupported_grant_type"}"#.into(),
        );
    };
    state.assertions.lock().expect("lock").push(assertion);
    if state.refuse.load(Ordering::SeqCst) {
        return reply(
            StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#.into(),
        );
    }
    let number = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let expires_in = state.expires_in.load(Ordering::SeqCst);
    reply(
        StatusCode::OK,
        format!(
            r#"{{"access_token":"token-{number}","expires_in":{expires_in},"token_type":"Bearer"}}"#
        ),
    )
}
