//! The client side of the upstream WebSocket handshake (RFC 6455 §4.1).
//!
//! tungstenite's client handshake logs the whole request at TRACE level,
//! credential headers included, through the `log` crate. This one writes
//! the same request and checks the answer the same way, and logs nothing.

use http::header::{self, HeaderMap, HeaderName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{
    CapacityError, Error as WsError, ProtocolError, SubProtocolError,
};
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::handshake::machine::TryParse;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::split_frames::SplitFrames;

/// The most read of an upstream's answer: its head, or the body of a refusal.
const MAX_RESPONSE: usize = 64 << 10;

/// The WebSocket headers, written first and in their usual spelling (some
/// servers compare header names with case).
const WEBSOCKET_HEADERS: [(HeaderName, &str); 6] = [
    (header::HOST, "Host"),
    (header::CONNECTION, "Connection"),
    (header::UPGRADE, "Upgrade"),
    (header::SEC_WEBSOCKET_VERSION, "Sec-WebSocket-Version"),
    (header::SEC_WEBSOCKET_KEY, "Sec-WebSocket-Key"),
    (header::SEC_WEBSOCKET_PROTOCOL, "Sec-WebSocket-Protocol"),
];

/// Sends `request` (a complete handshake, key included) on `stream` and
/// returns the WebSocket once the upstream has switched protocols, its
/// incoming frames split into bounded pieces ([`SplitFrames`]).
///
/// A refusal is `WsError::Http` with the response and up to 64 KiB of its
/// body, as tungstenite reports it.
pub(crate) async fn client_handshake<S>(
    mut stream: S,
    request: &Request,
    config: WebSocketConfig,
) -> Result<WebSocketStream<SplitFrames<S>>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(&serialize(request)).await?;
    stream.flush().await?;

    let mut buffer = Vec::with_capacity(4 << 10);
    let (head_len, mut response) = loop {
        if let Some(parsed) = Response::try_parse(&buffer)? {
            break parsed;
        }
        if buffer.len() >= MAX_RESPONSE {
            return Err(WsError::Capacity(CapacityError::MessageTooLong {
                size: buffer.len(),
                max_size: MAX_RESPONSE,
            }));
        }
        if read_more(&mut stream, &mut buffer).await? == 0 {
            return Err(WsError::Protocol(ProtocolError::HandshakeIncomplete));
        }
    };
    let mut rest = buffer.split_off(head_len);

    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        // Keep what explains the refusal: the body, as far as it is announced.
        if let Some(length) = content_length(response.headers()) {
            let wanted = length.min(MAX_RESPONSE);
            while rest.len() < wanted && read_more(&mut stream, &mut rest).await? > 0 {}
            rest.truncate(wanted);
        }
        *response.body_mut() = Some(rest);
        return Err(WsError::Http(Box::new(response)));
    }
    verify(&response, request)?;
    let stream = SplitFrames::new(stream, &rest, config.max_frame_size);
    Ok(WebSocketStream::from_raw_socket(stream, Role::Client, Some(config)).await)
}

/// The request head as bytes: the WebSocket headers first, then the others.
fn serialize(request: &Request) -> Vec<u8> {
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut bytes = format!("GET {target} HTTP/1.1\r\n").into_bytes();
    let mut line = |name: &str, value: &[u8]| {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    };
    let headers = request.headers();
    for (name, spelling) in &WEBSOCKET_HEADERS {
        for value in headers.get_all(name) {
            line(spelling, value.as_bytes());
        }
    }
    for (name, value) in headers {
        if !WEBSOCKET_HEADERS.iter().any(|(known, _)| known == name) {
            line(name.as_str(), value.as_bytes());
        }
    }
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// Reads what is available into `buffer`; `0` at end of stream.
async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut chunk = [0u8; 4 << 10];
    let n = stream.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Checks a `101` as RFC 6455 §4.1 asks of a client.
fn verify(response: &Response, request: &Request) -> Result<(), WsError> {
    let headers = response.headers();
    let tokens = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
    };
    if !tokens(header::UPGRADE).any(|t| t.eq_ignore_ascii_case("websocket")) {
        return Err(WsError::Protocol(
            ProtocolError::MissingUpgradeWebSocketHeader,
        ));
    }
    if !tokens(header::CONNECTION).any(|t| t.eq_ignore_ascii_case("upgrade")) {
        return Err(WsError::Protocol(
            ProtocolError::MissingConnectionUpgradeHeader,
        ));
    }
    let expected = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|key| derive_accept_key(key.as_bytes()));
    let accept = headers.get(header::SEC_WEBSOCKET_ACCEPT);
    if !matches!((accept, expected), (Some(accept), Some(expected)) if accept == expected.as_str())
    {
        return Err(WsError::Protocol(
            ProtocolError::SecWebSocketAcceptKeyMismatch,
        ));
    }
    // No extension is ever offered, so none may be in use.
    if headers.contains_key(header::SEC_WEBSOCKET_EXTENSIONS) {
        return Err(WsError::Protocol(ProtocolError::InvalidHeader(Box::new(
            header::SEC_WEBSOCKET_EXTENSIONS,
        ))));
    }
    // A subprotocol, if any, must be one that was offered.
    if let Some(chosen) = headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
        let offered = request
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|offered| offered.trim().as_bytes() == chosen.as_bytes());
        if !offered {
            return Err(WsError::Protocol(
                ProtocolError::SecWebSocketSubProtocolError(SubProtocolError::InvalidSubProtocol),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::header::HeaderValue;

    use super::*;

    fn request(protocols: Option<&'static str>) -> Request {
        let mut request = Request::get("ws://upstream.test/v1/realtime?model=m")
            .header(header::HOST, "upstream.test")
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
            .header(header::AUTHORIZATION, "Bearer k")
            .body(())
            .unwrap();
        if let Some(protocols) = protocols {
            request.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocols),
            );
        }
        request
    }

    fn switching(extra: &[(&str, &str)]) -> Response {
        let mut response = http::Response::builder()
            .status(101)
            .header("upgrade", "WebSocket")
            .header("connection", "keep-alive, Upgrade")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        for (name, value) in extra {
            response = response.header(*name, *value);
        }
        response.body(None).unwrap()
    }

    #[test]
    fn writes_the_request_line_and_every_header() {
        let text = String::from_utf8(serialize(&request(Some("realtime")))).unwrap();
        assert!(
            text.starts_with(
                "GET /v1/realtime?model=m HTTP/1.1\r\nHost: upstream.test\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: realtime\r\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("authorization: Bearer k\r\n\r\n"), "{text}");
    }

    #[test]
    fn checks_the_answer_like_rfc_6455_asks() {
        assert!(verify(&switching(&[]), &request(None)).is_ok());
        let protocol = [("sec-websocket-protocol", "realtime")];
        assert!(verify(&switching(&protocol), &request(Some("x, realtime"))).is_ok());
        assert!(verify(&switching(&[]), &request(Some("realtime"))).is_ok());
        for (response, request) in [
            (switching(&protocol), request(None)),
            (switching(&protocol), request(Some("other"))),
            (
                switching(&[("sec-websocket-extensions", "permessage-deflate")]),
                request(None),
            ),
        ] {
            assert!(verify(&response, &request).is_err());
        }
        let mut wrong_accept = switching(&[]);
        wrong_accept.headers_mut().insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        );
        assert!(verify(&wrong_accept, &request(None)).is_err());
        let mut no_upgrade = switching(&[]);
        no_upgrade.headers_mut().remove(header::UPGRADE);
        assert!(verify(&no_upgrade, &request(None)).is_err());
        let mut no_connection = switching(&[]);
        no_connection.headers_mut().remove(header::CONNECTION);
        assert!(verify(&no_connection, &request(None)).is_err());
    }

    #[tokio::test]
    async fn a_refusal_keeps_its_announced_body_and_no_more() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let answer = tokio::spawn(async move {
            let mut head = vec![0u8; 1024];
            let _ = server.read(&mut head).await.unwrap();
            server
                .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\n")
                .await
                .unwrap();
            server.write_all(b"nope!trailing").await.unwrap();
            server
        });
        let error = client_handshake(client, &request(None), WebSocketConfig::default())
            .await
            .unwrap_err();
        let _server = answer.await.unwrap();
        match error {
            WsError::Http(response) => {
                assert_eq!(response.status(), 401);
                assert_eq!(response.body().as_deref(), Some(&b"nope!"[..]));
            }
            other => panic!("{other}"),
        }
    }
}
