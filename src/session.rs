//! One relayed session, from the client's upgrade to the end.

use std::sync::Arc;

use futures_util::SinkExt;
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::budget::session_hook::{BudgetHandle, BudgetHook};
use crate::client_io::ClientIo;
use crate::hooks::{PinModel, SessionControl};
use crate::layer::Config;
use crate::outcome::{ClosedBy, SessionEnd};
use crate::relay;
use crate::secret::Secret;
use crate::sessions::SessionPermit;
use crate::split_frames::SplitFrames;
use crate::upstream::Upstream;
use crate::usage::telemetry::{self, Active};
use crate::usage::{Meter, Metered, Observation, SessionInfo, SessionSummary, Traffic};

/// A session whose upstream is connected and whose `101` is on its way.
pub(crate) struct Session {
    pub(crate) config: Arc<Config>,
    pub(crate) permit: SessionPermit,
    pub(crate) upstream: Upstream,
    pub(crate) on_upgrade: OnUpgrade,
    pub(crate) info: SessionInfo,
    /// The provider credentials of the session, scrubbed from what the
    /// upstream says to the client.
    pub(crate) secrets: Vec<Secret>,
    /// Whether its usage is metered: not for a client's own sideband of a
    /// WebRTC call, whose usage the gateway's sideband meters.
    pub(crate) metered: bool,
}

impl Session {
    /// Waits for the client's side of the upgrade, then relays until the end.
    pub(crate) async fn run(self) {
        let Session {
            config,
            permit,
            mut upstream,
            on_upgrade,
            info,
            secrets,
            metered,
        } = self;
        let active = telemetry::session_started(&info);
        if let Some(observer) = &config.observer {
            observer.observe(Observation::SessionStart(&info));
        }
        let websocket = config.dialer.websocket;
        // Bounded: something outside the layer may keep the `101` from
        // being written, while this task holds an upstream and a slot.
        let upgraded = tokio::time::timeout(config.dialer.timeout, on_upgrade).await;
        let mut client = match upgraded {
            Ok(Ok(upgraded)) => {
                let (io, read) = ClientIo::new(upgraded, &config.dialer.sockets);
                let io = SplitFrames::new(io, &read, websocket.max_frame_size);
                WebSocketStream::from_raw_socket(io, Role::Server, Some(websocket)).await
            }
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no upgraded connection within {:?}", config.dialer.timeout),
                };
                let close = CloseFrame {
                    code: CloseCode::Error,
                    reason: "client upgrade failed".into(),
                };
                let close = Message::Close(Some(close));
                let closing = async {
                    match &mut upstream {
                        Upstream::Plain(socket) => socket.send(close).await,
                        Upstream::Gemini(socket) => socket.send(close).await,
                    }
                };
                let _ = tokio::time::timeout(config.relay.close_timeout, closing).await;
                let end = SessionEnd {
                    closed_by: ClosedBy::Client,
                    code: 1006,
                    reason: String::new(),
                    error: Some(format!("client upgrade failed: {error}")),
                };
                finish(
                    &config,
                    info,
                    active,
                    Metered::default(),
                    None,
                    Default::default(),
                    end,
                )
                .await;
                return;
            }
        };
        telemetry::session_open();
        let observer = config.observer.as_deref();
        // Without an observer or metrics there is nothing to account for:
        // the relay gets `None` and looks at no message.
        let mut meter = (metered && (observer.is_some() || cfg!(feature = "metrics")))
            .then(|| Meter::new(&info, observer));
        let control = SessionControl::new(info.clone());
        let listed = config.live.register(&control);
        let mut hooks: Vec<_> = config.hooks.iter().map(|new| new.make(&info)).collect();
        // After the user's hooks: it reserves for the `response.create` they let through.
        let mut budget = None;
        if let (Some(limits), Some(slot)) = (&config.budget, permit.budget_slot()) {
            // Announced out of budget while it was dialling: it ends at once.
            config.budget_listener.check(&control, permit.budget_mark());
            let (hook, handle) = BudgetHook::new(limits, &info, slot.session(), control.clone());
            hooks.push(Box::new(hook));
            budget = Some(handle);
        }
        if config.pin_model {
            hooks.push(Box::new(PinModel::new(&info)));
        }
        let mut pipeline = relay::Pipeline::new(hooks, control);
        if let Some(budget) = &budget {
            pipeline.track_responses(budget.open_responses());
        }
        let shutdown = config.sessions.subscribe();
        let report = match &mut upstream {
            Upstream::Plain(socket) => {
                relay::run(
                    &mut client,
                    &mut **socket,
                    &config.relay,
                    shutdown,
                    &secrets,
                    &mut pipeline,
                    &mut meter,
                )
                .await
            }
            Upstream::Gemini(socket) => {
                relay::run(
                    &mut client,
                    &mut **socket,
                    &config.relay,
                    shutdown,
                    &secrets,
                    &mut pipeline,
                    &mut meter,
                )
                .await
            }
        };
        drop((listed, pipeline));
        drop((client, upstream));
        let metered = meter.map(Meter::finish).unwrap_or_default();
        finish(
            &config,
            info,
            active,
            metered,
            budget,
            [report.client_to_upstream, report.upstream_to_client],
            report.ending.summary(),
        )
        .await;
        drop(permit);
    }
}

/// Reports the end of a session to the telemetry and the observer: what
/// its meter counted, and what its budget settled (waited for at most the
/// close timeout).
pub(crate) async fn finish(
    config: &Config,
    info: SessionInfo,
    active: Active,
    metered: Metered,
    budget: Option<BudgetHandle>,
    [client_to_upstream, upstream_to_client]: [Traffic; 2],
    end: SessionEnd,
) {
    let spend = match budget {
        Some(budget) => Some(budget.finish(config.relay.close_timeout).await),
        None => None,
    };
    let summary = SessionSummary {
        duration: info.started.elapsed(),
        identity: info.identity,
        provider: info.provider,
        model: info.model,
        deployment: info.deployment,
        attempts: info.attempts,
        request_id: info.request_id,
        session_id: metered.session_id,
        started_at: info.started_at,
        upstream_connect_time: info.connect_time,
        client_to_upstream,
        upstream_to_client,
        responses: metered.responses,
        usage: metered.usage,
        transcription: metered.transcription,
        input_audio_seconds: metered.input_audio_seconds,
        input_audio_bytes: metered.input_audio_bytes,
        spend,
        end,
    };
    telemetry::session_closed(&summary, active);
    if let Some(observer) = &config.observer {
        observer.observe(Observation::SessionEnd(&summary));
    }
}
