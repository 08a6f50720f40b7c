//! One port for the whole demo provider: the call endpoints and call
//! sidebands here, every other WebSocket session passed through to the
//! scripted upstream behind.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower_realtime::provider::{self, Compatible, Provider, Target, TargetRequest};

use super::{Calls, endpoints, sideband};

/// The longest request line the front reads to route a connection.
const MAX_REQUEST_LINE: usize = 8 * 1024;

/// The demo provider on `127.0.0.1`: `POST`s (and CORS preflights) go to
/// the call endpoints, `GET /v1/realtime?call_id=…` to a call's sideband,
/// anything else to the WebSocket upstream at `upstream`.
#[derive(Debug)]
pub struct CallsFront {
    addr: SocketAddr,
    accept_loop: JoinHandle<()>,
}

impl CallsFront {
    /// Listens on a free loopback port, in front of `upstream`; a call
    /// whose browser stays silent for 30 s is dropped.
    pub async fn start(upstream: SocketAddr) -> io::Result<Self> {
        Self::with_patience(upstream, Duration::from_secs(30)).await
    }

    /// [`start`](Self::start), with calls dropped after `patience` of
    /// silence from their browser.
    pub async fn with_patience(upstream: SocketAddr, patience: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let calls = Calls::new(patience);
        let accept_loop = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(route(stream, upstream, calls.clone()));
            }
        });
        Ok(Self { addr, accept_loop })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`: the base URL of an OpenAI-compatible provider.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The provider to register: OpenAI-compatible at [`base_url`](Self::base_url),
    /// with WebRTC calls, as OpenAI's.
    pub fn provider(&self) -> impl Provider + use<> {
        let compatible = Compatible::new(&self.base_url()).expect("a loopback base URL is valid");
        provider::map_target(compatible, |target: Target, _: &TargetRequest<'_>| {
            Ok(target.webrtc_calls())
        })
    }
}

impl Drop for CallsFront {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn route(stream: TcpStream, upstream: SocketAddr, calls: Calls) {
    let _ = stream.set_nodelay(true);
    let Some(line) = request_line(&stream).await else {
        return;
    };
    let mut words = line.split(' ');
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    if method != "GET" {
        let service = TowerToHyperService::new(endpoints::routes(calls));
        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    } else if sideband::call_id(target).is_some() {
        sideband::serve(stream, calls).await;
    } else if let Ok(mut behind) = TcpStream::connect(upstream).await {
        let _ = behind.set_nodelay(true);
        let mut stream = stream;
        let _ = tokio::io::copy_bidirectional(&mut stream, &mut behind).await;
    }
}

/// The first line of the request, read without consuming it.
async fn request_line(stream: &TcpStream) -> Option<String> {
    let mut buffer = vec![0; MAX_REQUEST_LINE];
    let mut seen = 0;
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if read == 0 {
            return None;
        }
        if let Some(end) = buffer[..read].windows(2).position(|pair| pair == b"\r\n") {
            return String::from_utf8(buffer[..end].to_vec()).ok();
        }
        if read == MAX_REQUEST_LINE {
            return None;
        }
        if read == seen {
            // Only part of the line has arrived: wait for the rest.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen = read;
    }
}
