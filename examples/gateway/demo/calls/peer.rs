//! The demo's WebRTC peer for one call: `str0m` (sans-IO) driven over a
//! UDP socket on loopback. It answers the offer with PCMU only (G.711
//! μ-law needs no Opus encoder; browsers offer it), plays the chime once
//! the call is up and again on every `response.create`, and sends the
//! call's events on the data channel, as OpenAI's `oai-events` does.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::events::CallEvents;
use super::pcmu;
use super::{Call, Calls, Command};

/// Why an offer could not be answered.
#[derive(Debug)]
pub(crate) enum AnswerError {
    /// The offer is not valid SDP, or offers nothing the demo can send.
    Offer(String),
    /// No UDP socket on loopback.
    Socket(io::Error),
}

/// Answers `offer` for a new call on `calls`: returns the call's id and
/// the SDP answer; the peer runs until the call ends.
pub(crate) async fn answer(
    calls: &Calls,
    offer: &str,
    model: Option<&str>,
) -> Result<(String, String), AnswerError> {
    let offer =
        SdpOffer::from_sdp_string(offer).map_err(|error| AnswerError::Offer(error.to_string()))?;
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(AnswerError::Socket)?;
    let local = socket.local_addr().map_err(AnswerError::Socket)?;
    // ICE-lite: the browser checks the one host candidate, the demo answers.
    let mut rtc = Rtc::builder()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_pcmu(true, false)
        .build(Instant::now());
    let candidate =
        Candidate::host(local, "udp").map_err(|error| AnswerError::Offer(error.to_string()))?;
    rtc.add_local_candidate(candidate);
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|error| AnswerError::Offer(error.to_string()))?;
    let (call, commands) = calls.open();
    let id = call.id.clone();
    let mut events = CallEvents::new(&id, model);
    call.emit(events.session_created());
    let peer = Peer {
        rtc,
        socket,
        local,
        call,
        events,
        audio: None,
        channel: None,
        playing: None,
        responses: 0,
        rtp_time: 0,
        patience: calls.patience,
    };
    let calls = calls.clone();
    tokio::spawn(async move {
        let id = peer.call.id.clone();
        peer.run(commands).await;
        calls.close(&id);
    });
    Ok((id, answer.to_sdp_string()))
}

/// The chime being played: its frames, the next one's number and when it is due.
struct Playback {
    response: u64,
    frames: Vec<Vec<u8>>,
    next: usize,
    due: Instant,
}

struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    call: Arc<Call>,
    events: CallEvents,
    /// The audio section the chime goes to, and its PCMU payload type.
    audio: Option<(Mid, Pt)>,
    channel: Option<ChannelId>,
    playing: Option<Playback>,
    responses: u64,
    /// The RTP timestamp of the next frame, in 8 kHz samples.
    rtp_time: u64,
    /// How long the browser may stay silent (before and after connecting).
    patience: Duration,
}

impl Peer {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buffer = vec![0; 2000];
        let mut heard = Instant::now();
        loop {
            let Some(timeout) = self.drive().await else {
                return;
            };
            let due = self
                .playing
                .as_ref()
                .map_or(timeout, |playing| playing.due.min(timeout));
            if heard.elapsed() > self.patience {
                tracing::info!(call = %self.call.id, "demo call: the browser went quiet, dropping it");
                return;
            }
            let wake = tokio::time::Instant::from_std(due.min(heard + self.patience));
            tokio::select! {
                received = self.socket.recv_from(&mut buffer) => {
                    let Ok((length, source)) = received else { return };
                    heard = Instant::now();
                    let Ok(contents) = buffer[..length].try_into() else { continue };
                    let input = Input::Receive(
                        Instant::now(),
                        Receive { proto: Protocol::Udp, source, destination: self.local, contents },
                    );
                    if self.rtc.handle_input(input).is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    if self.rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
                        return;
                    }
                    self.play_due();
                }
                Some(Command::Respond) = commands.recv() => self.requested(),
                () = self.call.ended() => {
                    self.rtc.disconnect();
                    return;
                }
            }
        }
    }

    /// Sends what `str0m` has to send and handles its events; returns when
    /// it next needs the time, or `None` once the call is over.
    async fn drive(&mut self) -> Option<Instant> {
        loop {
            match self.rtc.poll_output().ok()? {
                Output::Timeout(when) => return Some(when),
                Output::Transmit(transmit) => {
                    let _ = self
                        .socket
                        .send_to(&transmit.contents, transmit.destination)
                        .await;
                }
                Output::Event(event) => {
                    if !self.handle(event) {
                        return None;
                    }
                }
            }
        }
    }

    /// Handles one event; `false` once the call is over.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::MediaAdded(media)
                if media.kind == MediaKind::Audio
                    && matches!(media.direction, Direction::SendOnly | Direction::SendRecv) =>
            {
                let pt = self.rtc.writer(media.mid).and_then(|writer| {
                    writer
                        .payload_params()
                        .find(|params| params.spec().codec == Codec::PCMU)
                        .map(|params| params.pt())
                });
                self.audio = pt.map(|pt| (media.mid, pt));
                tracing::debug!(call = %self.call.id, audio = ?self.audio, "demo call: audio section");
                // The greeting, when the call came up first.
                self.respond();
            }
            Event::Connected => {
                tracing::info!(call = %self.call.id, "demo call connected");
                // The greeting, when the audio section is known already.
                self.respond();
            }
            Event::ChannelOpen(id, _label) => {
                self.channel = Some(id);
                let history = self.call.subscribe().0;
                for event in history {
                    self.send_on_channel(&event);
                }
            }
            Event::ChannelData(data) => {
                let event: Option<Value> = serde_json::from_slice(&data.data).ok();
                if event.as_ref().and_then(|event| event["type"].as_str())
                    == Some("response.create")
                {
                    self.requested();
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => return false,
            other => tracing::trace!(call = %self.call.id, event = ?other, "demo call event"),
        }
        true
    }

    /// A `response.create`: a response, or an `error` while one is playing.
    fn requested(&mut self) {
        if self.playing.is_some() {
            let error = self.events.error(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress.",
            );
            self.emit(error);
            return;
        }
        self.respond();
    }

    /// Starts a response: the chime, unless one is playing or there is no audio to send it on.
    fn respond(&mut self) {
        if self.playing.is_some() || self.audio.is_none() || !self.rtc.is_connected() {
            return;
        }
        self.responses += 1;
        for event in self.events.response_started(self.responses) {
            self.emit(event);
        }
        self.playing = Some(Playback {
            response: self.responses,
            frames: pcmu::chime_frames(),
            next: 0,
            due: Instant::now(),
        });
    }

    /// Writes the frames that are due, 20 ms apart; ends the response after the last.
    fn play_due(&mut self) {
        let Some((mid, pt)) = self.audio else { return };
        let now = Instant::now();
        while let Some(playing) = self.playing.as_mut().filter(|playing| playing.due <= now) {
            let frame = playing.frames[playing.next].clone();
            playing.next += 1;
            playing.due += Duration::from_millis(20);
            let finished =
                (playing.next == playing.frames.len()).then_some((playing.response, playing.next));
            let time = MediaTime::new(self.rtp_time, Frequency::EIGHT_KHZ);
            self.rtp_time += pcmu::FRAME as u64;
            if let Some(writer) = self.rtc.writer(mid) {
                let _ = writer.write(pt, now, time, frame);
            }
            if let Some((response, frames)) = finished {
                self.playing = None;
                for event in self.events.response_done(response, frames as u64) {
                    self.emit(event);
                }
            }
        }
    }

    /// Sends `event` to the call's sidebands and on the data channel.
    fn emit(&mut self, event: Value) {
        self.send_on_channel(&event);
        self.call.emit(event);
    }

    fn send_on_channel(&mut self, event: &Value) {
        let Some(id) = self.channel else { return };
        if let Some(mut channel) = self.rtc.channel(id) {
            let _ = channel.write(false, event.to_string().as_bytes());
        }
    }
}
