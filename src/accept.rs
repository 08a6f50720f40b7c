//! Opening a session: one straight line from the upgrade request to the
//! `101`, where every "no" is a response.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use tracing::Instrument;

use crate::error::Rejection;
use crate::handshake::{self, Upgrade};
use crate::layer::Config;
use crate::provider::TargetRequest;
use crate::request_id::request_id;
use crate::route;
use crate::session::Session;
use crate::upstream::headers::{X_REQUEST_ID, forwarded};

/// Answers a WebSocket upgrade on the realtime path: `101` (or `200` for
/// HTTP/2) with the session relayed in a spawned task, or an error response.
pub(crate) async fn accept<B: From<Bytes>>(config: Arc<Config>, parts: Parts) -> Response<B> {
    match open(config, parts).await {
        Ok(response) => response,
        Err(rejection) => {
            tracing::debug!(
                status = rejection.status.as_u16(),
                code = rejection.code,
                "realtime upgrade refused"
            );
            rejection.into_response()
        }
    }
}

async fn open<B: From<Bytes>>(
    config: Arc<Config>,
    mut parts: Parts,
) -> Result<Response<B>, Rejection> {
    let upgrade = handshake::validate(&parts)?;
    let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
        handshake::upgrade_required("this connection cannot be upgraded to a WebSocket")
    })?;
    config.origins.check(&parts.headers)?;
    let route = route::resolve(parts.uri.query(), &config.providers)?;
    let permit = config.sessions.try_open(config.max_sessions)?;
    let request_id = request_id(&parts.headers);

    let target = route.provider.target(&TargetRequest::new(
        &route.provider_name,
        &route.model,
        route.intent.as_deref(),
        &parts,
    ))?;
    let span = tracing::debug_span!(
        "realtime_session",
        provider = %route.provider_name,
        model = %route.model,
        request_id = request_id.to_str().unwrap_or_default(),
    );
    let upstream = config
        .dialer
        .dial(
            target,
            forwarded(&parts.headers, &config.forward_headers, &request_id),
        )
        .instrument(span.clone())
        .await?;
    config.sessions.refuse_if_shutting_down()?;

    let response = switching_protocols(
        upgrade,
        handshake::choose_subprotocol(&parts.headers),
        request_id,
    );
    let session = Session {
        config,
        permit,
        upstream: Box::new(upstream),
        on_upgrade,
    };
    tokio::spawn(session.run().instrument(span));
    Ok(response)
}

/// The `101 Switching Protocols` (HTTP/1.1) or `200` (HTTP/2) that opens the session.
fn switching_protocols<B: From<Bytes>>(
    upgrade: Upgrade,
    protocol: Option<HeaderValue>,
    request_id: HeaderValue,
) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::new()));
    match upgrade {
        Upgrade::Http1 { accept } => {
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = response.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        Upgrade::Http2 => *response.status_mut() = StatusCode::OK,
    }
    let headers = response.headers_mut();
    if let Some(protocol) = protocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    headers.insert(X_REQUEST_ID, request_id);
    response
}
