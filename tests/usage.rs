//! Usage accounting end to end: recorded provider sessions replayed through a
//! real gateway, cut-off sessions, input audio time, tracing and metrics.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tower_realtime::deployment::Attempt;
use tower_realtime::provider::OpenAi;
use tower_realtime::testing::{Handshake, MockUpstream, UpstreamSession};
use tower_realtime::usage::{
    CachedTokenDetails, InputTokenDetails, Observation, OutputTokenDetails, SessionInfo,
    SessionSummary, Traffic, TranscriptionRecord, TranscriptionTotals, TranscriptionUsage, Usage,
    UsageRecord,
};
use tower_realtime::{ClosedBy, Identity, Providers, RealtimeLayer, Secret, SessionEnd};

// ---------------------------------------------------------------------------
// Harness

/// One line of a recorded session.
#[derive(Debug, Clone)]
enum Line {
    /// Sent by the client.
    Client(String),
    /// Sent by the upstream.
    Upstream(String),
}

/// Reads `tests/fixtures/usage/NAME`: `client {...}` and `upstream {...}`
/// lines, `#` comments.
fn fixture(name: &str) -> Vec<Line> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/usage")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| match line.split_once(' ') {
            Some(("client", event)) => Line::Client(event.to_owned()),
            Some(("upstream", event)) => Line::Upstream(event.to_owned()),
            _ => panic!("bad fixture line in {name}: {line:.60}"),
        })
        .collect()
}

/// What one side of a fixture sends: messages and payload bytes.
fn traffic(lines: &[Line], client: bool) -> Traffic {
    let sent: Vec<&String> = lines
        .iter()
        .filter_map(|line| match (line, client) {
            (Line::Client(text), true) | (Line::Upstream(text), false) => Some(text),
            _ => None,
        })
        .collect();
    Traffic::new(
        sent.len() as u64,
        sent.iter().map(|text| text.len() as u64).sum(),
    )
}

/// Everything an observer was told, in order.
#[derive(Debug)]
enum Seen {
    Start(Box<SessionInfo>),
    Usage(UsageRecord),
    Transcription(TranscriptionRecord),
    End(Box<SessionSummary>),
}

/// The receiving end of an observer.
struct Observed(mpsc::UnboundedReceiver<Seen>);

/// An observer that forwards everything it is told to [`Observed`].
fn observer() -> (impl Fn(Observation<'_>) + Send + Sync + 'static, Observed) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let observer = move |observation: Observation<'_>| {
        let seen = match observation {
            Observation::SessionStart(info) => Seen::Start(Box::new(info.clone())),
            Observation::Usage(record) => Seen::Usage(record.clone()),
            Observation::Transcription(record) => Seen::Transcription(record.clone()),
            Observation::SessionEnd(summary) => Seen::End(Box::new(summary.clone())),
            _ => return,
        };
        let _ = sender.send(seen);
    };
    (observer, Observed(receiver))
}

impl Observed {
    /// The records of one session, from its start up to and including its
    /// summary; checks that the start came first and names the same session.
    async fn session(&mut self) -> (Vec<UsageRecord>, Vec<TranscriptionRecord>, SessionSummary) {
        let (mut usage, mut transcriptions) = (Vec::new(), Vec::new());
        let mut start = None;
        loop {
            let seen = tokio::time::timeout(PROMPTLY, self.0.recv())
                .await
                .expect("the session ends in time")
                .expect("the observer is alive");
            match seen {
                Seen::Start(info) => {
                    assert!(start.is_none(), "one start per session");
                    assert!(usage.is_empty() && transcriptions.is_empty());
                    start = Some(info);
                }
                Seen::Usage(record) => usage.push(record),
                Seen::Transcription(record) => transcriptions.push(record),
                Seen::End(summary) => {
                    let start = start.expect("the start is reported before the end");
                    assert_eq!(
                        (
                            start.identity(),
                            start.provider(),
                            start.model(),
                            start.request_id()
                        ),
                        (
                            &summary.identity,
                            summary.provider.as_str(),
                            summary.model.as_str(),
                            summary.request_id.as_str()
                        )
                    );
                    assert_eq!(start.started_at(), summary.started_at);
                    assert_eq!(start.connect_time(), summary.upstream_connect_time);
                    for record in &usage {
                        assert_eq!(record.identity, summary.identity);
                    }
                    for record in &transcriptions {
                        assert_eq!(record.identity, summary.identity);
                    }
                    return (usage, transcriptions, *summary);
                }
            }
        }
    }

    /// Nothing more was reported.
    fn is_done(&mut self) -> bool {
        self.0.try_recv().is_err()
    }
}

/// A provider named `name` relaying to `upstream`.
fn provider(name: &str, upstream: &MockUpstream) -> Providers {
    let key = Secret::new(PROVIDER_KEY);
    match name {
        // xAI accepts other PCM rates than its default.
        "xai" => Providers::new().with(
            name,
            tower_realtime::provider::Xai::new(key)
                .base_url(&upstream.base_url())
                .unwrap(),
        ),
        _ => Providers::new().with(
            name,
            OpenAi::new(key).base_url(&upstream.base_url()).unwrap(),
        ),
    }
}

/// Replays `lines` both ways through a real gateway: the mock upstream sends
/// the `upstream` lines and waits for each `client` line; the client sends
/// the `client` lines and checks each `upstream` line arrives unchanged;
/// then the client closes with 1000.
async fn replay(
    provider_name: &str,
    model: &str,
    lines: Vec<Line>,
) -> (Vec<UsageRecord>, Vec<TranscriptionRecord>, SessionSummary) {
    let script_lines = Arc::new(lines.clone());
    let upstream = MockUpstream::with_script(move |mut session: UpstreamSession| {
        let lines = Arc::clone(&script_lines);
        async move {
            for line in lines.iter() {
                let alive = match line {
                    Line::Upstream(text) => session.send(Message::text(text.as_str())).await,
                    Line::Client(_) => session.recv().await.is_some(),
                };
                if !alive {
                    return;
                }
            }
            while session.recv().await.is_some() {}
        }
    })
    .await
    .unwrap();
    let (observer, mut observed) = observer();
    let tenant = format!("tenant-{provider_name}");
    let layer = RealtimeLayer::new(provider(provider_name, &upstream))
        .admission(move |_: &http::request::Parts| Ok(Identity::new(tenant.as_str())))
        .observer(observer);
    let gateway = serve_axum(layer).await;

    let before = (SystemTime::now(), Instant::now());
    let url = gateway.url(&format!("?model={provider_name}/{model}"));
    let request_id = format!("req-replay-{provider_name}");
    let (mut client, _) = connect(&url, &[("x-request-id", &request_id)])
        .await
        .unwrap();
    for line in &lines {
        match line {
            Line::Client(text) => send_text(&mut client, text).await,
            Line::Upstream(text) => {
                assert_eq!(next_data(&mut client).await, Message::text(text.as_str()))
            }
        }
    }
    client
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    while let Some(Ok(_)) = client.next().await {}

    let (usage, transcriptions, summary) = observed.session().await;
    check_times(&summary, before);
    let sent_by_client: Vec<Message> = lines
        .iter()
        .filter_map(|line| match line {
            Line::Client(text) => Some(Message::text(text.as_str())),
            Line::Upstream(_) => None,
        })
        .collect();
    assert_eq!(upstream.received(), sent_by_client);
    assert_eq!(summary.identity.name(), format!("tenant-{provider_name}"));
    assert_eq!(summary.provider, provider_name);
    assert_eq!(summary.model, model);
    assert_eq!(summary.request_id, request_id);
    assert_eq!(
        summary.client_to_upstream,
        traffic(&lines, true),
        "client traffic"
    );
    assert_eq!(
        summary.upstream_to_client,
        traffic(&lines, false),
        "upstream traffic"
    );
    assert_eq!(
        summary.end,
        SessionEnd::new(ClosedBy::Client, 1000).with_reason("bye")
    );
    assert!(observed.is_done());
    (usage, transcriptions, summary)
}

/// The summary's times are within the test's own.
fn check_times(summary: &SessionSummary, (wall, start): (SystemTime, Instant)) {
    assert!(summary.started_at >= wall && summary.started_at <= SystemTime::now());
    assert!(summary.duration <= start.elapsed());
    assert!(summary.upstream_connect_time <= start.elapsed());
}

/// A usage record of the replayed session.
fn record(
    provider: &str,
    model: &str,
    session: Option<&str>,
    response: &str,
    usage: Usage,
) -> UsageRecord {
    let mut record = UsageRecord::new(provider, model, format!("req-replay-{provider}"), usage);
    record.session_id = session.map(str::to_owned);
    record.response_id = Some(response.into());
    record.identity = Identity::new(format!("tenant-{provider}"));
    record
}

/// A transcription record of the replayed session.
fn transcription_record(
    provider: &str,
    session: Option<&str>,
    item: &str,
    usage: TranscriptionUsage,
) -> TranscriptionRecord {
    let mut record = TranscriptionRecord::new(
        provider,
        "gpt-realtime",
        format!("req-replay-{provider}"),
        usage,
    );
    record.session_id = session.map(str::to_owned);
    record.item_id = Some(item.into());
    record.identity = Identity::new(format!("tenant-{provider}"));
    record
}

/// The summary `actual` should be, given its times and traffic (checked by [`replay`]).
fn expected(actual: &SessionSummary, session: Option<&str>, rest: Expected) -> SessionSummary {
    let mut expected = SessionSummary::new(
        actual.provider.clone(),
        actual.model.clone(),
        actual.request_id.clone(),
        actual.end.clone(),
    );
    expected.session_id = session.map(str::to_owned);
    expected.started_at = actual.started_at;
    expected.duration = actual.duration;
    expected.upstream_connect_time = actual.upstream_connect_time;
    // Not an alias: one attempt, on the provider and model the client named.
    let tried = actual
        .attempts
        .first()
        .map_or(Duration::ZERO, |a| a.duration);
    expected.attempts = vec![Attempt::new(
        format!("{}/{}", actual.provider, actual.model),
        None,
        tried,
    )];
    expected.client_to_upstream = actual.client_to_upstream;
    expected.upstream_to_client = actual.upstream_to_client;
    expected.responses = rest.responses;
    expected.usage = rest.usage;
    expected.transcription = rest.transcription;
    expected.input_audio_seconds = rest.input_audio_seconds;
    expected.input_audio_bytes = rest.input_audio_bytes;
    expected.identity = Identity::new(format!("tenant-{}", actual.provider));
    expected
}

struct Expected {
    responses: u64,
    usage: Usage,
    transcription: TranscriptionTotals,
    input_audio_seconds: f64,
    input_audio_bytes: u64,
}

// ---------------------------------------------------------------------------
// Recorded sessions

#[tokio::test]
async fn openai_ga_session() {
    let (usage, transcriptions, summary) =
        replay("openai", "gpt-realtime", fixture("openai_ga.events")).await;
    let session = Some("sess_CQx0XzJvHb3tP7Lq9dVwE");
    assert_eq!(
        usage,
        [
            record(
                "openai",
                "gpt-realtime",
                session,
                "resp_CQx0Zw7sJ2uKx1bQ4hHcM",
                Usage::default()
                    .with_total_tokens(253)
                    .with_input_tokens(132)
                    .with_output_tokens(121)
                    .with_input_token_details(
                        InputTokenDetails::default()
                            .with_text_tokens(119)
                            .with_audio_tokens(13)
                            .with_image_tokens(0)
                            .with_cached_tokens(0)
                            .with_cached_tokens_details(
                                CachedTokenDetails::default()
                                    .with_text_tokens(0)
                                    .with_audio_tokens(0)
                                    .with_image_tokens(0)
                            )
                    )
                    .with_output_token_details(
                        OutputTokenDetails::default()
                            .with_text_tokens(30)
                            .with_audio_tokens(91)
                    ),
            ),
            record(
                "openai",
                "gpt-realtime",
                session,
                "resp_CQx0bU3mZx9Ye2Rf6Gh1J",
                Usage::default()
                    .with_total_tokens(412)
                    .with_input_tokens(281)
                    .with_output_tokens(131)
                    .with_input_token_details(
                        InputTokenDetails::default()
                            .with_text_tokens(152)
                            .with_audio_tokens(129)
                            .with_image_tokens(0)
                            .with_cached_tokens(192)
                            .with_cached_tokens_details(
                                CachedTokenDetails::default()
                                    .with_text_tokens(128)
                                    .with_audio_tokens(64)
                                    .with_image_tokens(0)
                            )
                    )
                    .with_output_token_details(
                        OutputTokenDetails::default()
                            .with_text_tokens(33)
                            .with_audio_tokens(98)
                    ),
            ),
        ]
    );
    let transcription = Usage::default()
        .with_total_tokens(26)
        .with_input_tokens(17)
        .with_output_tokens(9)
        .with_input_token_details(
            InputTokenDetails::default()
                .with_text_tokens(0)
                .with_audio_tokens(17),
        );
    assert_eq!(
        transcriptions,
        [transcription_record(
            "openai",
            session,
            "item_CQx0YtfDz0l3dWd4GvNr8",
            TranscriptionUsage::Tokens(transcription.clone()),
        )]
    );
    assert_eq!(
        summary,
        expected(
            &summary,
            session,
            Expected {
                responses: 2,
                usage: Usage::default()
                    .with_total_tokens(665)
                    .with_input_tokens(413)
                    .with_output_tokens(252)
                    .with_input_token_details(
                        InputTokenDetails::default()
                            .with_text_tokens(271)
                            .with_audio_tokens(142)
                            .with_image_tokens(0)
                            .with_cached_tokens(192)
                            .with_cached_tokens_details(
                                CachedTokenDetails::default()
                                    .with_text_tokens(128)
                                    .with_audio_tokens(64)
                                    .with_image_tokens(0)
                            )
                    )
                    .with_output_token_details(
                        OutputTokenDetails::default()
                            .with_text_tokens(63)
                            .with_audio_tokens(189)
                    ),
                transcription: TranscriptionTotals {
                    tokens: transcription,
                    seconds: None,
                },
                // Three appends of 4 800 bytes of pcm16 at 24 kHz.
                input_audio_seconds: 0.3,
                input_audio_bytes: 14_400,
            }
        )
    );
}

#[tokio::test]
async fn openai_beta_session() {
    let (usage, transcriptions, summary) = replay(
        "openai",
        "gpt-4o-realtime-preview",
        fixture("openai_beta.events"),
    )
    .await;
    let session = Some("sess_BZr3QmV8KcTn2Wd7XsLp1");
    let response = Usage::default()
        .with_total_tokens(209)
        .with_input_tokens(151)
        .with_output_tokens(58)
        .with_input_token_details(
            InputTokenDetails::default()
                .with_text_tokens(131)
                .with_audio_tokens(20)
                .with_cached_tokens(0)
                .with_cached_tokens_details(
                    CachedTokenDetails::default()
                        .with_text_tokens(0)
                        .with_audio_tokens(0),
                ),
        )
        .with_output_token_details(
            OutputTokenDetails::default()
                .with_text_tokens(14)
                .with_audio_tokens(44),
        );
    assert_eq!(
        usage,
        [record(
            "openai",
            "gpt-4o-realtime-preview",
            session,
            "resp_BZr3SxL4Gm7Vb2Kq9PdHc",
            response.clone()
        )]
    );
    // whisper-1 reported no usage.
    assert_eq!(transcriptions, []);
    assert_eq!(
        summary,
        expected(
            &summary,
            session,
            Expected {
                responses: 1,
                usage: response,
                transcription: TranscriptionTotals::default(),
                // Two appends of 1 600 bytes of G.711 u-law at 8 kHz.
                input_audio_seconds: 0.4,
                input_audio_bytes: 3_200,
            }
        )
    );
}

#[tokio::test]
async fn azure_session() {
    let (usage, transcriptions, summary) =
        replay("azure", "gpt-realtime", fixture("azure.events")).await;
    let session = Some("sess_CRb7Jd2Hq9Xw4Lm1TzVf8");
    let response = Usage::default()
        .with_total_tokens(187)
        .with_input_tokens(125)
        .with_output_tokens(62)
        .with_input_token_details(
            InputTokenDetails::default()
                .with_text_tokens(110)
                .with_audio_tokens(15)
                .with_image_tokens(0)
                .with_cached_tokens(0)
                .with_cached_tokens_details(
                    CachedTokenDetails::default()
                        .with_text_tokens(0)
                        .with_audio_tokens(0)
                        .with_image_tokens(0),
                ),
        )
        .with_output_token_details(
            OutputTokenDetails::default()
                .with_text_tokens(17)
                .with_audio_tokens(45),
        );
    assert_eq!(
        usage,
        [record(
            "azure",
            "gpt-realtime",
            session,
            "resp_CRb7LmX5Vt1Hc9Qa2JpWz",
            response.clone()
        )]
    );
    assert_eq!(
        transcriptions,
        [transcription_record(
            "azure",
            session,
            "item_CRb7KfW3Ns8Pq2Yd6HmLx",
            TranscriptionUsage::Duration { seconds: 0.3 },
        )]
    );
    assert_eq!(
        summary,
        expected(
            &summary,
            session,
            Expected {
                responses: 1,
                usage: response,
                transcription: TranscriptionTotals {
                    tokens: Usage::default(),
                    seconds: Some(0.3),
                },
                // Three appends of 800 bytes of G.711 A-law (`audio/pcma`).
                input_audio_seconds: 0.3,
                input_audio_bytes: 2_400,
            }
        )
    );
}

#[tokio::test]
async fn bailian_session_with_the_plural_spelling() {
    let (usage, transcriptions, summary) = replay(
        "bailian",
        "qwen3-omni-flash-realtime",
        fixture("bailian.events"),
    )
    .await;
    let session = Some("sess_Ov7GOXoNXhNjlxXtOGKQS");
    let response = Usage::default()
        .with_total_tokens(377)
        .with_input_tokens(336)
        .with_output_tokens(41)
        .with_input_token_details(
            InputTokenDetails::default()
                .with_text_tokens(228)
                .with_audio_tokens(108),
        )
        .with_output_token_details(
            OutputTokenDetails::default()
                .with_text_tokens(9)
                .with_audio_tokens(32),
        );
    assert_eq!(
        usage,
        [record(
            "bailian",
            "qwen3-omni-flash-realtime",
            session,
            "resp_HaVOPdbmX6vifiV5pAfJY",
            response.clone()
        )]
    );
    assert_eq!(transcriptions, []);
    assert_eq!(
        summary,
        expected(
            &summary,
            session,
            Expected {
                responses: 1,
                usage: response,
                transcription: TranscriptionTotals::default(),
                input_audio_seconds: 0.0,
                input_audio_bytes: 0,
            }
        )
    );
}

#[tokio::test]
async fn zai_session() {
    let (usage, transcriptions, summary) =
        replay("zai", "glm-realtime", fixture("zai.events")).await;
    let session = Some("sessd3658fb09efc5026dd639e7505a1ea92");
    let response = Usage::default()
        .with_total_tokens(150)
        .with_input_tokens(50)
        .with_output_tokens(100)
        .with_input_token_details(
            InputTokenDetails::default()
                .with_text_tokens(30)
                .with_audio_tokens(20),
        )
        .with_output_token_details(
            OutputTokenDetails::default()
                .with_text_tokens(80)
                .with_audio_tokens(20),
        );
    assert_eq!(
        usage,
        [record(
            "zai",
            "glm-realtime",
            session,
            "respb8a11b86aab241e99c7a98d0f393758c",
            response.clone()
        )]
    );
    assert_eq!(transcriptions, []);
    assert_eq!(
        summary,
        expected(
            &summary,
            session,
            Expected {
                responses: 1,
                usage: response,
                transcription: TranscriptionTotals::default(),
                // WAV input: the bytes are counted, the seconds are not guessed.
                input_audio_seconds: 0.0,
                input_audio_bytes: 6_400,
            }
        )
    );
}

#[tokio::test]
async fn xai_session_with_empty_usage() {
    let (usage, transcriptions, summary) =
        replay("xai", "grok-voice-latest", fixture("xai.events")).await;
    assert_eq!(
        usage,
        [record(
            "xai",
            "grok-voice-latest",
            None,
            "resp_5d3b1f9e-7c5a-4b3d-8f1e-0a8c6e4b2d99",
            Usage::default()
        )]
    );
    assert_eq!(transcriptions, []);
    assert_eq!(
        summary,
        expected(
            &summary,
            None,
            Expected {
                responses: 1,
                usage: Usage::default(),
                transcription: TranscriptionTotals::default(),
                // Four appends of 3 200 bytes of pcm at 16 kHz: per-minute billing
                // still has its input time.
                input_audio_seconds: 0.4,
                input_audio_bytes: 12_800,
            }
        )
    );
}

// ---------------------------------------------------------------------------
// Sessions that end badly still report

/// The first `response.done` of the GA fixture, and its usage.
fn ga_response_done() -> (String, Usage) {
    let line = fixture("openai_ga.events")
        .into_iter()
        .find_map(|line| match line {
            Line::Upstream(text) if text.starts_with(r#"{"type":"response.done""#) => Some(text),
            _ => None,
        })
        .unwrap();
    let usage = Usage::default()
        .with_total_tokens(253)
        .with_input_tokens(132)
        .with_output_tokens(121)
        .with_input_token_details(
            InputTokenDetails::default()
                .with_text_tokens(119)
                .with_audio_tokens(13)
                .with_image_tokens(0)
                .with_cached_tokens(0)
                .with_cached_tokens_details(
                    CachedTokenDetails::default()
                        .with_text_tokens(0)
                        .with_audio_tokens(0)
                        .with_image_tokens(0),
                ),
        )
        .with_output_token_details(
            OutputTokenDetails::default()
                .with_text_tokens(30)
                .with_audio_tokens(91),
        );
    (line, usage)
}

const AUDIO_DELTA: &str = r#"{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0,"delta":"AAAAAAAAAAAAAAAA"}"#;

/// An upstream that greets, sends a usage event and two audio deltas, then
/// vanishes without a close frame.
async fn vanishing_upstream() -> MockUpstream {
    let (done, _) = ga_response_done();
    MockUpstream::with_script(move |mut session: UpstreamSession| {
        let done = done.clone();
        async move {
            session.session_created().await;
            session.send(Message::text(done)).await;
            session.send(Message::text(AUDIO_DELTA)).await;
            session.send(Message::text(AUDIO_DELTA)).await;
            drop(session.into_socket());
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn upstream_vanishing_mid_stream_still_gives_a_summary() {
    let upstream = vanishing_upstream().await;
    let (observer, mut observed) = observer();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).observer(observer)).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    assert_eq!(next_event(&mut client).await["type"], "response.done");
    next_data(&mut client).await;
    next_data(&mut client).await;
    // The client is closed (with 1011, see tests/relay.rs).
    while let Ok(Some(Ok(_))) = tokio::time::timeout(PROMPTLY, client.next()).await {}

    let (usage, _, summary) = observed.session().await;
    let (_, response) = ga_response_done();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].usage, response);
    assert_eq!(usage[0].session_id.as_deref(), Some("sess_mock000001"));
    assert_eq!(summary.session_id.as_deref(), Some("sess_mock000001"));
    assert_eq!(summary.responses, 1);
    assert_eq!(summary.usage, response);
    assert_eq!(summary.upstream_to_client.messages, 4);
    assert_eq!(summary.client_to_upstream, Traffic::default());
    assert_eq!(summary.end.closed_by, ClosedBy::Upstream);
    assert_eq!(summary.end.code, 1006);
    assert!(summary.end.error.is_some());
}

#[tokio::test]
async fn client_vanishing_mid_stream_still_gives_a_summary() {
    // An upstream that greets and listens.
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        while session.recv().await.is_some() {}
    })
    .await
    .unwrap();
    let (observer, mut observed) = observer();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).observer(observer)).await;
    let mut client =
        RawClient::connect(gateway.addr, "/v1/realtime?model=openai/gpt-realtime").await;
    client.read_frame().await.unwrap();
    // Half a second of pcm16 at 24 kHz, in two appends.
    let append = append_event(&base64(&[0u8; 12_000]));
    client.frame(0x81, append.as_bytes(), true).await;
    client.frame(0x81, append.as_bytes(), true).await;
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.received().len() == 2)
            .await
    );
    client.reset();

    let (usage, _, summary) = observed.session().await;
    assert!(usage.is_empty());
    assert_eq!(summary.input_audio_seconds, 0.5);
    assert_eq!(summary.input_audio_bytes, 24_000);
    assert_eq!(
        summary.client_to_upstream,
        Traffic::new(2, 2 * append.len() as u64)
    );
    assert_eq!(summary.end.closed_by, ClosedBy::Client);
    assert_eq!(summary.end.code, 1006);
    assert!(summary.end.error.is_some());
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.closes().is_empty())
            .await
    );
    assert_eq!(
        upstream.closes()[0].as_ref().unwrap().code,
        CloseCode::Error
    );
}

#[tokio::test]
async fn a_session_the_gateway_ends_gives_a_summary() {
    let upstream = MockUpstream::echo().await.unwrap();
    let (observer, mut observed) = observer();
    let layer = RealtimeLayer::new(openai(&upstream))
        .idle_timeout(Duration::from_secs(1))
        .observer(observer);
    let gateway = serve_axum(layer).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    assert_eq!(
        next_event(&mut client).await["error"]["code"],
        "idle_timeout"
    );
    close_frame(&mut client).await;
    // Answer the close.
    while let Some(Ok(_)) = client.next().await {}

    let (_, _, summary) = observed.session().await;
    assert_eq!(
        summary.end,
        SessionEnd::new(ClosedBy::Gateway, 1008).with_reason("idle timeout")
    );
    assert_eq!(summary.upstream_to_client.messages, 1);
    assert_eq!(summary.responses, 0);
    assert_eq!(summary.usage, Usage::default());
}

#[tokio::test]
async fn a_panicking_observer_does_not_end_the_session() {
    let (done, _) = ga_response_done();
    let upstream = MockUpstream::with_script(move |mut session: UpstreamSession| {
        let done = done.clone();
        async move {
            session.session_created().await;
            session.send(Message::text(done)).await;
            while let Some(message) = session.recv().await {
                session.send(message).await;
            }
        }
    })
    .await
    .unwrap();
    let (sender, mut summaries) = mpsc::unbounded_channel();
    let observer = move |observation: Observation<'_>| match observation {
        Observation::Usage(_) => panic!("a bug in the billing code"),
        Observation::SessionEnd(summary) => {
            let _ = sender.send(summary.clone());
        }
        _ => {}
    };
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).observer(observer)).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    assert_eq!(next_event(&mut client).await["type"], "response.done");
    // The session goes on after the panic ...
    send_text(&mut client, "still here").await;
    assert_eq!(next_data(&mut client).await, Message::text("still here"));
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}
    // ... and its summary is still reported.
    let summary = tokio::time::timeout(PROMPTLY, summaries.recv())
        .await
        .expect("a summary in time")
        .expect("the observer is alive");
    assert_eq!(summary.responses, 1);
    assert_eq!(summary.end.closed_by, ClosedBy::Client);
    assert_eq!(summary.end.code, 1005, "a close frame without a code");
    assert_eq!(summary.client_to_upstream.messages, 1);
}

#[tokio::test]
async fn refused_upgrades_give_no_summary() {
    let upstream = MockUpstream::builder()
        .handshake(Handshake::reject(
            503,
            r#"{"error":{"message":"overloaded"}}"#,
        ))
        .start()
        .await
        .unwrap();
    let (observer, mut observed) = observer();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).observer(observer)).await;
    let (status, _, _) = refused(&gateway.url("?model=openai/gpt-realtime"), &[]).await;
    assert_eq!(status, 502);
    let (status, _, _) = refused(&gateway.url(""), &[]).await;
    assert_eq!(status, 400);
    assert!(observed.is_done());
}

// ---------------------------------------------------------------------------
// Input audio time

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let group = u32::from(chunk[0]) << 16
            | u32::from(*chunk.get(1).unwrap_or(&0)) << 8
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                text.push(ALPHABET[(group >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

fn append_event(audio: &str) -> String {
    format!(r#"{{"type":"input_audio_buffer.append","audio":"{audio}"}}"#)
}

/// An upstream that answers each `session.update` as OpenAI does: with
/// `session.updated` when it accepts the input format (PCM at 24 kHz,
/// G.711), with an `error` event otherwise.
async fn confirming_upstream() -> MockUpstream {
    MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        while let Some(message) = session.recv().await {
            let event: serde_json::Value =
                serde_json::from_slice(&message.into_data()).unwrap_or_default();
            if event["type"] != "session.update" {
                continue;
            }
            let update = &event["session"];
            let accepted = match update.pointer("/audio/input/format") {
                Some(format) => match format["type"].as_str() {
                    Some("audio/pcm") => format.get("rate").is_none_or(|rate| rate == 24_000),
                    Some("audio/pcmu" | "audio/pcma") => true,
                    _ => false,
                },
                None => matches!(
                    update["input_audio_format"].as_str(),
                    Some("pcm16" | "g711_ulaw" | "g711_alaw")
                ),
            };
            let reply = if accepted {
                serde_json::json!({"type": "session.updated", "session": update})
            } else {
                serde_json::json!({"type": "error", "error": {
                    "type": "invalid_request_error",
                    "code": "invalid_value",
                    "message": "Invalid value for the input audio format.",
                }})
            };
            session.send_json(&reply).await;
        }
    })
    .await
    .unwrap()
}

/// Sends `events` from a client (after each `session.update`, it waits for
/// the upstream's answer, which it returns), then closes; returns the
/// answers and the summary.
async fn appended(events: &[String]) -> (Vec<serde_json::Value>, SessionSummary) {
    let upstream = confirming_upstream().await;
    let (observer, mut observed) = observer();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).observer(observer)).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    next_event(&mut client).await;
    let mut answers = Vec::new();
    for event in events {
        send_text(&mut client, event).await;
        if event.contains(r#""type":"session.update""#) {
            answers.push(next_event(&mut client).await);
        }
    }
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}
    let (_, _, summary) = observed.session().await;
    assert_eq!(upstream.received().len(), events.len());
    (answers, summary)
}

#[test]
fn base64_helper_pads() {
    assert_eq!(base64(b"M"), "TQ==");
    assert_eq!(base64(b"Ma"), "TWE=");
    assert_eq!(base64(b"Man"), "TWFu");
    assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
}

#[tokio::test]
async fn input_audio_seconds_from_pcm16_appends() {
    // The upstream's session.created says audio/pcm at 24 kHz; one second is
    // 48 000 bytes. Chunks of every padding length.
    let events: Vec<String> = [48_000, 24_000, 9_601, 9_602, 4_797]
        .iter()
        .map(|&size| append_event(&base64(&vec![7u8; size])))
        .collect();
    let (_, summary) = appended(&events).await;
    assert_eq!(summary.input_audio_bytes, 96_000);
    assert_eq!(summary.input_audio_seconds, 2.0);
}

#[tokio::test]
async fn input_audio_seconds_follow_formats_the_upstream_confirms() {
    let second = append_event(&base64(&[0xd5; 8_000]));
    let events = vec![
        // Beta spelling, A-law: one second.
        r#"{"type":"session.update","session":{"input_audio_format":"g711_alaw"}}"#.to_owned(),
        second.clone(),
        // GA spelling, u-law: one more.
        r#"{"type":"session.update","session":{"type":"realtime","audio":{"input":{"format":{"type":"audio/pcmu"}}}}}"#
            .to_owned(),
        second.clone(),
        // Back to pcm16 at 24 kHz: 8 000 bytes are a sixth of a second.
        r#"{"type":"session.update","session":{"input_audio_format":"pcm16"}}"#.to_owned(),
        second,
    ];
    let (answers, summary) = appended(&events).await;
    let kinds: Vec<_> = answers
        .iter()
        .map(|answer| answer["type"].clone())
        .collect();
    assert_eq!(kinds, ["session.updated"; 3]);
    assert_eq!(summary.input_audio_bytes, 24_000);
    assert!((summary.input_audio_seconds - (2.0 + 1.0 / 6.0)).abs() < 1e-9);
}

/// A client cannot make its audio count as shorter by asking for a format
/// the upstream refuses: it counts at the rate the upstream confirmed.
#[tokio::test]
async fn a_refused_format_does_not_bend_input_audio_seconds() {
    let second = append_event(&base64(&vec![7u8; 48_000]));
    let events = vec![
        second.clone(),
        r#"{"type":"session.update","session":{"audio":{"input":{"format":{"type":"audio/pcm","rate":4000000000}}}}}"#
            .to_owned(),
        second.clone(),
        r#"{"type":"session.update","session":{"audio":{"input":{"format":{"type":"audio/opus"}}}}}"#
            .to_owned(),
        second.clone(),
        r#"{"type":"session.update","session":{"input_audio_format":"pcm16","audio":{"input":{"format":{"type":"audio/pcm","rate":1}}}}}"#
            .to_owned(),
        second,
    ];
    let (answers, summary) = appended(&events).await;
    let kinds: Vec<_> = answers
        .iter()
        .map(|answer| answer["type"].clone())
        .collect();
    assert_eq!(kinds, ["error"; 3]);
    assert_eq!(summary.input_audio_bytes, 4 * 48_000);
    assert_eq!(summary.input_audio_seconds, 4.0);
}

#[tokio::test]
async fn input_audio_seconds_from_dashscope_pcm16_at_16_khz() {
    // DashScope announces `pcm16`, which is 16 kHz there: 32 000 bytes a second.
    let upstream = MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session
            .send_json(&serde_json::json!({
                "type": "session.created",
                "event_id": "event_1",
                "session": {"id": "sess_ds", "input_audio_format": "pcm16", "output_audio_format": "pcm24"},
            }))
            .await;
        while session.recv().await.is_some() {}
    })
    .await
    .unwrap();
    let providers = Providers::new().with(
        "bailian",
        tower_realtime::provider::Bailian::new(Secret::new(PROVIDER_KEY))
            .base_url(&format!("http://{}", upstream.addr()))
            .unwrap(),
    );
    let (observer, mut observed) = observer();
    let gateway = serve_axum(RealtimeLayer::new(providers).observer(observer)).await;
    let mut client = open(&gateway, "bailian/qwen-omni-turbo-realtime").await;
    next_event(&mut client).await;
    // Before and after a client's `session.update` that names `pcm` (the
    // newer spelling), which the upstream does not answer: still 16 kHz.
    send_text(&mut client, &append_event(&base64(&vec![1u8; 32_000]))).await;
    send_text(
        &mut client,
        r#"{"type":"session.update","session":{"input_audio_format":"pcm"}}"#,
    )
    .await;
    send_text(&mut client, &append_event(&base64(&vec![1u8; 16_000]))).await;
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}
    let (_, _, summary) = observed.session().await;
    assert_eq!(summary.session_id.as_deref(), Some("sess_ds"));
    assert_eq!(summary.input_audio_bytes, 48_000);
    assert_eq!(summary.input_audio_seconds, 1.5);
}

// ---------------------------------------------------------------------------
// Tracing

/// Log output captured from the current thread (tests run on a
/// current-thread runtime, so the gateway's tasks log here too).
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures what `filter` lets through until the guard is dropped.
fn capture(filter: &str) -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn info_is_quiet_for_sessions_and_client_mistakes() {
    let (logs, _guard) = capture("info");
    replay("openai", "gpt-realtime", fixture("openai_ga.events")).await;
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    refused(&gateway.url(""), &[]).await;
    refused(&gateway.url("?model=nope/x"), &[]).await;
    assert_eq!(logs.text(), "");
}

#[tokio::test]
async fn upstream_failures_are_warnings_with_the_session_fields() {
    let (logs, _guard) = capture("info");
    let upstream = vanishing_upstream().await;
    let (observer, mut observed) = observer();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).observer(observer)).await;
    let (mut client, _) = connect(
        &gateway.url("?model=openai/gpt-realtime"),
        &[("x-request-id", "req-vanish")],
    )
    .await
    .unwrap();
    while let Ok(Some(Ok(_))) = tokio::time::timeout(PROMPTLY, client.next()).await {}
    observed.session().await;

    let refusing = MockUpstream::builder()
        .handshake(Handshake::reject(
            503,
            r#"{"error":{"message":"overloaded"}}"#,
        ))
        .start()
        .await
        .unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&refusing))).await;
    refused(
        &gateway.url("?model=openai/gpt-realtime"),
        &[("x-request-id", "req-refused")],
    )
    .await;

    let full = serve_axum(RealtimeLayer::new(openai(&refusing)).max_sessions(0)).await;
    refused(
        &full.url("?model=openai/gpt-realtime"),
        &[("x-request-id", "req-full")],
    )
    .await;

    let text = logs.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in &lines {
        assert!(line.contains(" WARN realtime_session{"), "{line}");
        assert!(
            line.contains(r#"provider="openai" model="gpt-realtime""#),
            "{line}"
        );
    }
    assert!(lines[0].contains(r#"request_id="req-vanish""#), "{text}");
    assert!(
        lines[0].contains("session failed closed_by=upstream code=1006"),
        "{text}"
    );
    assert!(lines[1].contains(r#"request_id="req-refused""#), "{text}");
    assert!(
        lines[1].contains("upstream refused the session status=503"),
        "{text}"
    );
    assert!(lines[2].contains(r#"request_id="req-full""#), "{text}");
    assert!(
        lines[2].contains(r#"realtime upgrade refused status=503 code="too_many_sessions""#),
        "{text}"
    );
    assert!(!text.contains(PROVIDER_KEY));
}

#[tokio::test]
async fn debug_events_carry_counts_not_content() {
    let (logs, _guard) = capture("tower_realtime=debug");
    let lines = fixture("openai_ga.events");
    replay("openai", "gpt-realtime", lines.clone()).await;
    let text = logs.text();
    for event in [
        r#"identity="tenant-openai" provider="openai""#,
        "upstream connected connect_ms=",
        "session open",
        "session closed closed_by=client code=1000",
        "client_messages=6",
        "upstream_messages=23",
    ] {
        assert!(text.contains(event), "{event:?} missing from {text}");
    }
    // No event, transcript, instruction, audio or key.
    assert!(!text.contains("checkout"), "{text}");
    assert!(!text.contains("hotel"), "{text}");
    assert!(!text.contains("bye"), "{text}");
    assert!(!text.contains(PROVIDER_KEY), "{text}");
    for line in &lines {
        let (Line::Client(event) | Line::Upstream(event)) = line;
        let value: serde_json::Value = serde_json::from_str(event).unwrap();
        let audio = value["audio"].as_str().or(value["delta"].as_str());
        if let Some(audio) = audio.filter(|audio| audio.len() > 100) {
            assert!(!text.contains(&audio[..32]), "{text}");
        }
    }
}

// ---------------------------------------------------------------------------
// Metrics

#[cfg(feature = "metrics")]
mod metrics_recorder {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
        Recorder, SharedString, Unit,
    };

    /// Every value recorded, by `name{label=value,...}` (labels sorted).
    #[derive(Clone, Default)]
    pub struct Recorded {
        values: Arc<Mutex<BTreeMap<String, f64>>>,
        samples: Arc<Mutex<BTreeMap<String, Vec<f64>>>>,
    }

    impl Recorded {
        /// A counter or gauge.
        pub fn value(&self, key: &str) -> Option<f64> {
            self.values.lock().unwrap().get(key).copied()
        }

        /// The samples of a histogram.
        pub fn samples(&self, key: &str) -> Vec<f64> {
            self.samples
                .lock()
                .unwrap()
                .get(key)
                .cloned()
                .unwrap_or_default()
        }

        /// Every key recorded.
        pub fn keys(&self) -> Vec<String> {
            let mut keys: Vec<String> = self.values.lock().unwrap().keys().cloned().collect();
            keys.extend(self.samples.lock().unwrap().keys().cloned());
            keys
        }

        fn handle(&self, key: &Key) -> Arc<Handle> {
            let mut labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            Arc::new(Handle {
                key: format!("{}{{{}}}", key.name(), labels.join(",")),
                recorded: self.clone(),
            })
        }
    }

    struct Handle {
        key: String,
        recorded: Recorded,
    }

    impl Handle {
        fn change(&self, change: impl FnOnce(&mut f64)) {
            change(
                self.recorded
                    .values
                    .lock()
                    .unwrap()
                    .entry(self.key.clone())
                    .or_default(),
            );
        }
    }

    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            self.change(|total| *total += value as f64);
        }

        fn absolute(&self, value: u64) {
            self.change(|total| *total = value as f64);
        }
    }

    impl GaugeFn for Handle {
        fn increment(&self, value: f64) {
            self.change(|total| *total += value);
        }

        fn decrement(&self, value: f64) {
            self.change(|total| *total -= value);
        }

        fn set(&self, value: f64) {
            self.change(|total| *total = value);
        }
    }

    impl HistogramFn for Handle {
        fn record(&self, value: f64) {
            self.recorded
                .samples
                .lock()
                .unwrap()
                .entry(self.key.clone())
                .or_default()
                .push(value);
        }
    }

    impl Recorder for Recorded {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.handle(key))
        }

        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.handle(key))
        }

        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.handle(key))
        }
    }
}

/// Sessions, traffic, tokens, connect times, errors and refusals, all in one
/// current-thread runtime so the recorder sees the gateway's tasks.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn metrics_of_sessions_and_refusals() {
    let recorded = metrics_recorder::Recorded::default();
    let _guard = metrics::set_default_local_recorder(&recorded);

    // A whole session, with an observer.
    let lines = fixture("openai_ga.events");
    replay("openai", "gpt-realtime", lines.clone()).await;
    // A session cut off by its upstream, without an observer: still metered.
    let upstream = vanishing_upstream().await;
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let mut client = open(&gateway, "openai/gpt-realtime").await;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(PROMPTLY, client.next()).await {}
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| recorded
                .value("realtime_sessions_active{provider=openai}")
                == Some(0.0))
            .await
    );
    // Two refusals.
    refused(&gateway.url(""), &[]).await;
    refused(&gateway.url("?model=openai/"), &[]).await;

    let value = |key: &str| recorded.value(key);
    assert_eq!(value("realtime_sessions_total{provider=openai}"), Some(2.0));
    assert_eq!(
        value("realtime_sessions_active{provider=openai}"),
        Some(0.0)
    );
    let (client, upstream_side) = (traffic(&lines, true), traffic(&lines, false));
    assert_eq!(
        value("realtime_messages_total{direction=client_to_upstream,provider=openai}"),
        Some(client.messages as f64)
    );
    assert_eq!(
        value("realtime_bytes_total{direction=client_to_upstream,provider=openai}"),
        Some(client.bytes as f64)
    );
    // The replayed session, plus the cut-off one's four messages.
    assert_eq!(
        value("realtime_messages_total{direction=upstream_to_client,provider=openai}"),
        Some((upstream_side.messages + 4) as f64)
    );
    let tokens = |kind: &str| {
        value(&format!(
            // No allow-list: the model the client named is not a label value.
            "realtime_tokens_total{{kind={kind},model=other,provider=openai}}"
        ))
    };
    // Two responses in the replay, the first of them again in the cut-off session.
    assert_eq!(tokens("input"), Some((413 + 132) as f64));
    assert_eq!(tokens("output"), Some((252 + 121) as f64));
    assert_eq!(tokens("input_text"), Some((271 + 119) as f64));
    assert_eq!(tokens("input_audio"), Some((142 + 13) as f64));
    assert_eq!(tokens("input_image"), Some(0.0));
    assert_eq!(tokens("input_cached"), Some(192.0));
    assert_eq!(tokens("input_cached_text"), Some(128.0));
    assert_eq!(tokens("input_cached_audio"), Some(64.0));
    assert_eq!(tokens("output_text"), Some((63 + 30) as f64));
    assert_eq!(tokens("output_audio"), Some((189 + 91) as f64));
    assert_eq!(tokens("transcription_input"), Some(17.0));
    assert_eq!(tokens("transcription_output"), Some(9.0));
    assert_eq!(
        value("realtime_session_errors_total{kind=connection_lost,provider=openai,side=upstream}"),
        Some(1.0)
    );
    assert_eq!(
        value("realtime_refusals_total{code=missing_model}"),
        Some(2.0)
    );
    assert_eq!(
        recorded
            .samples("realtime_session_duration_seconds{closed_by=client,provider=openai}")
            .len(),
        1
    );
    assert_eq!(
        recorded
            .samples("realtime_session_duration_seconds{closed_by=upstream,provider=openai}")
            .len(),
        1
    );
    assert_eq!(
        recorded.samples("realtime_input_audio_seconds{provider=openai}"),
        [0.3, 0.0]
    );
    assert_eq!(
        recorded
            .samples("realtime_upstream_connect_seconds{provider=openai}")
            .len(),
        2
    );
    // Nothing else, and no label carries a key, an id or content.
    for key in recorded.keys() {
        assert!(key.starts_with("realtime_"), "{key}");
        assert!(
            !key.contains("sess_") && !key.contains("req") && !key.contains(PROVIDER_KEY),
            "{key}"
        );
    }
}

/// Client-chosen model names never become label values: without an
/// allow-list the `model` label is `other`; with one, models outside it are
/// refused before anything is dialled.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn metrics_model_label_is_bounded() {
    let recorded = metrics_recorder::Recorded::default();
    let _guard = metrics::set_default_local_recorder(&recorded);
    let upstream = vanishing_upstream().await;
    let open_list = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let allow_listed = serve_axum(RealtimeLayer::new(
        openai(&upstream).allow_models("openai", ["gpt-realtime"]),
    ))
    .await;
    for (gateway, model) in [
        (&open_list, "openai/client-chosen-1"),
        (&open_list, "openai/client-chosen-2"),
        (&allow_listed, "openai/gpt-realtime"),
    ] {
        let mut client = open(gateway, model).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(PROMPTLY, client.next()).await {}
    }
    let (status, _, body) = refused(&allow_listed.url("?model=openai/client-chosen-3"), &[]).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &serde_json::json!("model_not_allowed"))
    );
    assert!(
        upstream
            .wait_until(PROMPTLY, |_| recorded
                .value("realtime_sessions_active{provider=openai}")
                == Some(0.0))
            .await
    );
    assert_eq!(
        upstream.connections(),
        3,
        "the refused model was not dialled"
    );

    let value = |key: &str| recorded.value(key);
    assert_eq!(
        value("realtime_tokens_total{kind=input,model=other,provider=openai}"),
        Some(2.0 * 132.0)
    );
    assert_eq!(
        value("realtime_tokens_total{kind=input,model=gpt-realtime,provider=openai}"),
        Some(132.0)
    );
    assert_eq!(
        value("realtime_refusals_total{code=model_not_allowed}"),
        Some(1.0)
    );
    for key in recorded.keys() {
        assert!(!key.contains("client-chosen"), "{key}");
    }
}
