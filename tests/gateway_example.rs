//! The gateway example as a real process: its banner, fall-through routes,
//! authentication, the limit on new sessions, graceful shutdown, and a
//! WebRTC call to the demo provider.

mod common;
#[path = "common/webrtc_caller.rs"]
mod webrtc_caller;

use std::process::Command;
use std::time::Duration;

use common::example::{Example, example_binary};
use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const KEY: &str = "example-test-key";

fn gateway(args: &[&str], key: Option<&str>) -> Example {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Example::start(&example_binary("gateway"), &all, key)
}

fn url(example: &Example) -> String {
    format!("ws://{}/v1/realtime?model=demo/realtime", example.addr)
}

async fn get(example: &Example, path: &str) -> (u16, String) {
    let response = raw_http(
        example.addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test]
async fn without_a_key_it_serves_the_demo_and_ordinary_routes() {
    let example = gateway(&[], None);
    assert!(
        example.banner.contains("auth       OFF"),
        "{}",
        example.banner
    );
    assert!(
        example.banner.contains("providers  demo"),
        "{}",
        example.banner
    );
    assert!(
        example
            .banner
            .contains(&format!("websocat \"{}\"", url(&example))),
        "{}",
        example.banner
    );
    assert!(example.wait_for_log("authentication is OFF"));

    let (status, health) = get(&example, "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&health).unwrap(),
        json!({"status": "ok", "sessions": 0, "dialling": 0})
    );
    let (status, page) = get(&example, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>tower-realtime console</title>"));
    let (status, config) = get(&example, "/console/config.json").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&config).unwrap(),
        json!({"models": ["demo/realtime", "gemini-demo/gemini-live-2.5-flash-preview"], "auth": false})
    );
    let (status, plain) = get(&example, "/v1/realtime?model=demo/realtime").await;
    assert_eq!(status, 426);
    assert!(plain.contains("upgrade_required"));

    let (mut client, _) = connect(&url(&example), &[]).await.unwrap();
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    let (status, health) = get(&example, "/healthz").await;
    assert_eq!(status, 200);
    assert!(health.contains(r#""sessions":1"#), "{health}");

    // The offline Gemini demo: translated from a scripted Gemini Live upstream.
    let gemini = format!(
        "ws://{}/v1/realtime?model=gemini-demo/gemini-live-2.5-flash-preview",
        example.addr
    );
    let (mut client, _) = connect(&gemini, &[]).await.unwrap();
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    let say = json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "Hello"}]}});
    send_text(&mut client, &say.to_string()).await;
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    let done = loop {
        let event = next_event(&mut client).await;
        if event["type"] == "response.done" {
            break event;
        }
    };
    assert!(
        done["response"]["output"][0]["content"][0]["transcript"]
            .as_str()
            .unwrap()
            .starts_with("Hello from the offline Gemini demo")
    );
    drop(client);
}

#[tokio::test]
async fn with_a_key_sessions_need_it_and_are_limited_per_minute() {
    let example = gateway(&["--sessions-per-minute", "3"], Some(KEY));
    assert!(
        example.banner.contains("auth       on"),
        "{}",
        example.banner
    );
    assert!(
        example.banner.contains(&format!(
            "websocat \"{}\" -H \"Authorization: Bearer $GATEWAY_API_KEY\"",
            url(&example)
        )),
        "{}",
        example.banner
    );
    // Public routes need no key.
    assert_eq!(get(&example, "/healthz").await.0, 200);
    assert_eq!(get(&example, "/").await.0, 200);

    // 1: no key. Counted: the limit comes before authentication.
    let (status, headers, body) = refused(&url(&example), &[]).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    // 2: the key as a bearer token.
    let bearer = format!("Bearer {KEY}");
    let (mut first, _) = connect(&url(&example), &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(next_event(&mut first).await["type"], "session.created");
    // 3: the key as a browser's subprotocol.
    let protocols = format!("realtime, openai-insecure-api-key.{KEY}");
    let (mut second, response) = connect(&url(&example), &[("sec-websocket-protocol", &protocols)])
        .await
        .unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "realtime");
    assert_eq!(next_event(&mut second).await["type"], "session.created");
    // 4: over the limit, key or not.
    let (status, headers, body) = refused(&url(&example), &[("authorization", &bearer)]).await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "retry after {retry} s");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    // Other routes and plain requests are not limited.
    assert_eq!(get(&example, "/healthz").await.0, 200);
    let wrong = refused(&url(&example), &[("authorization", "Bearer wrong")]).await;
    assert_eq!(wrong.0, 429, "limited before the key is checked");
}

/// Reads events until `response.done`.
async fn until_response_done(client: &mut Client) {
    loop {
        if next_event(client).await["type"] == "response.done" {
            return;
        }
    }
}

#[tokio::test]
async fn several_keys_name_their_identities_in_the_usage_log() {
    let example = Example::start_with_env(
        &example_binary("gateway"),
        &["--listen", "127.0.0.1:0"],
        Some(KEY),
        &[("GATEWAY_API_KEYS", "alice:KEY-ALICE-1, bob:KEY-BOB-2,")],
    );
    assert!(
        example
            .banner
            .contains("auth       on: clients send a gateway key as a bearer token (identities: default, alice, bob)"),
        "{}",
        example.banner
    );
    assert!(!example.wait_for_log_within("authentication is OFF", Duration::from_millis(200)));

    // Alice's key as a bearer token: her identity is on the response's usage line.
    let (mut alice, _) = connect(&url(&example), &[("authorization", "Bearer KEY-ALICE-1")])
        .await
        .unwrap();
    assert_eq!(next_event(&mut alice).await["type"], "session.created");
    send_text(&mut alice, r#"{"type":"response.create"}"#).await;
    until_response_done(&mut alice).await;
    assert!(
        example.wait_for_log("usage: response identity=alice provider=demo"),
        "{}",
        example.log()
    );

    // Bob's key as a browser's subprotocol: his identity is on the session's line.
    let protocols = "realtime, openai-insecure-api-key.KEY-BOB-2";
    let (mut bob, _) = connect(&url(&example), &[("sec-websocket-protocol", protocols)])
        .await
        .unwrap();
    assert_eq!(next_event(&mut bob).await["type"], "session.created");
    bob.close(None).await.unwrap();
    assert!(
        example.wait_for_log("usage: session identity=bob provider=demo"),
        "{}",
        example.log()
    );

    // GATEWAY_API_KEY still works, as `default`.
    let bearer = format!("Bearer {KEY}");
    let (mut default, _) = connect(&url(&example), &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(next_event(&mut default).await["type"], "session.created");
    default.close(None).await.unwrap();
    assert!(
        example.wait_for_log("usage: session identity=default"),
        "{}",
        example.log()
    );

    // A wrong key, or none: 401 with a JSON body, nothing opened.
    for headers in [
        &[("authorization", "Bearer KEY-ALICE-2")][..],
        &[(
            "sec-websocket-protocol",
            "realtime, openai-insecure-api-key.KEY-BOB-",
        )],
        &[],
    ] {
        let (status, response_headers, body) = refused(&url(&example), headers).await;
        assert_eq!(status, 401, "{headers:?}");
        assert_eq!(response_headers["www-authenticate"], "Bearer");
        assert_eq!(response_headers["content-type"], "application/json");
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    // A plain request to the realtime path checks the key too (the console
    // asks it why a WebSocket was refused).
    for (authorization, status) in [("Bearer KEY-ALICE-2", "401"), ("Bearer KEY-BOB-2", "426")] {
        let head = raw_http(
            example.addr,
            &format!(
                "GET /v1/realtime HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
    }
    let log = example.stop_gracefully();
    for key in ["KEY-ALICE-1", "KEY-BOB-2", KEY] {
        assert!(!log.contains(key), "a key in the log:\n{log}");
    }
}

#[tokio::test]
async fn without_the_demo_there_is_no_provider() {
    let example = gateway(&["--no-demo"], None);
    assert!(
        example.banner.contains("providers  none"),
        "{}",
        example.banner
    );
    let (status, _, body) = refused(&url(&example), &[]).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "unknown_provider");
}

#[tokio::test]
async fn sigterm_closes_live_sessions_with_1001_and_exits() {
    let mut example = gateway(&[], None);
    let (mut client, _) = connect(&url(&example), &[]).await.unwrap();
    assert_eq!(next_event(&mut client).await["type"], "session.created");

    let stop = std::thread::spawn(move || {
        let status = example.terminate();
        (status, example.log())
    });
    let error = next_event(&mut client).await;
    assert_eq!(error["type"], "error");
    let frame = close_frame(&mut client).await.expect("a close code");
    assert_eq!(frame.code, CloseCode::Away);
    let (status, log) = stop.join().unwrap();
    assert!(status.success(), "exit status {status}\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test]
async fn denied_events_are_refused_and_the_model_is_pinned() {
    let example = gateway(
        &[
            "--deny-event",
            "conversation.item.delete",
            "--deny-event",
            "response.create",
        ],
        None,
    );
    assert!(
        example
            .banner
            .contains("denied     client events conversation.item.delete, response.create"),
        "{}",
        example.banner
    );
    let (mut client, _) = connect(&url(&example), &[]).await.unwrap();
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(
        &mut client,
        r#"{"type":"response.create","event_id":"evt_1"}"#,
    )
    .await;
    let error = next_event(&mut client).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["code"], "event_not_allowed");
    assert_eq!(error["error"]["event_id"], "evt_1");
    // The session goes on, on the model it was routed to.
    send_text(
        &mut client,
        &json!({"type": "session.update", "session": {"type": "realtime", "model": "gpt-4o-realtime-preview"}})
            .to_string(),
    )
    .await;
    let updated = next_event(&mut client).await;
    assert_eq!(updated["type"], "session.updated");
    assert_eq!(updated["session"]["model"], "realtime");
}

#[test]
fn flags_are_checked() {
    let binary = example_binary("gateway");
    let help = Command::new(&binary).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for item in [
        "--listen ADDR",
        "--keepalive SECS",
        "--deny-event TYPE",
        "--prewarm N",
        "GATEWAY_API_KEY ",
        "GATEWAY_API_KEYS",
        "alice:KEY1,bob:KEY2",
        "GEMINI_API_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GEMINI_RECONFIGURE_BY_RESUMING, VERTEX_RECONFIGURE_BY_RESUMING",
        "VERTEX_API_VERSION",
        "GEMINI_MODELS, VERTEX_MODELS (PREFIX_MODELS)",
        "REALTIME_MODEL_ALIASES",
        "--token-budget N",
        "--usd-budget X",
        "--prices FILE",
        "--max-sessions-per-key N",
        "--redis URL",
        "REDIS_URL",
    ] {
        assert!(help.contains(item), "{item} missing from --help:\n{help}");
    }

    for args in [
        &["--listen", "nowhere"][..],
        &["--keepalive", "soon"],
        &["--keepalive", "-1"],
        &["--sessions-per-minute", "0"],
        &["--prewarm", "some"],
        &["--bogus"],
        &["--listen"],
        &["--deny-event"],
        &["--deny-event", ""],
    ] {
        let output = Command::new(&binary).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("Usage:"));
    }
    let bad_key = Command::new(&binary)
        .env("GATEWAY_API_KEY", "has spaces")
        .output()
        .unwrap();
    assert_eq!(bad_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_key.stderr).contains("GATEWAY_API_KEY may only contain"));

    for (keys, complaint) in [
        (
            "alice:sekret1,bare-sekret2",
            "GATEWAY_API_KEYS: entry 2 is not IDENTITY:KEY",
        ),
        (
            "alice:sekret1,bob:sekret1",
            "the key of identity `bob` is given twice",
        ),
        (
            "alice:sekret 1",
            "GATEWAY_API_KEYS (identity `alice`) may only contain",
        ),
        (":sekret1", "GATEWAY_API_KEYS: the identity `` must be"),
    ] {
        let output = Command::new(&binary)
            .env("GATEWAY_API_KEYS", keys)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{keys}: {stderr}");
        assert!(stderr.contains(complaint), "{keys}: {stderr}");
        assert!(!stderr.contains("sekret"), "a key in: {stderr}");
    }
}

#[tokio::test]
async fn keepalive_follows_its_flag() {
    let example = gateway(&["--keepalive", "0.3"], None);
    // A client that never answers pings is dropped after two of them.
    let mut client = RawClient::connect(example.addr, "/v1/realtime?model=demo/realtime").await;
    let mut pings = 0;
    let ended = tokio::time::timeout(PROMPTLY, async {
        while let Some(frame) = client.read_frame().await {
            if frame.opcode == 9 {
                pings += 1;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the gateway ends the session in time");
    assert!((1..=3).contains(&pings), "{pings} pings");
}

#[tokio::test]
async fn a_webrtc_call_to_the_demo_is_minted_answered_metered_and_hung_up() {
    use webrtc_caller::Caller;

    let example = gateway(&[], Some(KEY));
    let addr = example.addr;
    let mint = json!({"session": {"type": "realtime", "model": "demo/realtime"}}).to_string();
    let path = "/v1/realtime/client_secrets";
    let (status, _, _) = http_post(addr, path, "application/json", None, mint.clone()).await;
    assert_eq!(status, 401, "minting needs the gateway key");
    let (status, _, body) = http_post(addr, path, "application/json", Some(KEY), mint).await;
    assert_eq!(status, 200, "{body}");
    let minted: Value = serde_json::from_str(&body).unwrap();
    let secret = minted["value"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("gw_ek_"), "{minted}");

    let (caller, offer) = Caller::offer().await;
    let (status, location, answer) = http_post(
        addr,
        "/v1/realtime/calls",
        "application/sdp",
        Some(&secret),
        offer,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let location = location.unwrap();
    assert!(
        location.starts_with("/v1/realtime/calls/gw_call_"),
        "{location}"
    );
    assert!(answer.contains("a=rtpmap:0 PCMU/8000"), "{answer}");
    let heard = caller.listen(&answer).await;
    assert_eq!(heard.packets, 50, "{heard:?}");

    // The gateway's own sideband metered the chime.
    assert!(
        example.wait_for_log("out=23(text 3, audio 20)"),
        "{}",
        example.log()
    );
    let (status, _, body) = http_post(
        addr,
        &format!("{location}/hangup"),
        "application/json",
        Some(&secret),
        String::new(),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let log = example.stop_gracefully();
    let metered = log
        .lines()
        .find(|line| line.contains("out=23(text 3, audio 20)"))
        .unwrap();
    assert!(metered.contains("realtime_call{"), "{metered}");
    assert!(metered.contains("identity=default"), "{metered}");
    // Neither the secret nor the SDP (its ICE password) is logged.
    assert!(!log.contains(&secret), "{log}");
    assert!(!log.contains("ice-pwd"), "{log}");
}
