//! The WebSocket sessions of a scripted server: each handshake answered
//! as told and recorded, then the session run by the script.

use std::sync::{Arc, Mutex};

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use super::log::{Log, RecordedRequest};
use super::script::{DynScript, Handshake};
use super::session::UpstreamSession;

/// The tasks serving a scripted server's sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<Vec<AbortHandle>>);

impl Sessions {
    /// Serves session `number` on `stream`, in a task of its own.
    pub(crate) fn spawn(
        &self,
        stream: TcpStream,
        handshake: Handshake,
        script: &Arc<dyn DynScript>,
        log: &Arc<Log>,
        number: usize,
    ) {
        let task = tokio::spawn(serve(
            stream,
            handshake,
            Arc::clone(script),
            Arc::clone(log),
            number,
        ));
        let mut live = self.0.lock().expect("sessions lock");
        live.retain(|session| !session.is_finished());
        live.push(task.abort_handle());
    }

    /// Cuts every live session without a close frame.
    pub(crate) fn abort(&self) {
        for session in self.0.lock().expect("sessions lock").drain(..) {
            session.abort();
        }
    }
}

// The callback's error type is tungstenite's `ErrorResponse`.
#[allow(clippy::result_large_err)]
async fn serve(
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
