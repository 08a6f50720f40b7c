//! Gemini Live: the providers, Vertex AI service-account tokens against a
//! local token endpoint, and the translator against the scripted Gemini
//! upstream over real sockets.

mod common;

use std::time::Duration;

use data_encoding::{BASE64, BASE64URL_NOPAD};
use futures_util::{SinkExt, StreamExt};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tower_realtime::provider::{
    Gemini, Protocol, Provider, ServiceAccount, Target, TargetRequest, Vertex, VertexCredential,
};
use tower_realtime::testing::{GeminiLive, MockUpstream, Step, TokenEndpoint, Trigger};
use tower_realtime::translate::gemini::{Backend, Control, GeminiConfig, GeminiTranslator, Output};
use tower_realtime::translate::{Dialling, GeminiSocket};
use tower_realtime::{Providers, Secret};

use common::PROMPTLY;

const KEY_FILE: &str = include_str!("fixtures/service-account.json");

/// The fixture key, with its `token_uri` at `endpoint`.
fn account(endpoint: &TokenEndpoint) -> ServiceAccount {
    let mut key: Value = serde_json::from_str(KEY_FILE).unwrap();
    key["token_uri"] = endpoint.url().into();
    ServiceAccount::from_json(&key.to_string()).unwrap()
}

fn verify(assertion: &str, audience: &str) {
    let key: Value = serde_json::from_str(KEY_FILE).unwrap();
    let pem = key["private_key"].as_str().unwrap();
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let pair = RsaKeyPair::from_pkcs8(&BASE64.decode(body.as_bytes()).unwrap()).unwrap();
    let (signed, signature) = assertion.rsplit_once('.').unwrap();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public().as_ref())
        .verify(
            signed.as_bytes(),
            &BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap(),
        )
        .expect("signed with the service account's key");
    let claims = signed.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&BASE64URL_NOPAD.decode(claims.as_bytes()).unwrap()).unwrap();
    assert_eq!(claims["aud"], audience);
    assert_eq!(
        claims["iss"],
        "gateway@test-project.iam.gserviceaccount.com"
    );
}

fn target(
    provider: &dyn Provider,
    model: &str,
) -> Result<Target, tower_realtime::provider::TargetError> {
    let (parts, ()) = http::Request::get("/v1/realtime")
        .body(())
        .unwrap()
        .into_parts();
    // These providers answer from their cache: their future is ready at once.
    futures_util::FutureExt::now_or_never(
        provider.target(&TargetRequest::new("vertex", model, None, &parts)),
    )
    .expect("the cached target is ready at once")
}

#[tokio::test]
async fn vertex_tokens_are_fetched_cached_and_refreshed_before_expiry() {
    let endpoint = TokenEndpoint::start().await.unwrap();
    let account = account(&endpoint);
    assert_eq!(account.token().await.unwrap().expose(), "token-1");
    assert_eq!(account.token().await.unwrap().expose(), "token-1", "cached");
    assert_eq!(endpoint.issued(), 1);
    verify(&endpoint.assertions()[0], &endpoint.url());

    // A token with less than the margin left is replaced before it expires.
    let eager = account.clone().refresh_before(Duration::from_secs(7200));
    assert!(eager.needs_refresh());
    assert_eq!(eager.token().await.unwrap().expose(), "token-2");
    // Clones share the cache: the other handle sees the new token.
    assert_eq!(account.token().await.unwrap().expose(), "token-2");

    // Concurrent callers share one request.
    let fresh = self::account(&endpoint).refresh_before(Duration::from_secs(7200));
    let tokens = futures_util::future::join_all((0..8).map(|_| fresh.token())).await;
    assert!(
        tokens
            .iter()
            .all(|token| token.as_ref().unwrap().expose() == "token-3")
    );
    assert_eq!(endpoint.issued(), 3);

    // The provider puts the cached token and the project on the target.
    let vertex = Vertex::new(
        "test-project",
        "us-central1",
        VertexCredential::ServiceAccount(account),
    )
    .unwrap();
    let target = target(&vertex, "gemini-live-2.5-flash").unwrap();
    assert_eq!(target.headers()["authorization"], "Bearer token-2");
    assert!(target.headers()["authorization"].is_sensitive());
    assert_eq!(target.headers()["x-goog-user-project"], "test-project");
    assert!(!format!("{target:?}").contains("token-2"));
    let Protocol::GeminiLive(config) = target.upstream_protocol() else {
        panic!("a translated target")
    };
    assert_eq!(
        config.model(),
        "projects/test-project/locations/us-central1/publishers/google/models/gemini-live-2.5-flash"
    );
}

#[tokio::test]
async fn the_first_session_waits_for_a_token() {
    let endpoint = TokenEndpoint::start().await.unwrap();
    let account = account(&endpoint);
    let vertex = Vertex::new(
        "test-project",
        "global",
        VertexCredential::ServiceAccount(account.clone()),
    )
    .unwrap();
    let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    let request = TargetRequest::new("vertex", "m", None, &parts);
    let first = vertex.target(&request).await.unwrap();
    assert_eq!(first.headers()["authorization"], "Bearer token-1");
    assert_eq!(endpoint.issued(), 1);
    // From now on the cached token answers at once.
    assert_eq!(
        target(&vertex, "m").unwrap().headers()["authorization"],
        "Bearer token-1"
    );
    let fresh = vertex.target_with_fresh_token(&request).await.unwrap();
    assert_eq!(fresh.headers()["authorization"], "Bearer token-1");
    assert_eq!(endpoint.issued(), 1);
    assert!(account.cached_token().is_some());
}

#[tokio::test]
async fn a_refused_grant_is_an_error_that_names_no_secret() {
    let endpoint = TokenEndpoint::start().await.unwrap();
    endpoint.refuse(true);
    let account = account(&endpoint);
    let error = account.token().await.unwrap_err().to_string();
    assert!(
        error.contains("400") && error.contains("invalid_grant"),
        "{error}"
    );
    let assertion = &endpoint.assertions()[0];
    assert!(
        !error.contains(assertion.as_str()) && !error.contains("PRIVATE"),
        "{error}"
    );
    let vertex = Vertex::new(
        "test-project",
        "global",
        VertexCredential::ServiceAccount(account),
    )
    .unwrap();
    let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    let refused = vertex
        .target_with_fresh_token(&TargetRequest::new("vertex", "m", None, &parts))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status().as_u16(), refused.code()),
        (503, "token_unavailable")
    );

    // An endpoint that does not answer is an error, not a hang.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut key: Value = serde_json::from_str(KEY_FILE).unwrap();
    key["token_uri"] = format!("http://{}/token", dead.local_addr().unwrap()).into();
    drop(dead);
    let unreachable = ServiceAccount::from_json(&key.to_string()).unwrap();
    let error = unreachable.token().await.unwrap_err().to_string();
    assert!(error.contains("connect"), "{error}");
}

#[test]
fn providers_from_the_environment() {
    let dir = std::env::temp_dir().join(format!("gemini-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("service-account.json");
    std::fs::write(&key_path, KEY_FILE).unwrap();
    let key_path = key_path.to_str().unwrap();

    let providers = Providers::from_vars([
        ("GEMINI_API_KEY", "AIza-env"),
        ("GEMINI_API_VERSION", "v1beta"),
        ("VERTEX_PROJECT", "test-project"),
        ("VERTEX_LOCATION", "europe-west4"),
        ("GOOGLE_APPLICATION_CREDENTIALS", key_path),
    ])
    .unwrap();
    assert_eq!(providers.names().collect::<Vec<_>>(), ["gemini", "vertex"]);
    let gemini = target(providers.get("gemini").unwrap().as_ref(), "m").unwrap();
    assert!(gemini.url().path().contains(".v1beta.GenerativeService"));
    assert_eq!(gemini.headers()["x-goog-api-key"], "AIza-env");
    assert!(
        gemini.url().query().is_none(),
        "the key never goes in the URL"
    );

    let express = Providers::from_vars([
        ("VERTEX_API_KEY", "vx-key"),
        ("VERTEX_BASE_URL", "http://127.0.0.1:9"),
    ])
    .unwrap();
    let express = target(express.get("vertex").unwrap().as_ref(), "m").unwrap();
    assert_eq!(
        express.url().as_str(),
        "ws://127.0.0.1:9/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent"
    );
    assert_eq!(express.headers()["x-goog-api-key"], "vx-key");

    // A session.update Gemini cannot apply in place: resumed by default,
    // refused when turned off.
    let config = |providers: &Providers, name: &str| {
        let target = target(providers.get(name).unwrap().as_ref(), "m").unwrap();
        let Protocol::GeminiLive(config) = target.upstream_protocol().clone() else {
            panic!("translated")
        };
        config
    };
    let fixed = Providers::from_vars([
        ("GEMINI_API_KEY", "k"),
        ("GEMINI_RECONFIGURE_BY_RESUMING", "false"),
        ("VERTEX_API_KEY", "k"),
        ("VERTEX_RECONFIGURE_BY_RESUMING", "no"),
    ])
    .unwrap();
    let default = Providers::from_vars([("GEMINI_API_KEY", "k"), ("VERTEX_API_KEY", "k")]).unwrap();
    for name in ["gemini", "vertex"] {
        let resumed = config(&default, name);
        assert_eq!(resumed, resumed.clone().reconfigure_by_resuming(true));
        assert_eq!(config(&fixed, name), resumed.reconfigure_by_resuming(false));
    }

    for (vars, needle) in [
        (
            vec![("VERTEX_PROJECT", "p")],
            "GOOGLE_APPLICATION_CREDENTIALS",
        ),
        (
            vec![
                ("VERTEX_PROJECT", "p"),
                ("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json"),
            ],
            "GOOGLE_APPLICATION_CREDENTIALS: cannot read",
        ),
        (
            vec![("VERTEX_PROJECT", "Bad Project"), ("VERTEX_API_KEY", "k")],
            "VERTEX_PROJECT",
        ),
        (
            vec![("GEMINI_API_KEY", "k"), ("GEMINI_API_VERSION", "v1/../x")],
            "GEMINI_API_VERSION",
        ),
        (
            vec![
                ("GEMINI_API_KEY", "k"),
                ("GEMINI_RECONFIGURE_BY_RESUMING", "maybe"),
            ],
            "GEMINI_RECONFIGURE_BY_RESUMING must be true or false",
        ),
        (
            vec![
                ("VERTEX_API_KEY", "k"),
                ("VERTEX_RECONFIGURE_BY_RESUMING", "2"),
            ],
            "VERTEX_RECONFIGURE_BY_RESUMING must be true or false",
        ),
        (
            vec![
                ("GEMINI_API_KEY", "AIza-secret"),
                ("GEMINI_BASE_URL", "ftp://x"),
            ],
            "GEMINI_BASE_URL",
        ),
        (
            vec![
                ("GEMINI_API_KEY", "k"),
                ("GEMINI_BASE_URL", "https://gemini.lan/?key=AIza-secret"),
            ],
            "GEMINI_BASE_URL: base URL `https://gemini.lan` must not have a query",
        ),
        (
            vec![
                ("GEMINI_API_KEY", "AIza-secret"),
                ("GEMINI_BASE_URL", "http://gemini.lan"),
            ],
            "GEMINI_ALLOW_INSECURE_TRANSPORT",
        ),
        (
            vec![
                ("VERTEX_API_KEY", "k"),
                ("VERTEX_BASE_URL", "http://vertex.lan"),
            ],
            "VERTEX_ALLOW_INSECURE_TRANSPORT",
        ),
        (
            vec![
                ("REALTIME_PROVIDERS", "vertex"),
                ("VERTEX_BASE_URL", "http://x"),
            ],
            "built-in",
        ),
    ] {
        let error = Providers::from_vars(vars).unwrap_err().to_string();
        assert!(error.contains(needle), "{error}");
        assert!(!error.contains("AIza-secret"), "{error}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The translator between a client (events in, events out) and the
/// scripted Gemini upstream, over a real WebSocket.
struct Harness {
    translator: GeminiTranslator,
    upstream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    to_client: Vec<Value>,
    controls: Vec<Control>,
}

impl Harness {
    async fn open(upstream: &MockUpstream) -> Self {
        let gemini = Gemini::new(Secret::new("AIza-test"))
            .base_url(&format!("http://{}", upstream.addr()))
            .unwrap();
        let target = target(&gemini, "gemini-live-2.5-flash-preview").unwrap();
        let Protocol::GeminiLive(config) = target.upstream_protocol().clone() else {
            panic!("a translated target")
        };
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                target.url().as_str(),
            )
            .unwrap();
        request.headers_mut().extend(target.headers().clone());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut harness = Self {
            translator: GeminiTranslator::new(config),
            upstream: socket,
            to_client: Vec::new(),
            controls: Vec::new(),
        };
        let outputs = harness.translator.start();
        harness.route(outputs).await;
        harness
    }

    async fn route(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Upstream(message) => {
                    self.upstream.send(Message::text(message)).await.unwrap()
                }
                Output::Client(event) => self.to_client.push(serde_json::from_str(&event).unwrap()),
                Output::Control(control) => self.controls.push(control),
                _ => unreachable!(),
            }
        }
    }

    async fn client(&mut self, event: Value) {
        let outputs = self.translator.client_event(event.to_string().as_bytes());
        self.route(outputs).await;
    }

    /// Feeds Gemini's messages to the translator until the client got `kind`.
    async fn until(&mut self, kind: &str) {
        let wait = async {
            while !self.to_client.iter().any(|event| event["type"] == kind) {
                match self.upstream.next().await {
                    Some(Ok(Message::Binary(bytes))) => {
                        let outputs = self.translator.upstream_message(&bytes);
                        self.route(outputs).await;
                    }
                    Some(Ok(Message::Text(text))) => {
                        let outputs = self.translator.upstream_message(text.as_bytes());
                        self.route(outputs).await;
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame.map_or((None, String::new()), |f| {
                            (Some(u16::from(f.code)), f.reason.to_string())
                        });
                        let outputs = self.translator.upstream_closed(code, &reason);
                        self.route(outputs).await;
                    }
                    Some(Ok(_)) => {}
                    other => panic!("the upstream ended: {other:?}"),
                }
            }
        };
        tokio::time::timeout(PROMPTLY, wait).await.expect("in time");
    }
}

#[tokio::test]
async fn a_text_turn_through_the_translator_and_the_scripted_upstream() {
    let script = GeminiLive::new().resumption().reply(
        Trigger::TurnComplete,
        GeminiLive::text_turn("Hello there!", 12, 4),
    );
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let mut harness = Harness::open(&upstream).await;
    harness
        .client(json!({"type": "session.update", "session": {"instructions": "Be brief."}}))
        .await;
    harness
        .client(
            json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "Hi"}]}}),
        )
        .await;
    harness.client(json!({"type": "response.create"})).await;
    harness.until("response.done").await;

    let received: Vec<Value> = upstream
        .received()
        .iter()
        .map(|message| serde_json::from_str(message.to_text().unwrap()).unwrap())
        .collect();
    assert_eq!(
        received[0]["setup"]["model"],
        "models/gemini-live-2.5-flash-preview"
    );
    assert_eq!(
        received[0]["setup"]["systemInstruction"]["parts"][0]["text"],
        "Be brief."
    );
    assert_eq!(
        received[1]["clientContent"]["turns"][0]["parts"][0]["text"],
        "Hi"
    );
    assert_eq!(
        received[2],
        json!({"clientContent": {"turnComplete": true}})
    );
    assert_eq!(
        upstream.requests()[0].header("x-goog-api-key"),
        Some("AIza-test")
    );

    let kinds: Vec<&str> = harness
        .to_client
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[..3],
        ["session.created", "session.updated", "session.updated"]
    );
    assert!(kinds.contains(&"response.output_audio.delta"));
    let done = &harness.to_client.last().unwrap()["response"];
    assert_eq!(
        done["output"][0]["content"][0]["transcript"],
        "Hello there!"
    );
    assert_eq!(done["usage"]["total_tokens"], 16);
    assert_eq!(done["usage"]["output_token_details"]["audio_tokens"], 4);
    assert!(
        matches!(&harness.controls[..], [Control::ResumptionHandle(handle)] if handle.starts_with("handle-"))
    );
}

#[tokio::test]
async fn the_scripted_upstream_closes_like_gemini_on_a_bad_first_message() {
    let upstream = MockUpstream::with_script(GeminiLive::new().reply(
        Trigger::AnyMessage,
        [Step::Close(1011, "Internal error occurred.".into())],
    ))
    .await
    .unwrap();
    // Content before setup: Gemini's 1007.
    let mut raw = tokio_tungstenite::connect_async(format!("ws://{}/ws", upstream.addr()))
        .await
        .unwrap()
        .0;
    raw.send(Message::text(
        r#"{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=24000","data":"AAAA"}}}"#,
    ))
    .await
    .unwrap();
    let close = loop {
        match raw.next().await {
            Some(Ok(Message::Close(frame))) => break frame.unwrap(),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1007);

    // Through the translator, a scripted 1011 becomes an error event and 1011.
    let mut harness = Harness::open(&upstream).await;
    harness
        .client(json!({"type": "input_audio_buffer.append", "audio": "AAAA"}))
        .await;
    harness.until("error").await;
    let error = harness
        .to_client
        .iter()
        .find(|event| event["type"] == "error")
        .unwrap();
    assert_eq!(error["error"]["code"], "upstream_error");
    assert!(matches!(
        &harness.controls[..],
        [Control::Close { code: 1011, .. }]
    ));
}

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `GeminiSocket` on the scripted upstream, with a redial to it.
async fn gemini_socket(upstream: &MockUpstream) -> GeminiSocket<Upstream> {
    let url = format!("ws://{}/ws", upstream.addr());
    let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let config = GeminiConfig::new(Backend::GeminiApi, "models/gemini-live-2.5-flash-preview");
    GeminiSocket::new(socket, GeminiTranslator::new(config)).redial(move || {
        let url = url.clone();
        Box::pin(async move {
            tokio_tungstenite::connect_async(url.as_str())
                .await
                .map(|(socket, _)| socket)
                .map_err(|error| error.to_string())
        }) as Dialling<Upstream>
    })
}

/// What the client reads until `stop` says so: events, and the close code if any.
async fn read_until(
    socket: &mut GeminiSocket<Upstream>,
    stop: impl Fn(&Value) -> bool,
) -> (Vec<Value>, Option<u16>) {
    common::read_events_until(socket, stop).await
}

fn append(audio: &str) -> Message {
    Message::text(json!({"type": "input_audio_buffer.append", "audio": audio}).to_string())
}

#[tokio::test]
async fn a_voice_turn_through_a_gemini_socket() {
    let mut turn = vec![
        GeminiLive::input_transcript("What time", false),
        GeminiLive::input_transcript(" is it?", true),
        GeminiLive::audio("AQADAAQAEgA="),
        GeminiLive::output_transcript("It is noon."),
    ];
    turn.extend(GeminiLive::text_turn("", 30, 9));
    let upstream = MockUpstream::with_script(GeminiLive::new().reply(Trigger::AudioChunk(2), turn))
        .await
        .unwrap();
    let mut socket = gemini_socket(&upstream).await;
    socket
        .send(Message::text(json!({"type": "session.update", "session": {"audio": {"input": {"transcription": {"model": "whisper-1"}}}}}).to_string()))
        .await
        .unwrap();
    socket.send(append("AAAA")).await.unwrap();
    socket.send(append("BBBB")).await.unwrap();
    let (events, close) = read_until(&mut socket, |event| event["type"] == "response.done").await;
    assert_eq!(close, None);
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "session.created");
    let completed = events
        .iter()
        .find(|event| event["type"] == "conversation.item.input_audio_transcription.completed")
        .unwrap();
    assert_eq!(completed["transcript"], "What time is it?");
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["output"][0]["content"][0]["transcript"], "It is noon.");
    assert_eq!(done["usage"]["input_tokens"], 30);

    let received: Vec<Value> = upstream
        .received()
        .iter()
        .map(|message| serde_json::from_str(message.to_text().unwrap()).unwrap())
        .collect();
    assert_eq!(received.len(), 3, "one setup, two appends");
    assert_eq!(received[0]["setup"]["inputAudioTranscription"], json!({}));
    assert_eq!(received[2]["realtimeInput"]["audio"]["data"], "BBBB");
}

#[tokio::test]
async fn go_away_resumes_on_a_fresh_connection_unnoticed() {
    let script = GeminiLive::new()
        .resumption()
        .reply(Trigger::AudioChunk(1), [GeminiLive::go_away("10s")])
        .reply_when_resumed(
            Trigger::AudioChunk(1),
            GeminiLive::text_turn("Still here.", 5, 3),
        );
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let mut socket = gemini_socket(&upstream).await;
    socket.send(append("AAAA")).await.unwrap();
    // Gemini's goAway: the socket dials again while the client reads on.
    tokio::select! {
        _ = read_until(&mut socket, |_| false) => panic!("the client heard of it"),
        resumed = upstream.wait_until(PROMPTLY, |upstream| upstream.requests().len() == 2) => assert!(resumed),
    }
    socket.send(append("BBBB")).await.unwrap();
    let (events, close) = read_until(&mut socket, |event| event["type"] == "response.done").await;
    assert_eq!(close, None);
    assert!(
        events.iter().all(|event| event["type"] != "error"),
        "{events:?}"
    );
    assert_eq!(
        events.last().unwrap()["response"]["output"][0]["content"][0]["transcript"],
        "Still here."
    );

    assert_eq!(upstream.requests().len(), 2, "a second connection");
    let setups: Vec<Value> = upstream
        .received()
        .iter()
        .map(|message| serde_json::from_str::<Value>(message.to_text().unwrap()).unwrap())
        .filter(|message| message.get("setup").is_some())
        .collect();
    assert_eq!(setups.len(), 2);
    assert_eq!(
        setups[1]["setup"]["sessionResumption"],
        json!({"handle": "handle-sess_mock000001"})
    );
}

#[tokio::test]
async fn gemini_close_codes_reach_the_client_as_error_and_close() {
    for (code, reason, error_code, client_code) in [
        (
            1008,
            "models/x is not found for API version v1, or is not supported for bidiGenerateContent",
            "model_not_found",
            1008,
        ),
        (
            1011,
            "The service is currently unavailable.",
            "upstream_error",
            1011,
        ),
        (
            1007,
            "Request contains an invalid argument.",
            "invalid_request",
            1008,
        ),
    ] {
        let script =
            GeminiLive::new().reply(Trigger::AudioChunk(1), [Step::Close(code, reason.into())]);
        let upstream = MockUpstream::with_script(script).await.unwrap();
        let mut socket = gemini_socket(&upstream).await;
        socket.send(append("AAAA")).await.unwrap();
        let (events, close) = read_until(&mut socket, |_| false).await;
        let error = events
            .iter()
            .find(|event| event["type"] == "error")
            .unwrap();
        assert_eq!(error["error"]["code"], error_code, "{code}");
        assert_eq!(close, Some(client_code), "{code}");
    }
}

#[tokio::test]
async fn without_a_redial_a_go_away_ends_when_gemini_does() {
    let script = GeminiLive::new().resumption().reply(
        Trigger::AudioChunk(1),
        [
            GeminiLive::go_away("1s"),
            Step::Close(1011, "Internal error occurred.".into()),
        ],
    );
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let (raw, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", upstream.addr()))
        .await
        .unwrap();
    let config = GeminiConfig::new(Backend::GeminiApi, "models/m");
    let mut socket = GeminiSocket::new(raw, GeminiTranslator::new(config));
    socket.send(append("AAAA")).await.unwrap();
    let (events, close) = read_until(&mut socket, |_| false).await;
    let error = events
        .iter()
        .find(|event| event["type"] == "error")
        .unwrap();
    assert_eq!(error["error"]["code"], "session_resumption_failed");
    assert_eq!(close, Some(1011));
}

#[tokio::test]
async fn without_a_redial_a_session_update_after_setup_is_refused() {
    let script = GeminiLive::new()
        .resumption()
        .reply_every(Trigger::TurnComplete, GeminiLive::text_turn("Hi!", 3, 2));
    let upstream = MockUpstream::with_script(script).await.unwrap();
    let (raw, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", upstream.addr()))
        .await
        .unwrap();
    let config = GeminiConfig::new(Backend::GeminiApi, "models/m");
    let mut socket = GeminiSocket::new(raw, GeminiTranslator::new(config));
    let say = json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "Hello"}]}});
    for _ in 0..2 {
        socket.send(Message::text(say.to_string())).await.unwrap();
        socket
            .send(Message::text(r#"{"type":"response.create"}"#))
            .await
            .unwrap();
        let (_, close) = read_until(&mut socket, |event| event["type"] == "response.done").await;
        assert_eq!(close, None);
        // Gemini gave a handle, but there is no connection to resume on.
        let update =
            json!({"type": "session.update", "session": {"instructions": "Speak French."}});
        socket
            .send(Message::text(update.to_string()))
            .await
            .unwrap();
        let (events, close) = read_until(&mut socket, |event| event["type"] == "error").await;
        assert_eq!(close, None);
        let error = &events.last().unwrap()["error"];
        assert_eq!(error["code"], "unsupported_session_update", "{events:?}");
    }
    assert_eq!(upstream.requests().len(), 1);
}
