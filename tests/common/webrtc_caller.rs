//! A WebRTC caller for tests, as a browser is: an SDP offer with Opus and
//! PCMU audio to receive and an `oai-events` data channel, then a real
//! peer (`str0m`) over UDP on loopback. Included with `#[path]` by the
//! tests that make calls.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

/// What the caller got from one call.
#[derive(Debug, Default)]
pub struct Heard {
    /// PCMU packets, and how many of their bytes were not silence.
    pub packets: usize,
    pub loud_bytes: usize,
    pub events: Vec<Value>,
}

/// A caller as a browser is: an offer with Opus and PCMU audio to
/// receive and an `oai-events` data channel.
pub struct Caller {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<str0m::change::SdpPendingOffer>,
}

impl Caller {
    pub async fn offer() -> (Self, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_pcmu(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        change.add_channel("oai-events".into());
        let (offer, pending) = change.apply().unwrap();
        let caller = Self {
            rtc,
            socket,
            local,
            pending: Some(pending),
        };
        (caller, offer.to_sdp_string())
    }

    /// Takes the answer, then listens until `response.done` came on
    /// the data channel and a second of audio arrived (or 30 s passed).
    pub async fn listen(mut self, answer: &str) -> Heard {
        let answer = SdpAnswer::from_sdp_string(answer).expect("an SDP answer");
        let pending = self.pending.take().unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        let mut heard = Heard::default();
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut buffer = vec![0; 2000];
        // The data channel may overtake the last packets.
        while Instant::now() < give_up
            && !(heard.packets >= 50
                && heard
                    .events
                    .iter()
                    .any(|event| event["type"] == "response.done"))
        {
            let timeout = loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(when) => break when,
                    Output::Transmit(transmit) => {
                        self.socket
                            .send_to(&transmit.contents, transmit.destination)
                            .await
                            .unwrap();
                    }
                    Output::Event(Event::MediaData(data)) => {
                        assert_eq!(data.params.spec().codec, Codec::PCMU);
                        heard.packets += 1;
                        heard.loud_bytes += data
                            .data
                            .iter()
                            .filter(|&&byte| byte & 0x70 != 0x70)
                            .count();
                    }
                    Output::Event(Event::ChannelData(data)) => {
                        heard
                            .events
                            .push(serde_json::from_slice(&data.data).unwrap());
                    }
                    Output::Event(_) => {}
                }
            };
            let wake = tokio::time::Instant::from_std(timeout.min(give_up));
            tokio::select! {
                received = self.socket.recv_from(&mut buffer) => {
                    let (length, source) = received.unwrap();
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents: buffer[..length].try_into().unwrap(),
                    });
                    self.rtc.handle_input(input).unwrap();
                }
                () = tokio::time::sleep_until(wake) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
                }
            }
        }
        heard
    }
}
