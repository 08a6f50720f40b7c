//! A call's sideband: the WebSocket `/v1/realtime?call_id=rtc_…` through
//! which a server watches (and steers) a WebRTC call, as on OpenAI. It
//! sees every event of the call from `session.created` on, even when it
//! attaches late, and may send `response.create`.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Call, Calls, Command};

/// The `call_id` of a request target such as `/v1/realtime?call_id=rtc_…`.
pub(crate) fn call_id(target: &str) -> Option<&str> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("call_id="))
}

/// Serves one sideband connection, or refuses it with `404` when the call is not live.
pub(crate) async fn serve(stream: TcpStream, calls: Calls) {
    let mut found: Option<Arc<Call>> = None;
    // tungstenite's callback returns its `ErrorResponse`.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        let target = request.uri().to_string();
        found = call_id(&target).and_then(|id| calls.get(id));
        if found.is_some() {
            return Ok(response);
        }
        let body = r#"{"error":{"type":"invalid_request_error","code":"call_not_found","message":"No live call has this id.","param":null}}"#;
        let mut refusal = ErrorResponse::new(Some(body.to_owned()));
        *refusal.status_mut() = StatusCode::NOT_FOUND;
        refusal.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Err(refusal)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let Some(call) = found else { return };
    let (mut sink, mut stream) = socket.split();
    let (history, mut live) = call.subscribe();
    for event in history {
        if sink.send(Message::text(event.to_string())).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            event = live.recv() => match event {
                Ok(event) => {
                    if sink.send(Message::text(event.to_string())).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let event: Option<serde_json::Value> = serde_json::from_str(text.as_str()).ok();
                    if event.as_ref().and_then(|event| event["type"].as_str()) == Some("response.create") {
                        let _ = call.commands.send(Command::Respond);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            () = call.ended() => break,
        }
    }
    // Events emitted just before the end still go out.
    while let Ok(event) = live.try_recv() {
        if sink.send(Message::text(event.to_string())).await.is_err() {
            return;
        }
    }
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "the call ended".into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_from_targets() {
        assert_eq!(call_id("/v1/realtime?call_id=rtc_1"), Some("rtc_1"));
        assert_eq!(call_id("/v1/realtime?x=1&call_id=rtc_2"), Some("rtc_2"));
        assert_eq!(call_id("/v1/realtime?model=demo"), None);
        assert_eq!(call_id("/v1/realtime"), None);
    }
}
