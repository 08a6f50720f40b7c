//! Opening a session: one straight line from the upgrade request to the
//! `101`, where every "no" is a response.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{Instrument, Span, field};

use crate::admission::admit;
use crate::budget;
use crate::deployment;
use crate::error::{ErrorType, Rejection};
use crate::handshake::{self, Upgrade};
use crate::hooks::SessionId;
use crate::layer::Config;
use crate::provider::Protocol;
use crate::request_id::request_id;
use crate::route;
use crate::session::Session;
use crate::upstream::headers::{X_REQUEST_ID, forwarded};
use crate::upstream::{Redial, Upstream};
use crate::usage::{SessionInfo, telemetry};
use crate::webrtc;

/// Answers a WebSocket upgrade on the realtime path: `101` (or `200` for
/// HTTP/2) with the session relayed in a spawned task, or an error response.
pub(crate) async fn accept<B: From<Bytes>>(config: Arc<Config>, parts: Parts) -> Response<B> {
    let request_id = request_id(&parts.headers);
    // INFO, so that the WARN events of a session carry its fields.
    let span = tracing::info_span!(
        "realtime_session",
        identity = field::Empty,
        provider = field::Empty,
        model = field::Empty,
        deployment = field::Empty,
        attempts = field::Empty,
        request_id = request_id.to_str().unwrap_or_default(),
    );
    match open(config, parts, request_id, &span)
        .instrument(span.clone())
        .await
    {
        Ok(response) => response,
        Err(rejection) => {
            span.in_scope(|| telemetry::refused(&rejection));
            rejection.into_response()
        }
    }
}

async fn open<B: From<Bytes>>(
    config: Arc<Config>,
    mut parts: Parts,
    request_id: HeaderValue,
    span: &Span,
) -> Result<Response<B>, Rejection> {
    let upgrade = handshake::validate(&parts)?;
    let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
        handshake::upgrade_required("this connection cannot be upgraded to a WebSocket")
    })?;
    config.origins.check(&parts.headers)?;
    // A WebRTC call's sideband (`?call_id=`) belongs to the call's owner.
    let call = match (&config.webrtc, webrtc::requested_call(parts.uri.query())) {
        (Some(calls), Some(id)) => Some(webrtc::find_call(calls, &id).await?),
        _ => None,
    };
    let identity = match &call {
        Some(call) => webrtc::call_owner(&config, &parts, call).await?,
        None => admit(&config, &parts).await?,
    };
    span.record("identity", identity.name());
    // Provider and model are recorded once (a recorded field shows twice
    // if recorded again): now when there is one target, else once the
    // session is connected.
    let destination = match call {
        Some(call) => {
            span.record("provider", call.provider.as_str());
            span.record("model", call.model.as_str());
            Destination::Call(call)
        }
        None => {
            let route = route::resolve(parts.uri.query(), &config.providers)?;
            if let [target] = route.targets.as_slice() {
                span.record("provider", target.provider_name.as_str());
                span.record("model", target.model.as_str());
            }
            Destination::Route(route)
        }
    };
    let named = match &destination {
        Destination::Call(_) => true,
        Destination::Route(route) => route.targets.len() == 1,
    };
    let mut permit = config.sessions.try_open(config.max_sessions)?;
    let id = SessionId::next();
    // A call's sideband is admitted and counted by the gateway's own sideband.
    let counted = matches!(destination, Destination::Route(_));
    if let (Some(budget), Destination::Route(route)) = (&config.budget, &destination) {
        let mark = config.budget_listener.start(budget, &config.live);
        let models = route
            .targets
            .iter()
            .map(|target| (target.provider_name.as_str(), target.model.as_str()));
        budget::admission::priced(budget, identity.name(), models)?;
        permit.hold_budget(
            budget::admission::admit(budget, identity.name(), id).await?,
            mark,
        );
    }

    let dialling = Instant::now();
    let forwarded = forwarded(&parts.headers, &config.forward_headers, &request_id);
    let connected = match destination {
        Destination::Route(route) => {
            deployment::connect(&config, route, &parts, &identity, forwarded.clone()).await?
        }
        Destination::Call(call) => {
            webrtc::attach_sideband(&config, &parts, &identity, &call, forwarded.clone()).await?
        }
    };
    let protocol = connected.protocol;
    let intent = connected.intent;
    let target = connected.target;
    if !named {
        span.record("provider", target.provider_name.as_str());
        span.record("model", target.model.as_str());
    }
    if let Some(entry) = &target.deployment {
        span.record("deployment", entry.spec.selector());
    }
    span.record("attempts", connected.attempts.len());
    let upstream = connected.upstream;
    let secrets = connected.secrets;
    if let Some(slot) = connected.slot {
        permit.hold(slot);
    }
    let info = SessionInfo {
        id,
        identity: identity.clone(),
        provider: target.provider_name.clone(),
        model: target.model.clone(),
        model_label: target.model_label,
        deployment: target
            .deployment
            .as_ref()
            .map(|entry| entry.spec.selector().to_owned()),
        attempts: connected.attempts,
        request_id: request_id.to_str().unwrap_or_default().to_owned(),
        pcm_input_rate: connected.pcm_input_rate,
        pcm_input_rates: connected.pcm_input_rates,
        connect_time: dialling.elapsed(),
        started_at: SystemTime::now(),
        started: Instant::now(),
    };
    telemetry::upstream_connected(&info);
    permit.connected();
    if let Err(refusal) = config.sessions.refuse_if_shutting_down() {
        // Shutdown began while dialling: the upstream learns why it is left.
        let mut upstream = upstream;
        let close = CloseFrame {
            code: CloseCode::Away,
            reason: "gateway shutting down".into(),
        };
        let _ = tokio::time::timeout(config.relay.close_timeout, upstream.close(Some(close))).await;
        return Err(refusal);
    }

    let upstream = match protocol {
        Protocol::GeminiLive(gemini) => {
            let redial = Redial {
                provider: target.provider,
                provider_name: target.provider_name,
                model: target.model,
                intent,
                parts: Redial::request_parts(&parts),
                dialer: config.dialer.clone(),
                forwarded,
                identity,
            };
            Upstream::gemini(upstream, gemini, redial)
        }
        _ => Upstream::Plain(Box::new(upstream)),
    };
    let response = switching_protocols(
        upgrade,
        handshake::choose_subprotocol(&parts.headers),
        request_id,
    );
    let session = Session {
        config,
        permit,
        upstream,
        on_upgrade,
        info,
        secrets,
        metered: counted,
    };
    tokio::spawn(session.run().instrument(span.clone()));
    Ok(response)
}

/// Where a session goes: a route to a model, or a WebRTC call's sideband.
enum Destination {
    Route(route::Route),
    Call(webrtc::CallRecord),
}

/// A provider that did not build its target within `timeout`.
pub(crate) fn provider_timeout(timeout: Duration) -> Rejection {
    Rejection::new(
        StatusCode::GATEWAY_TIMEOUT,
        ErrorType::Server,
        "provider_timeout",
        format!(
            "the provider did not build the upstream target within {} ms",
            timeout.as_millis()
        ),
    )
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
