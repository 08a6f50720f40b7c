//! Hostile input: broken handshakes, oversized headers, model strings that
//! try to steer the upstream URL, and frames that break the protocol from
//! either side. Nothing invalid may reach the upstream.

mod common;

use std::sync::{Arc, Mutex};

use common::stack::{status_of, upgrade_request};
use common::*;
use futures_util::StreamExt;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tower_realtime::provider::OpenAi;
use tower_realtime::testing::{MockUpstream, RecordedRequest, Script, UpstreamSession};
use tower_realtime::{RealtimeLayer, Secret};
use url::form_urlencoded;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const TARGET: &str = "/v1/realtime?model=openai/gpt-realtime";

/// A valid upgrade with one header line replaced (`from` -> `to`).
fn with(from: &str, to: &str) -> String {
    let request = upgrade_request(TARGET, "");
    assert!(request.contains(from), "{from}");
    request.replacen(from, to, 1)
}

#[tokio::test]
async fn every_handshake_header_wrong_in_turn_dials_nothing() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let cases = [
        // (request, status)
        (with("GET ", "PUT "), 405),
        (with("GET ", "CONNECT "), 405),
        (with("HTTP/1.1\r\n", "HTTP/1.0\r\n"), 426),
        (with("Connection: Upgrade", "Connection: close"), 400),
        (with("Connection: Upgrade", "Connection: Upgrade2"), 400),
        (with("Connection: Upgrade\r\n", ""), 400),
        (
            with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13, 8"),
            426,
        ),
        (
            with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 013"),
            426,
        ),
        (
            with(
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13",
            ),
            426,
        ),
        (with(KEY, "dGhlIHNhbXBsZSBub25jZQ="), 400),
        (with(KEY, "AAAAAAAAAAAAAAAAAAAAAA=="), 101),
        (with(KEY, "dGhlIHNhbXBsZSBub25jZ!=="), 400),
        (with(KEY, "=GhlIHNhbXBsZSBub25jZQ=="), 400),
        (with(KEY, "dGhlIHNhbXBsZSBub25jZQ==="), 400),
        (with(KEY, " "), 400),
        (
            with(
                &format!("Sec-WebSocket-Key: {KEY}"),
                &format!("Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="),
            ),
            400,
        ),
    ];
    let mut opened = 0;
    for (request, status) in cases {
        let head = raw_http(gateway.addr, &request).await;
        assert_eq!(status_of(&head), status, "{request:?} -> {head}");
        if status == 101 {
            opened += 1;
        }
    }
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| u.connections() == opened)
            .await
    );
    assert_eq!(upstream.connections(), opened, "only valid handshakes dial");
}

#[tokio::test]
async fn requests_that_are_not_upgrades_fall_through_and_dial_nothing() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    for request in [
        with("Upgrade: websocket", "Upgrade: h2c"),
        with("Upgrade: websocket", "Upgrade: websocket2"),
        with("Upgrade: websocket\r\n", ""),
    ] {
        let head = raw_http(gateway.addr, &request).await;
        assert_eq!(status_of(&head), 200, "{request:?} -> {head}");
        assert!(head.ends_with("plain GET on the realtime path"), "{head}");
    }
    assert_eq!(upstream.connections(), 0);
}

#[tokio::test]
async fn oversized_headers_get_431_without_dialling() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let huge_value = format!("X-Padding: {}\r\n", "a".repeat(512 << 10));
    let many_headers: String = (0..200).map(|n| format!("X-Header-{n}: {n}\r\n")).collect();
    for extra in [huge_value, many_headers] {
        let head = raw_http(gateway.addr, &upgrade_request(TARGET, &extra)).await;
        assert_eq!(status_of(&head), 431, "{head}");
    }
    let long_target = format!("{TARGET}&pad={}", "b".repeat(512 << 10));
    let head = raw_http(gateway.addr, &upgrade_request(&long_target, "")).await;
    assert!((400..500).contains(&status_of(&head)), "{head}");
    assert_eq!(upstream.connections(), 0);
}

#[tokio::test]
async fn a_body_on_the_upgrade_request_is_not_relayed() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    // The body is a masked text frame, as if smuggled into the session.
    let smuggled = encode_frame(0x81, b"smuggled", true);
    let mut request =
        upgrade_request(TARGET, &format!("Content-Length: {}\r\n", smuggled.len())).into_bytes();
    request.extend_from_slice(&smuggled);
    let mut stream = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(PROMPTLY, stream.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response[..n].starts_with(b"HTTP/1.1 101"));
    stream
        .write_all(&encode_frame(0x81, b"after", true))
        .await
        .unwrap();
    assert!(
        upstream
            .wait_until(PROMPTLY, |u| !u.received().is_empty())
            .await
    );
    assert_eq!(upstream.received(), vec![Message::text("after")]);
}

/// The upstream handshake must be exactly `/v1/realtime?model=<model>`.
fn assert_upstream_model(request: &RecordedRequest, upstream: &MockUpstream, model: &str) {
    assert_eq!(request.path, "/v1/realtime");
    let expected = form_urlencoded::Serializer::new(String::new())
        .append_pair("model", model)
        .finish();
    assert_eq!(request.query.as_deref(), Some(expected.as_str()));
    assert_eq!(
        request.query_pairs(),
        vec![("model".to_owned(), model.to_owned())]
    );
    assert_eq!(
        request.header("host"),
        Some(upstream.addr().to_string().as_str())
    );
}

/// Stands for the longest model allowed in the table below.
const LONGEST: &str = "<249 bytes>";

#[tokio::test]
async fn model_strings_cannot_steer_the_upstream_url() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let long = format!("openai/{}", "m".repeat(10 << 10));
    let cases: Vec<(String, Option<&str>)> = vec![
        // Relayed, with the model percent-encoded into the query.
        (
            "model=openai/gpt/../../admin".into(),
            Some("gpt/../../admin"),
        ),
        ("model=openai/..".into(), Some("..")),
        ("model=openai/%2E%2E%2F%2E%2E".into(), Some("../..")),
        ("model=openai%2Fgpt".into(), Some("gpt")),
        ("model=openai/gpt%2F..%2Fx".into(), Some("gpt/../x")),
        ("model=openai//gpt".into(), Some("/gpt")),
        (
            "model=openai/gpt@evil.example".into(),
            Some("gpt@evil.example"),
        ),
        (
            "model=openai/user:pass@evil.example:1/x".into(),
            Some("user:pass@evil.example:1/x"),
        ),
        ("model=openai/gpt%23frag".into(), Some("gpt#frag")),
        ("model=openai/gpt?x=1".into(), Some("gpt?x=1")),
        (
            "model=openai/gpt%3Fx%3D1%26model%3Devil".into(),
            Some("gpt?x=1&model=evil"),
        ),
        (
            "model=openai/gpt&api_key=x&x=%00&Model=y".into(),
            Some("gpt"),
        ),
        ("model=OPENAI/gpt".into(), Some("gpt")),
        (
            "model=openai/%E6%A8%A1%E5%9E%8B-%F0%9F%98%80".into(),
            Some("模型-😀"),
        ),
        ("model=openai/%E2%80%AEgpt".into(), Some("\u{202e}gpt")),
        // The longest selector allowed: 256 bytes with the prefix.
        (format!("model=openai/{}", "m".repeat(249)), Some(LONGEST)),
        // Refused before dialling.
        ("model=openai/gpt&model=openai/other".into(), None),
        ("model=openai/gpt&model=".into(), None),
        ("model=openai/gpt&intent=".into(), Some("gpt")),
        ("model=openai@evil.example/gpt".into(), None),
        ("model=evil.example/gpt".into(), None),
        ("model=/gpt".into(), None),
        ("model=openai/a%0D%0AHost:%20evil.example".into(), None),
        ("model=openai/a%0Ab".into(), None),
        ("model=openai/a%00".into(), None),
        ("model=openai/a%09b".into(), None),
        ("model=openai/a+b".into(), None),
        ("model=openai/a%E2%80%A8b".into(), None),
        ("model=openai/%FF%FE".into(), None),
        ("model=openai/%C0%AF".into(), None),
        (format!("model={long}"), None),
        (format!("model=openai/{}", "m".repeat(250)), None),
    ];
    let mut dialled = 0;
    for (query, expected) in cases {
        let head = raw_http(
            gateway.addr,
            &upgrade_request(&format!("/v1/realtime?{query}"), ""),
        )
        .await;
        match expected {
            Some(model) => {
                assert_eq!(status_of(&head), 101, "{query} -> {head}");
                dialled += 1;
                assert!(
                    upstream
                        .wait_until(PROMPTLY, |u| u.requests().len() == dialled)
                        .await
                );
                let model = if model == LONGEST {
                    "m".repeat(249)
                } else {
                    model.to_owned()
                };
                assert_upstream_model(&upstream.requests()[dialled - 1], &upstream, &model);
            }
            None => {
                assert_eq!(status_of(&head), 400, "{query} -> {head}");
                assert_eq!(upstream.connections(), dialled, "{query} was dialled");
            }
        }
    }
}

#[tokio::test]
async fn raw_bytes_in_the_request_target_cannot_steer_it_either() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let cases = [
        // A fragment never reaches a server's query.
        ("/v1/realtime?model=openai/gpt#frag", Some("gpt")),
        ("/v1/realtime?model=openai/模型", Some("模型")),
        ("/v1/realtime?model=openai/a\\b", Some("a\\b")),
        ("/v1/realtime?model=openai/a{b}|c^`", Some("a{b}|c^`")),
        // Characters the HTTP parser refuses in a request target.
        ("/v1/realtime?model=openai/a\"b", None),
        ("/v1/realtime?model=openai/a<b>", None),
    ];
    let mut dialled = 0;
    for (target, expected) in cases {
        let head = raw_http(gateway.addr, &upgrade_request(target, "")).await;
        match expected {
            Some(model) => {
                assert_eq!(status_of(&head), 101, "{target} -> {head}");
                dialled += 1;
                assert!(
                    upstream
                        .wait_until(PROMPTLY, |u| u.requests().len() == dialled)
                        .await
                );
                assert_upstream_model(&upstream.requests()[dialled - 1], &upstream, model);
            }
            None => {
                assert_eq!(status_of(&head), 400, "{target} -> {head}");
                assert_eq!(upstream.connections(), dialled, "{target} was dialled");
            }
        }
    }
}

/// A close frame payload: `code` and `reason` as bytes.
fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// Protocol violations, as (name, frame bytes, close code for the offender).
/// `masked` says whether the frames are masked as a client's must be.
fn violations(masked: bool) -> Vec<(&'static str, Vec<u8>, u16)> {
    let frame = |first_byte, payload: &[u8]| encode_frame(first_byte, payload, masked);
    let mut fragmented = frame(0x01, b"start");
    fragmented.extend(frame(0x81, b"a new message before the end"));
    vec![
        (
            "invalid UTF-8 in a text frame",
            frame(0x81, &[b'a', 0xff, 0xfe]),
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            [frame(0x01, &[b'a', 0xe2]), frame(0x80, &[0x28, 0xa1])].concat(),
            1007,
        ),
        ("RSV1 without an extension", frame(0xc1, b"x"), 1002),
        ("RSV2", frame(0xa2, b"x"), 1002),
        ("RSV3", frame(0x91, b"x"), 1002),
        ("fragmented ping", frame(0x09, b"ping"), 1002),
        (
            "fragmented close",
            frame(0x08, &close_payload(1000, b"")),
            1002,
        ),
        (
            "control frame over 125 bytes",
            frame(0x89, &[0u8; 126]),
            1002,
        ),
        ("unknown data opcode", frame(0x83, b"x"), 1002),
        ("unknown control opcode", frame(0x8b, b"x"), 1002),
        ("continuation without a start", frame(0x80, b"x"), 1002),
        ("new message inside a fragmented one", fragmented, 1002),
        ("close payload of one byte", frame(0x88, &[3]), 1002),
        (
            "close code 1005",
            frame(0x88, &close_payload(1005, b"")),
            1002,
        ),
        (
            "close code 1006",
            frame(0x88, &close_payload(1006, b"")),
            1002,
        ),
        (
            "close code 1015",
            frame(0x88, &close_payload(1015, b"")),
            1002,
        ),
        (
            "close code 999",
            frame(0x88, &close_payload(999, b"")),
            1002,
        ),
        (
            "close code 1004",
            frame(0x88, &close_payload(1004, b"")),
            1002,
        ),
        (
            "close code 2999",
            frame(0x88, &close_payload(2999, b"")),
            1002,
        ),
        (
            "close code 5000",
            frame(0x88, &close_payload(5000, b"")),
            1002,
        ),
        (
            "close reason not UTF-8",
            frame(0x88, &close_payload(1000, &[0xff])),
            1007,
        ),
    ]
}

#[tokio::test]
async fn client_protocol_violations_close_with_1002_or_1007_and_forward_nothing() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    let mut cases = violations(true);
    cases.push(("unmasked frame", encode_frame(0x81, b"x", false), 1002));
    for (index, (name, bytes, code)) in cases.into_iter().enumerate() {
        let mut client = RawClient::connect(gateway.addr, TARGET).await;
        let created = client.read_frame().await.unwrap();
        assert!(String::from_utf8_lossy(&created.payload).contains("session.created"));
        client.write(&bytes).await;
        let close = client.read_close().await;
        assert_eq!(close.close_code(), Some(code), "{name}: {close:?}");
        // The upstream hears that the client failed, not the client's bytes.
        assert!(
            upstream
                .wait_until(PROMPTLY, |u| u.closes().len() == index + 1)
                .await,
            "{name}"
        );
        let upstream_close = upstream.closes()[index].clone().expect("a close code");
        assert_eq!(upstream_close.code, CloseCode::Error, "{name}");
        assert!(
            upstream_close.reason.starts_with("client: "),
            "{name}: {upstream_close:?}"
        );
    }
    assert!(upstream.received().is_empty(), "{:?}", upstream.received());
}

/// Commits the violation whose index the client names, then records the
/// gateway's close frame.
struct MisbehavingUpstream {
    violations: Vec<Vec<u8>>,
    closes: Arc<Mutex<Vec<Option<CloseFrame>>>>,
}

impl Script for MisbehavingUpstream {
    async fn run(&self, mut session: UpstreamSession) {
        session.session_created().await;
        let Some(Message::Text(index)) = session.recv().await else {
            return;
        };
        let index: usize = index.parse().unwrap();
        let mut socket = session.into_socket();
        socket
            .get_mut()
            .write_all(&self.violations[index])
            .await
            .unwrap();
        let close = loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                _ => break None,
            }
        };
        self.closes.lock().unwrap().push(close);
        while let Some(Ok(_)) = socket.next().await {}
    }
}

#[tokio::test]
async fn upstream_protocol_violations_close_it_with_1002_or_1007_and_the_client_with_1011() {
    let mut cases = violations(false);
    cases.push((
        "masked frame from a server",
        encode_frame(0x81, b"x", true),
        1002,
    ));
    let closes = Arc::new(Mutex::new(Vec::new()));
    let upstream = MockUpstream::with_script(MisbehavingUpstream {
        violations: cases.iter().map(|(_, bytes, _)| bytes.clone()).collect(),
        closes: Arc::clone(&closes),
    })
    .await
    .unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream))).await;
    for (index, (name, _, code)) in cases.iter().enumerate() {
        let mut client = open(&gateway, "openai/gpt-realtime").await;
        assert_eq!(next_event(&mut client).await["type"], "session.created");
        send_text(&mut client, &index.to_string()).await;
        // Nothing of the violation reaches the client: the next message is the close.
        match next_data(&mut client).await {
            Message::Close(Some(frame)) => {
                assert_eq!(frame.code, CloseCode::Error, "{name}");
                assert!(frame.reason.starts_with("upstream: "), "{name}: {frame:?}");
            }
            other => panic!("{name}: expected a close, got {other:?}"),
        }
        while let Some(Ok(_)) = client.next().await {}
        assert!(
            upstream
                .wait_until(PROMPTLY, |_| closes.lock().unwrap().len() == index + 1)
                .await,
            "{name}"
        );
        let upstream_close = closes.lock().unwrap()[index].clone();
        assert_eq!(
            upstream_close.map(|frame| u16::from(frame.code)),
            Some(*code),
            "{name}"
        );
    }
}

/// Where a client query must lead, by the rules the README states: the
/// provider and the exact upstream query, or `None` for a 400.
fn expected_route(query: &str) -> Option<(&'static str, String)> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let values = |name: &str| -> Vec<&String> {
        pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect()
    };
    let (models, intents) = (values("model"), values("intent"));
    let [selector] = models[..] else {
        return None;
    };
    if intents.len() > 1
        || selector.is_empty()
        || selector.len() > 256
        || selector
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\u{fffd}')
    {
        return None;
    }
    let (prefix, model) = selector.split_once('/')?;
    let provider = match prefix.to_ascii_lowercase().as_str() {
        "openai" => "openai",
        "lab" => "lab",
        _ => return None,
    };
    let (name, value) = match intents.first().map(|i| i.as_str()) {
        _ if model.is_empty() => return None,
        // An empty intent is no intent.
        None | Some("") => ("model", model),
        Some("transcription") => ("intent", "transcription"),
        Some(_) => return None,
    };
    let upstream_query = form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish();
    Some((provider, upstream_query))
}

/// Queries as a client may send them on the request line: raw characters
/// a request target allows, and percent-encoded anything.
fn client_query() -> impl Strategy<Value = String> {
    let encoded =
        |text: String| -> String { form_urlencoded::byte_serialize(text.as_bytes()).collect() };
    let value = prop_oneof![
        (
            "(openai|OpenAI|lab|other|)",
            "[a-zA-Z0-9._~!$'()*+,;:@/?%-]{0,12}"
        )
            .prop_map(|(prefix, model)| format!("{prefix}/{model}")),
        ("(openai|lab)/", any::<String>())
            .prop_map(move |(prefix, model)| encoded(format!("{prefix}{model}"))),
        "[a-zA-Z0-9._~!$&'()*+,;=:@/?%-]{0,16}",
    ];
    let name = prop_oneof![Just("model"), Just("intent"), Just("x"), Just("")];
    prop_oneof![
        prop::collection::vec((name, value.clone()), 0..4).prop_map(|pairs| {
            pairs
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("&")
        }),
        (
            value,
            prop_oneof![Just(""), Just("&intent=transcription"), Just("&intent=x")]
        )
            .prop_map(|(value, intent)| format!("model={value}{intent}")),
    ]
}

/// Through a real server, for a moderate number of generated queries: each
/// is refused with 400 and dials nothing, or the right upstream receives
/// exactly `/v1/realtime?model=<the model>` and the other one nothing.
#[test]
fn any_query_through_a_real_server_routes_exactly_or_dials_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (upstreams, gateway) = runtime.block_on(async {
        let openai_upstream = MockUpstream::echo().await.unwrap();
        let lab_upstream = MockUpstream::echo().await.unwrap();
        let providers = openai(&openai_upstream).with(
            "lab",
            OpenAi::new(Secret::new(PROVIDER_KEY))
                .base_url(&lab_upstream.base_url())
                .unwrap(),
        );
        let gateway = serve_axum(RealtimeLayer::new(providers)).await;
        ([openai_upstream, lab_upstream], gateway)
    });
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&client_query(), |query| {
        runtime.block_on(async {
            let before = upstreams.each_ref().map(|u| u.connections());
            let requests_before = upstreams.each_ref().map(|u| u.requests().len());
            // `close` makes a refusal end the connection, so it is read at once.
            let request = upgrade_request(&format!("/v1/realtime?{query}"), "")
                .replace("Connection: Upgrade", "Connection: Upgrade, close");
            let head = raw_http(gateway.addr, &request).await;
            let status = status_of(&head);
            match expected_route(&query) {
                None => {
                    prop_assert_eq!(status, 400, "{}", head);
                    let after = upstreams.each_ref().map(|u| u.connections());
                    prop_assert_eq!(after, before, "a refused query was dialled");
                }
                Some((provider, upstream_query)) => {
                    prop_assert_eq!(status, 101, "{}", head);
                    let (right, wrong) = if provider == "openai" { (0, 1) } else { (1, 0) };
                    // The upstream records the handshake before it answers, so
                    // before the gateway's 101.
                    let requests = upstreams[right].requests();
                    prop_assert_eq!(requests.len(), requests_before[right] + 1);
                    let request = requests.last().unwrap();
                    prop_assert_eq!(request.path.as_str(), "/v1/realtime");
                    prop_assert_eq!(request.query.as_deref(), Some(upstream_query.as_str()));
                    prop_assert_eq!(upstreams[wrong].connections(), before[wrong]);
                }
            }
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
