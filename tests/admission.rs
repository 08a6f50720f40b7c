//! Admission and identity end to end: who may open a session, as whom, and
//! what happens when the layer was never told; providers that await or
//! refuse with their own status.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::log_capture::capture;
use common::*;
use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};
use http::request::Parts;
use tokio::sync::mpsc;
use tower_realtime::admission::{self, Refusal, client_token};
use tower_realtime::provider::{self, OpenAi, Target, TargetError, TargetRequest};
use tower_realtime::testing::MockUpstream;
use tower_realtime::usage::Observation;
use tower_realtime::{Identity, Providers, RealtimeLayer, Secret};

const ALICE_KEY: &str = "gw-key-ALICE-1111";
const BOB_KEY: &str = "gw-key-BOB-2222";
const URL_QUERY: &str = "?model=openai/gpt-realtime";

/// What an observer heard, as `(what, identity)`, in order.
type Heard = Arc<Mutex<Vec<(&'static str, String)>>>;

fn listening(layer: RealtimeLayer) -> (RealtimeLayer, Heard) {
    let heard = Heard::default();
    let log = Arc::clone(&heard);
    let layer = layer.observer(move |observation: Observation<'_>| {
        let entry = match observation {
            Observation::SessionStart(info) => ("start", info.identity().to_string()),
            Observation::Usage(record) => ("usage", record.identity.to_string()),
            Observation::SessionEnd(summary) => ("end", summary.identity.to_string()),
            _ => return,
        };
        log.lock().unwrap().push(entry);
    });
    (layer, heard)
}

/// Waits until `heard` has `count` entries.
async fn heard_at_least(heard: &Heard, count: usize) -> Vec<(&'static str, String)> {
    let wait = async {
        loop {
            let now = heard.lock().unwrap().clone();
            if now.len() >= count {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, wait)
        .await
        .expect("the observer hears it")
}

fn keys(request: &Parts) -> Result<Identity, Refusal> {
    match client_token(&request.headers) {
        Some(ALICE_KEY) => Ok(Identity::new("alice")),
        Some(BOB_KEY) => Ok(Identity::new("bob")),
        Some(_) => Err(Refusal::unauthorized("Incorrect API key.")),
        None => Err(Refusal::forbidden("key_required", "Send an API key.")
            .retry_after(5)
            .header(
                http::HeaderName::from_static("x-why"),
                HeaderValue::from_static("no key"),
            )),
    }
}

#[tokio::test]
async fn refused_upgrades_get_the_hooks_response_and_dial_nothing() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(openai(&upstream)).admission(keys)).await;
    let url = gateway.url(URL_QUERY);

    let (status, headers, body) = refused(&url, &[]).await;
    assert_eq!(status, 403);
    assert_eq!(headers[RETRY_AFTER], "5");
    assert_eq!(headers["x-why"], "no key");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        serde_json::json!({"error": {
            "message": "Send an API key.",
            "type": "permission_error",
            "code": "key_required",
            "param": null,
        }})
    );
    let (status, headers, body) = refused(&url, &[("authorization", "Bearer wrong")]).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    // A custom body, and a refusal before routing: no provider is revealed.
    let custom = serve_axum(
        RealtimeLayer::new(openai(&upstream)).admission(|_: &Parts| {
            Err(
                Refusal::new(StatusCode::PAYMENT_REQUIRED, "unpaid", "Pay first.")
                    .json(serde_json::json!({"detail": "pay first"})),
            )
        }),
    )
    .await;
    let (status, _, body) = refused(&custom.url("?model=nope/x"), &[]).await;
    assert_eq!(status, 402);
    assert_eq!(body, serde_json::json!({"detail": "pay first"}));

    assert_eq!(upstream.connections(), 0, "nothing was dialled");
    // Ordinary requests do not go through admission.
    let head = raw_http(
        gateway.addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn admitted_sessions_carry_their_identity_from_start_to_end() {
    let upstream = MockUpstream::echo().await.unwrap();
    let (layer, heard) = listening(RealtimeLayer::new(openai(&upstream)).admission(keys));
    let gateway = serve_axum(layer).await;
    let url = gateway.url(URL_QUERY);

    let bearer = format!("Bearer {ALICE_KEY}");
    let (mut alice, _) = connect(&url, &[("authorization", &bearer)]).await.unwrap();
    assert_eq!(next_event(&mut alice).await["type"], "session.created");
    send_text(&mut alice, "hello").await;
    assert_eq!(next_data(&mut alice).await, "hello".into());
    alice.close(None).await.unwrap();
    assert_eq!(
        heard_at_least(&heard, 2).await,
        [("start", "alice".into()), ("end", "alice".into())]
    );

    // A browser's subprotocol token; the `101` echoes `realtime` only.
    let protocols = format!("realtime, openai-insecure-api-key.{BOB_KEY}");
    let (mut bob, response) = connect(&url, &[("sec-websocket-protocol", &protocols)])
        .await
        .unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "realtime");
    bob.close(None).await.unwrap();
    assert_eq!(
        heard_at_least(&heard, 4).await[2..],
        [("start", "bob".into()), ("end", "bob".into())]
    );
    // The client's key never reaches the upstream.
    for request in upstream.requests() {
        for (name, value) in &request.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            assert!(
                !value.contains(ALICE_KEY) && !value.contains(BOB_KEY),
                "a client key reached the upstream in `{name}`"
            );
        }
    }
}

#[tokio::test]
async fn async_admission_awaits_before_anything_is_dialled() {
    let upstream = MockUpstream::echo().await.unwrap();
    // The hook waits for a verdict from the test: it really is pending.
    let (verdicts, receiver) = mpsc::unbounded_channel::<Result<Identity, Refusal>>();
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let hook = admission::async_fn(move |request: &Parts| {
        let token = client_token(&request.headers).map(str::to_owned);
        let receiver = Arc::clone(&receiver);
        async move {
            assert_eq!(token.as_deref(), Some(ALICE_KEY));
            receiver.lock().await.recv().await.expect("a verdict")
        }
    });
    let (layer, heard) = listening(RealtimeLayer::new(openai(&upstream)).admission(hook));
    let gateway = serve_axum(layer).await;
    let url = gateway.url(URL_QUERY);
    let bearer = format!("Bearer {ALICE_KEY}");

    let pending = tokio::spawn({
        let (url, bearer) = (url.clone(), bearer.clone());
        async move { refused(&url, &[("authorization", &bearer)]).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        upstream.connections(),
        0,
        "nothing dialled while admission waits"
    );
    verdicts
        .send(Err(Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "tenant_session_limit",
            "Too many sessions for this tenant.",
        )))
        .unwrap();
    let (status, _, body) = pending.await.unwrap();
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "tenant_session_limit");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(upstream.connections(), 0);

    verdicts
        .send(Ok(Identity::new("alice").with_value(42_u32)))
        .unwrap();
    let (mut client, _) = connect(&url, &[("authorization", &bearer)]).await.unwrap();
    client.close(None).await.unwrap();
    assert_eq!(
        heard_at_least(&heard, 2).await,
        [("start", "alice".into()), ("end", "alice".into())]
    );
}

#[tokio::test]
async fn an_admission_hook_that_never_answers_gets_504() {
    let upstream = MockUpstream::echo().await.unwrap();
    let hook = admission::async_fn(|_: &Parts| std::future::pending());
    let layer = RealtimeLayer::new(openai(&upstream))
        .admission(hook)
        .connect_timeout(Duration::from_millis(200));
    let gateway = serve_axum(layer).await;
    let (status, _, body) = refused(&gateway.url(URL_QUERY), &[]).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"]["code"], "admission_timeout");
    assert_eq!(upstream.connections(), 0);
}

#[tokio::test]
async fn without_a_decision_every_upgrade_is_refused_and_logged_once() {
    let logs = capture();
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_as_configured(RealtimeLayer::new(openai(&upstream)), app()).await;
    for _ in 0..2 {
        let (status, _, body) = refused(&gateway.url(URL_QUERY), &[]).await;
        assert_eq!(status, 500);
        assert_eq!(body["error"]["code"], "admission_not_configured");
        assert_eq!(body["error"]["type"], "server_error");
    }
    assert_eq!(upstream.connections(), 0, "nothing was dialled");
    let text = logs.text();
    let explanation = "RealtimeLayer refuses every session: it has no admission hook";
    assert_eq!(text.matches(explanation).count(), 1, "{text}");
    assert!(
        text.lines()
            .any(|line| line.contains(" ERROR ") && line.contains(explanation)),
        "{text}"
    );
    // Everything else still reaches the inner service.
    let head = raw_http(
        gateway.addr,
        "GET /v1/realtime HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.contains("plain GET on the realtime path"), "{head}");
}

#[tokio::test]
async fn unauthenticated_sessions_are_anonymous_and_the_span_names_the_identity() {
    let logs = capture();
    let upstream = MockUpstream::echo().await.unwrap();
    let (layer, heard) = listening(RealtimeLayer::new(openai(&upstream)));
    let gateway = serve_as_configured(layer.allow_unauthenticated(), app()).await;
    let (mut client, _) = connect(&gateway.url(URL_QUERY), &[("x-request-id", "req-anon-1")])
        .await
        .unwrap();
    client.close(None).await.unwrap();
    assert_eq!(
        heard_at_least(&heard, 2).await,
        [("start", "anonymous".into()), ("end", "anonymous".into())]
    );

    let (layer, heard) = listening(
        RealtimeLayer::new(openai(&upstream))
            .allow_unauthenticated()
            .admission(keys),
    );
    let gateway = serve_as_configured(layer, app()).await;
    let bearer = format!("Bearer {BOB_KEY}");
    let (mut client, _) = connect(
        &gateway.url(URL_QUERY),
        &[("authorization", &bearer), ("x-request-id", "req-bob-1")],
    )
    .await
    .unwrap();
    client.close(None).await.unwrap();
    assert_eq!(
        heard_at_least(&heard, 2).await,
        [("start", "bob".into()), ("end", "bob".into())],
        "a hook still runs when unauthenticated sessions are allowed"
    );
    let text = logs.text();
    for (request_id, identity) in [("req-anon-1", "anonymous"), ("req-bob-1", "bob")] {
        assert!(
            text.lines().any(|line| line.contains("realtime_session{")
                && line.contains(&format!(r#"identity="{identity}""#))
                && line.contains(&format!(r#"request_id="{request_id}""#))),
            "no span with identity {identity}:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------
// Providers that await or refuse

#[tokio::test]
async fn an_async_provider_awaits_and_sees_the_identity() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = upstream.base_url();
    let provider = provider::async_fn(move |request: &TargetRequest<'_>| {
        let key = format!("sk-minted-for-{}", request.identity());
        let base = base.clone();
        let model = request.model().to_owned();
        async move {
            // A token service that answers later.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let target = OpenAi::new(Secret::new(key)).base_url(&base).unwrap();
            let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
            use tower_realtime::provider::Provider;
            target
                .target(&TargetRequest::new("minted", &model, None, &parts))
                .await
        }
    });
    let layer = RealtimeLayer::new(Providers::new().with("minted", provider)).admission(keys);
    let gateway = serve_axum(layer).await;
    let bearer = format!("Bearer {ALICE_KEY}");
    let (mut client, _) = connect(
        &gateway.url("?model=minted/gpt-realtime"),
        &[("authorization", &bearer)],
    )
    .await
    .unwrap();
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, "ping").await;
    assert_eq!(next_data(&mut client).await, "ping".into());
    let requests = upstream.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].headers["authorization"],
        "Bearer sk-minted-for-alice"
    );
    assert_eq!(requests[0].query.as_deref(), Some("model=gpt-realtime"));
}

#[tokio::test]
async fn providers_refuse_with_their_own_status_and_code_without_dialling() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = upstream.base_url();
    let refusing = move |request: &TargetRequest<'_>| match request.model() {
        "over-quota" => Err(TargetError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "tenant_quota_exceeded",
            "The tenant's quota is spent.",
        )
        .retry_after(30)),
        "forbidden" => Err(TargetError::new(
            StatusCode::FORBIDDEN,
            "model_not_in_plan",
            "This model is not in your plan.",
        )),
        "odd" => Err(TargetError::new(
            StatusCode::OK,
            "odd_status",
            "not an error",
        )),
        model => Ok(Target::new(
            url::Url::parse(&format!(
                "{}/realtime?model={model}",
                base.replace("http", "ws")
            ))
            .unwrap(),
        )),
    };
    let slow = provider::async_fn(|_: &TargetRequest<'_>| std::future::pending());
    let providers = Providers::new().with("lab", refusing).with("slow", slow);
    let layer = RealtimeLayer::new(providers).connect_timeout(Duration::from_millis(200));
    let gateway = serve_axum(layer).await;

    let cases = [
        (
            "lab/over-quota",
            429,
            "tenant_quota_exceeded",
            "rate_limit_error",
        ),
        (
            "lab/forbidden",
            403,
            "model_not_in_plan",
            "permission_error",
        ),
        ("lab/odd", 500, "odd_status", "server_error"),
        ("slow/anything", 504, "provider_timeout", "server_error"),
    ];
    for (model, status, code, kind) in cases {
        let (got, headers, body) = refused(&gateway.url(&format!("?model={model}")), &[]).await;
        assert_eq!(
            (
                got,
                body["error"]["code"].as_str(),
                body["error"]["type"].as_str()
            ),
            (status, Some(code), Some(kind)),
            "{model}: {body}"
        );
        if status == 429 {
            assert_eq!(headers[RETRY_AFTER], "30");
        }
    }
    assert_eq!(upstream.connections(), 0, "nothing was dialled");
    // The same provider still opens sessions for models it accepts.
    let mut client = open(&gateway, "lab/fine").await;
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, "ok?").await;
    assert_eq!(next_data(&mut client).await, "ok?".into());
}

#[tokio::test]
async fn the_safety_identifier_comes_from_the_identity_not_the_client() {
    let upstream = MockUpstream::echo().await.unwrap();
    let openai = OpenAi::new(Secret::new(PROVIDER_KEY))
        .base_url(&upstream.base_url())
        .unwrap();
    let provider = provider::map_target(openai, |target: Target, request: &TargetRequest<'_>| {
        let user = HeaderValue::from_str(request.identity().name()).unwrap();
        Ok(target.header(
            http::HeaderName::from_static("openai-safety-identifier"),
            user,
        ))
    });
    let layer = RealtimeLayer::new(Providers::new().with("lab", provider)).admission(keys);
    let gateway = serve_axum(layer).await;
    let bearer = format!("Bearer {ALICE_KEY}");
    let (mut client, _) = connect(
        &gateway.url("?model=lab/m"),
        &[
            ("authorization", &bearer),
            ("openai-safety-identifier", "someone-else"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    let requests = upstream.requests();
    let sent: Vec<_> = requests[0]
        .headers
        .get_all("openai-safety-identifier")
        .iter()
        .collect();
    assert_eq!(sent, ["alice"]);
}
