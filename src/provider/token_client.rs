//! One HTTPS (or, for local endpoints, HTTP) POST: enough for an OAuth
//! token endpoint and a provider's WebRTC call endpoints, without a general
//! HTTP client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderValue};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

/// The largest response read.
const MAX_RESPONSE: usize = 64 * 1024;

/// Why a POST failed; the message names no secret.
#[derive(Debug)]
pub(crate) struct PostError(pub(crate) String);

/// POSTs `form` (already `application/x-www-form-urlencoded`) to `url`;
/// returns the status and body.
pub(crate) async fn post_form(
    url: &Url,
    form: String,
    tls: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), PostError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let (status, _headers, body) = post(url, headers, Bytes::from(form), tls, timeout).await?;
    Ok((status, body))
}

/// POSTs `body` with `headers` to `url` (`https`, or `http`) within
/// `timeout`; returns the status, headers and body (at most 64 KiB).
pub(crate) async fn post(
    url: &Url,
    headers: HeaderMap,
    body: Bytes,
    tls: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<(StatusCode, HeaderMap, Bytes), PostError> {
    tokio::time::timeout(timeout, post_now(url, headers, body, tls))
        .await
        .map_err(|_| PostError(format!("no answer within {timeout:?}")))?
}

async fn post_now(
    url: &Url,
    headers: HeaderMap,
    body: Bytes,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(StatusCode, HeaderMap, Bytes), PostError> {
    let host = url
        .host_str()
        .ok_or_else(|| PostError("the URL has no host".into()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| PostError("the URL has no port".into()))?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let mut request = Request::post(path)
        .header(HOST, authority)
        .body(Full::new(body))
        .map_err(|error| PostError(format!("invalid request: {error}")))?;
    request.headers_mut().extend(headers);
    let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|error| PostError(format!("could not connect to the endpoint: {error}")))?;
    let _ = tcp.set_nodelay(true);
    match url.scheme() {
        "https" => {
            let name = ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            )
            .map_err(|_| PostError("the host is not a valid TLS name".into()))?;
            let tls = tls.ok_or_else(|| {
                PostError("no TLS configuration for an https endpoint (no crypto provider)".into())
            })?;
            let stream = TlsConnector::from(Arc::clone(tls))
                .connect(name, tcp)
                .await
                .map_err(|error| PostError(format!("TLS with the endpoint failed: {error}")))?;
            send(stream, request).await
        }
        "http" => send(tcp, request).await,
        other => Err(PostError(format!(
            "URL scheme `{other}` is not http or https"
        ))),
    }
}

async fn send<IO>(
    io: IO,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, HeaderMap, Bytes), PostError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|error| PostError(format!("HTTP with the endpoint failed: {error}")))?;
    let connection = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| PostError(format!("the request failed: {error}")))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|_| PostError("the response could not be read (or is too large)".into()))?
            .to_bytes();
        Ok((status, headers, body))
    }
    .await;
    connection.abort();
    result
}
