//! Connecting to the upstream WebSocket before the client gets its `101`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::handshake::client::{Request, generate_key};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use url::{Host, Url};

use super::client_handshake::client_handshake;
use super::connect::{ATTEMPT_DELAY, connect_first, interleave};
use super::pool::{Opener, Pool, PoolConfig, PoolKey};
use super::stream::UpstreamStream;
use super::{failure, tls};
use crate::error::Rejection;
use crate::provider::{Target, TargetError};
use crate::secret::Secret;
use crate::socket_options::SocketOptions;
use crate::split_frames::SplitFrames;

/// The socket to the upstream.
pub(crate) type UpstreamSocket = WebSocketStream<SplitFrames<UpstreamStream>>;

/// Connects to upstream targets.
#[derive(Clone)]
pub(crate) struct Dialer {
    /// `None` without a crypto provider: `wss` dials are refused.
    pub(crate) tls: Option<Arc<ClientConfig>>,
    pub(crate) timeout: Duration,
    pub(crate) websocket: WebSocketConfig,
    /// TCP options of both hops (the client's socket is tuned by the session).
    pub(crate) sockets: SocketOptions,
    /// Pre-warmed sockets by upstream host, when enabled.
    pub(crate) pool: Option<Arc<Pool>>,
    /// What the pool is made with (none is made for zero sockets).
    pub(crate) prewarm: PoolConfig,
}

impl Dialer {
    /// Opens the upstream WebSocket for `target`, sending `forwarded` client
    /// headers plus the target's own, within `timeout`. Any failure is the
    /// response the client gets.
    pub(crate) async fn dial(
        &self,
        target: Target,
        forwarded: HeaderMap,
        timeout: Duration,
    ) -> Result<UpstreamSocket, Rejection> {
        let (url, headers, subprotocols, secrets) = target.into_parts();
        let request = handshake_request(&url, forwarded, headers, &subprotocols)?;
        match tokio::time::timeout(timeout, self.connect(&url, request, &secrets)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(failure::timed_out(timeout)),
        }
    }

    async fn connect(
        &self,
        url: &Url,
        request: Request,
        secrets: &[Secret],
    ) -> Result<UpstreamSocket, Rejection> {
        if let Some(pool) = &self.pool {
            let key = pool_key(url)?;
            if let Some(stream) = pool.take(&key, &self.opener()) {
                match client_handshake(stream, &request, self.websocket).await {
                    Ok(socket) => return Ok(socket),
                    Err(WsError::Http(response)) => {
                        return Err(failure::from_status(&response, secrets));
                    }
                    // Closed by the upstream as it was taken: dial afresh.
                    Err(error) => {
                        tracing::debug!(%error, "a pre-warmed upstream socket failed; dialling afresh");
                    }
                }
            }
        }
        let stream = self.open(url, secrets).await?;
        match client_handshake(stream, &request, self.websocket).await {
            Ok(socket) => Ok(socket),
            Err(WsError::Http(response)) => Err(failure::from_status(&response, secrets)),
            Err(error) => Err(failure::unreachable(
                "upstream_bad_handshake",
                "the upstream WebSocket handshake failed",
                &error,
                secrets,
            )),
        }
    }

    /// What the pool opens its sockets with: this dialer, without the pool
    /// (which would otherwise keep itself alive).
    fn opener(&self) -> Opener {
        let dialer = Dialer {
            pool: None,
            ..self.clone()
        };
        Arc::new(move |key: PoolKey| {
            let dialer = dialer.clone();
            Box::pin(async move {
                let scheme = if key.secure { "wss" } else { "ws" };
                let url = Url::parse(&format!("{scheme}://{}:{}/", key.host, key.port)).ok()?;
                let opening = tokio::time::timeout(dialer.timeout, dialer.open(&url, &[]));
                match opening.await {
                    Ok(Ok(stream)) => Some(stream),
                    _ => None,
                }
            })
        })
    }

    /// Resolves, connects and (for `wss`) completes TLS: everything before
    /// the WebSocket upgrade.
    async fn open(&self, url: &Url, secrets: &[Secret]) -> Result<UpstreamStream, Rejection> {
        let host = url.host().ok_or_else(|| {
            Rejection::from(TargetError::misconfigured("the upstream URL has no host"))
        })?;
        let port = url.port_or_known_default().ok_or_else(|| {
            Rejection::from(TargetError::misconfigured("the upstream URL has no port"))
        })?;
        let addresses: Vec<SocketAddr> = match &host {
            Host::Domain(domain) => tokio::net::lookup_host((*domain, port))
                .await
                .map_err(|error| {
                    failure::unreachable(
                        "upstream_dns_failed",
                        "could not resolve the upstream host",
                        &error,
                        secrets,
                    )
                })?
                .collect(),
            Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
            Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
        };
        let tcp = connect_first(&interleave(addresses), ATTEMPT_DELAY)
            .await
            .map_err(|error| {
                failure::unreachable(
                    "upstream_connect_failed",
                    "could not connect to the upstream",
                    &error,
                    secrets,
                )
            })?;
        self.sockets.tune_upstream(&tcp);

        Ok(match url.scheme() {
            "wss" => {
                let name = match host {
                    Host::Domain(domain) => ServerName::try_from(domain.to_owned()),
                    Host::Ipv4(ip) => Ok(ServerName::from(IpAddr::V4(ip))),
                    Host::Ipv6(ip) => Ok(ServerName::from(IpAddr::V6(ip))),
                }
                .map_err(|error| {
                    failure::unreachable(
                        "upstream_tls_failed",
                        "invalid upstream TLS name",
                        &error,
                        secrets,
                    )
                })?;
                let tls = tls::connector(self.tls.as_ref())?
                    .connect(name, tcp)
                    .await
                    .map_err(|error| {
                        failure::unreachable(
                            "upstream_tls_failed",
                            "TLS handshake with the upstream failed",
                            &error,
                            secrets,
                        )
                    })?;
                UpstreamStream::Tls(Box::new(tls))
            }
            "ws" => UpstreamStream::Plain(tcp),
            other => {
                return Err(TargetError::misconfigured(format!(
                    "the upstream URL has scheme `{other}`; use ws or wss"
                ))
                .into());
            }
        })
    }
}

/// The pool a URL's sockets come from.
fn pool_key(url: &Url) -> Result<PoolKey, Rejection> {
    let misconfigured = |what: &str| Rejection::from(TargetError::misconfigured(what.to_owned()));
    let secure = match url.scheme() {
        "wss" => true,
        "ws" => false,
        other => {
            return Err(misconfigured(&format!(
                "the upstream URL has scheme `{other}`; use ws or wss"
            )));
        }
    };
    Ok(PoolKey {
        secure,
        host: url
            .host_str()
            .ok_or_else(|| misconfigured("the upstream URL has no host"))?
            .to_owned(),
        port: url
            .port_or_known_default()
            .ok_or_else(|| misconfigured("the upstream URL has no port"))?,
    })
}

/// The upstream handshake request: the WebSocket headers, the forwarded
/// client headers, then the target's headers (which win), and the target's
/// subprotocols.
fn handshake_request(
    url: &Url,
    forwarded: HeaderMap,
    target: HeaderMap,
    subprotocols: &[String],
) -> Result<Request, Rejection> {
    let misconfigured = |what: &str| Rejection::from(TargetError::misconfigured(what.to_owned()));
    let mut request = Request::get(url.as_str())
        .body(())
        .map_err(|_| misconfigured("the upstream URL is not a valid request URI"))?;
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let headers = request.headers_mut();
    *headers = forwarded;
    headers.extend(target);
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&host)
            .map_err(|_| misconfigured("the upstream host is not a valid header"))?,
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    headers.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_str(&generate_key()).expect("base64 is a valid header value"),
    );
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if !subprotocols.is_empty() {
        let offered = HeaderValue::from_str(&subprotocols.join(", "))
            .map_err(|_| misconfigured("a target subprotocol is not a valid header value"))?;
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, offered);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_headers_win_and_websocket_headers_are_ours() {
        let url = Url::parse("ws://127.0.0.1:9000/v1/realtime?model=m").unwrap();
        let mut forwarded = HeaderMap::new();
        forwarded.insert(header::USER_AGENT, HeaderValue::from_static("client"));
        forwarded.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer client"),
        );
        let mut target = HeaderMap::new();
        target.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer provider"),
        );
        let request = handshake_request(&url, forwarded, target, &["realtime".to_owned()]).unwrap();
        let headers = request.headers();
        assert_eq!(headers[header::AUTHORIZATION], "Bearer provider");
        assert_eq!(headers.get_all(header::AUTHORIZATION).iter().count(), 1);
        assert_eq!(headers[header::HOST], "127.0.0.1:9000");
        assert_eq!(headers[header::SEC_WEBSOCKET_PROTOCOL], "realtime");
        assert_eq!(request.uri(), "ws://127.0.0.1:9000/v1/realtime?model=m");
    }
}
