//! One HTTPS (or, for local endpoints, HTTP) form POST: enough for an
//! OAuth token endpoint, without a general HTTP client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use url::Url;

/// The largest token response read.
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
    tokio::time::timeout(timeout, post(url, form, tls))
        .await
        .map_err(|_| PostError(format!("no answer within {timeout:?}")))?
}

async fn post(
    url: &Url,
    form: String,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(StatusCode, Bytes), PostError> {
    let host = url
        .host_str()
        .ok_or_else(|| PostError("the token URL has no host".into()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| PostError("the token URL has no port".into()))?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let request = Request::post(path)
        .header(HOST, authority)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .map_err(|error| PostError(format!("invalid token request: {error}")))?;
    let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(|error| PostError(format!("could not connect to the token endpoint: {error}")))?;
    let _ = tcp.set_nodelay(true);
    match url.scheme() {
        "https" => {
            let name = ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            )
            .map_err(|_| PostError("the token host is not a valid TLS name".into()))?;
            let tls = tls.ok_or_else(|| {
                PostError(
                    "no TLS configuration for an https token endpoint (no crypto provider)".into(),
                )
            })?;
            let stream = TlsConnector::from(Arc::clone(tls))
                .connect(name, tcp)
                .await
                .map_err(|error| {
                    PostError(format!("TLS with the token endpoint failed: {error}"))
                })?;
            send(stream, request).await
        }
        "http" => send(tcp, request).await,
        other => Err(PostError(format!(
            "token URL scheme `{other}` is not http or https"
        ))),
    }
}

async fn send<IO>(io: IO, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), PostError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|error| PostError(format!("HTTP with the token endpoint failed: {error}")))?;
    let connection = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| PostError(format!("the token request failed: {error}")))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|_| {
                PostError("the token response could not be read (or is too large)".into())
            })?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    connection.abort();
    result
}
