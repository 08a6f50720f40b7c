//! The gateway example's budgets, per-identity limits and deployment
//! health, driven from the outside: two gateway processes sharing one real
//! `redis-server`, a money budget priced from a file, Redis unreachable
//! under both policies, and the startup errors of the budget flags.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::example::{Example, example_binary, scratch_dir};
use common::*;
use redis_server::RedisServer;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Error as WsError;
use tower_realtime::testing::{Handshake, MockUpstream, WebRtcUpstream};

const KEYS: &str = "alice:KEY-ALICE,bob:KEY-BOB";
const ALICE: &[(&str, &str)] = &[("authorization", "Bearer KEY-ALICE")];
const BOB: &[(&str, &str)] = &[("authorization", "Bearer KEY-BOB")];

fn gateway(args: &[&str]) -> Example {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Example::start_with_env(
        &example_binary("gateway"),
        &all,
        None,
        &[("GATEWAY_API_KEYS", KEYS)],
    )
}

/// A replica on `redis` without the demo providers, with `args` and `env`.
fn redis_replica(redis: &RedisServer, args: &[&str], env: &[(&str, &str)]) -> Example {
    let url = redis.url();
    let mut all = vec!["--listen", "127.0.0.1:0", "--no-demo", "--redis", &url];
    all.extend_from_slice(args);
    Example::start_with_env(&example_binary("gateway"), &all, None, env)
}

fn url(example: &Example) -> String {
    format!("ws://{}/v1/realtime?model=demo/realtime", example.addr)
}

/// Opens a session and reads its `session.created`.
async fn open_session(example: &Example, headers: &[(&str, &str)]) -> Client {
    let (mut client, _) = connect(&url(example), headers)
        .await
        .expect("the session opens");
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    client
}

/// A user message of about `tokens` tokens (the demo counts four
/// characters a token) and a response to it; returns the `response.done`.
async fn long_turn(client: &mut Client, tokens: usize) -> Value {
    let text = "word ".repeat(tokens * 4 / 5);
    let item = json!({"type": "conversation.item.create", "item": {"type": "message",
        "role": "user", "content": [{"type": "input_text", "text": text}]}});
    send_text(client, &item.to_string()).await;
    send_text(
        client,
        r#"{"type":"response.create","response":{"output_modalities":["text"]}}"#,
    )
    .await;
    loop {
        let event = next_event(client).await;
        assert_ne!(event["type"], "error", "{event}");
        if event["type"] == "response.done" {
            return event;
        }
    }
}

/// Reads until the gateway closes: the events before, and the close code.
async fn until_closed(client: &mut Client) -> (Vec<Value>, Option<u16>) {
    read_events_until(client, |_| false).await
}

/// Retries until a session of `headers` opens (a released session slot is
/// given back in the background).
async fn open_eventually(example: &Example, headers: &[(&str, &str)]) -> Client {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        match connect(&url(example), headers).await {
            Ok((mut client, _)) => {
                assert_eq!(next_event(&mut client).await["type"], "session.created");
                return client;
            }
            Err(error) => assert!(Instant::now() < deadline, "still refused: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_live_session_per_key_holds_across_replicas() {
    let redis = RedisServer::start().await;
    let args = ["--redis", &redis.url(), "--max-sessions-per-key", "1"];
    let a = gateway(&args);
    let b = gateway(&args);
    for replica in [&a, &b] {
        assert!(
            replica.banner.contains(
                "budgets    per identity: 1 live session; shared through Redis at 127.0.0.1:"
            ),
            "{}",
            replica.banner
        );
        assert!(
            replica.banner.contains("(fail closed)"),
            "{}",
            replica.banner
        );
    }

    let mut alice = open_session(&a, ALICE).await;
    let (status, _, body) = refused(&url(&b), ALICE).await;
    assert_eq!(status, 429);
    assert_eq!(
        body["error"]["code"], "concurrency_limit_exceeded",
        "{body}"
    );
    // On the replica that holds it too.
    assert_eq!(refused(&url(&a), ALICE).await.0, 429);
    // Another identity is not limited by alice's session.
    let mut bob = open_session(&b, BOB).await;

    // Once alice's session ends, she may open one on the other replica.
    alice.close(None).await.unwrap();
    let mut again = open_eventually(&b, ALICE).await;
    assert_eq!(refused(&url(&a), ALICE).await.0, 429);
    again.close(None).await.unwrap();
    bob.close(None).await.unwrap();
}

#[tokio::test]
async fn new_sessions_per_key_and_minute_are_counted_across_replicas() {
    let redis = RedisServer::start().await;
    let args = [
        "--redis",
        &redis.url(),
        "--sessions-per-minute-per-key",
        "1",
    ];
    let a = gateway(&args);
    let b = gateway(&args);
    let mut first = open_session(&a, ALICE).await;
    first.close(None).await.unwrap();
    // Alice's next session is refused on the other replica; should the two
    // straddle the end of a UTC minute, the one admitted is the new
    // minute's first, and the next try (back on A) is refused.
    let mut refusal = None;
    for replica in [&b, &a] {
        match connect(&url(replica), ALICE).await {
            Err(WsError::Http(response)) => {
                refusal = Some(response);
                break;
            }
            Err(other) => panic!("{other}"),
            Ok((mut admitted, _)) => admitted.close(None).await.unwrap(),
        }
    }
    let response = refusal.expect("a second session in one minute is refused");
    assert_eq!(response.status(), 429);
    let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "retry after {retry} s");
    // Bob has a minute of his own.
    let mut bob = open_session(&b, BOB).await;
    bob.close(None).await.unwrap();
}

#[tokio::test]
async fn a_spent_token_budget_ends_the_identitys_sessions_on_every_replica() {
    let redis = RedisServer::start().await;
    let args = ["--redis", &redis.url(), "--token-budget", "1500"];
    let a = gateway(&args);
    let b = gateway(&args);
    assert!(
        a.banner.contains("per identity: 1500 tokens per UTC day"),
        "{}",
        a.banner
    );

    let mut idle_on_b = open_session(&b, ALICE).await;
    let mut bob_on_b = open_session(&b, BOB).await;
    let mut alice_on_a = open_session(&a, ALICE).await;
    // One turn of 2,000 tokens on replica A spends the day's 1,500.
    let done = long_turn(&mut alice_on_a, 2_000).await;
    let spent = done["response"]["usage"]["total_tokens"].as_u64().unwrap();
    assert!(spent > 1_500, "{done}");

    // Her idle session on replica B is told why, and closed with 1008.
    let (events, close) = until_closed(&mut idle_on_b).await;
    let error = events
        .iter()
        .find(|event| event["type"] == "error")
        .unwrap_or_else(|| panic!("no error event: {events:?}"));
    assert_eq!(error["error"]["code"], "insufficient_quota", "{error}");
    assert_eq!(close, Some(1008));
    // So is the session that spent it.
    let (_, close) = until_closed(&mut alice_on_a).await;
    assert_eq!(close, Some(1008));

    // New sessions of hers are refused on both replicas, before any dial.
    for replica in [&a, &b] {
        let (status, headers, body) = refused(&url(replica), ALICE).await;
        assert_eq!(status, 429);
        assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
        // Until the UTC day ends.
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&retry), "retry after {retry} s");
    }
    // Bob's session goes on, and he still gets in anywhere.
    send_text(&mut bob_on_b, r#"{"type":"response.create"}"#).await;
    let (events, close) =
        read_events_until(&mut bob_on_b, |event| event["type"] == "response.done").await;
    assert_eq!(close, None, "{events:?}");
    let mut bob_on_a = open_session(&a, BOB).await;
    bob_on_a.close(None).await.unwrap();
    bob_on_b.close(None).await.unwrap();
}

#[tokio::test]
async fn a_drained_replicas_sessions_may_reopen_on_another_at_once() {
    let redis = RedisServer::start().await;
    let args = ["--redis", &redis.url(), "--max-sessions-per-key", "1"];
    let mut a = gateway(&args);
    let b = gateway(&args);
    let mut alice = open_session(&a, ALICE).await;

    // SIGTERM: the session is told and closed with 1001 (SDKs reconnect on it)...
    let stop = std::thread::spawn(move || {
        let status = a.terminate();
        (status, a.log())
    });
    let (events, close) = until_closed(&mut alice).await;
    assert_eq!(close, Some(1001), "{events:?}");
    assert!(
        events
            .iter()
            .any(|event| event["error"]["code"] == "gateway_shutting_down"),
        "{events:?}"
    );
    let (status, log) = stop.join().unwrap();
    assert!(status.success(), "{status}\n{log}");
    // ...and its place under the session limit was given back before the
    // replica exited: the reconnect is admitted by the other replica, not
    // refused until the drained replica's lease runs out.
    let (mut again, _) = connect(&url(&b), ALICE)
        .await
        .expect("the reconnect opens at once");
    assert_eq!(next_event(&mut again).await["type"], "session.created");
    again.close(None).await.unwrap();
}

#[tokio::test]
async fn a_deployment_that_failed_behind_one_replica_is_not_dialled_by_the_other() {
    let redis = RedisServer::start().await;
    // Busy for a minute: the cooldown lasts as long (Retry-After is honoured).
    let dead = MockUpstream::builder()
        .handshake(
            Handshake::reject(503, r#"{"error":{"message":"busy"}}"#).header("retry-after", "60"),
        )
        .start()
        .await
        .unwrap();
    let live = MockUpstream::echo().await.unwrap();
    let (dead_url, live_url) = (dead.base_url(), live.base_url());
    let env = [
        ("GATEWAY_API_KEYS", KEYS),
        ("REALTIME_PROVIDERS", "dead,live"),
        ("DEAD_BASE_URL", dead_url.as_str()),
        ("LIVE_BASE_URL", live_url.as_str()),
        ("REALTIME_MODEL_ALIASES", "voice=dead/m|live/m"),
    ];
    // Redis alone, without budgets: it shares deployment health. Nothing
    // pre-warmed, so that each connection an upstream counts is a dial.
    let replica = || redis_replica(&redis, &["--prewarm", "0"], &env);
    let (a, b) = (replica(), replica());
    assert!(
        a.banner
            .contains("shared     deployment health and WebRTC calls through Redis at 127.0.0.1:"),
        "{}",
        a.banner
    );
    let voice = |replica: &Example| format!("ws://{}/v1/realtime?model=voice", replica.addr);

    let (mut on_a, _) = connect(&voice(&a), ALICE).await.expect("failed over");
    assert_eq!((dead.connections(), live.connections()), (1, 1));
    let (mut on_b, _) = connect(&voice(&b), ALICE).await.expect("opens");
    assert_eq!(
        (dead.connections(), live.connections()),
        (1, 2),
        "the other replica skipped the deployment that failed"
    );
    on_a.close(None).await.unwrap();
    on_b.close(None).await.unwrap();
}

/// With `--redis`, WebRTC calls are shared: a client secret minted on one
/// replica posts its call to the other, and the first hangs the call up.
#[tokio::test]
async fn a_webrtc_call_minted_on_one_replica_is_served_by_another() {
    let redis = RedisServer::start().await;
    let provider = WebRtcUpstream::start().await.unwrap();
    let base = provider.base_url();
    let env = [
        ("GATEWAY_API_KEYS", KEYS),
        ("OPENAI_API_KEY", "sk-upstream"),
        ("OPENAI_BASE_URL", base.as_str()),
    ];
    let a = redis_replica(&redis, &[], &env);
    // The other replica finds Redis through `REDIS_URL` instead of the flag.
    let url = redis.url();
    let mut with_url = env.to_vec();
    with_url.push(("REDIS_URL", url.as_str()));
    let b = Example::start_with_env(
        &example_binary("gateway"),
        &["--listen", "127.0.0.1:0", "--no-demo"],
        None,
        &with_url,
    );
    assert!(
        b.banner.contains("WebRTC calls through Redis"),
        "{}",
        b.banner
    );

    let mint = json!({"session": {"type": "realtime", "model": "openai/gpt-realtime"}});
    let (status, _, body) = http_post(
        a.addr,
        "/v1/realtime/client_secrets",
        "application/json",
        Some("KEY-ALICE"),
        mint.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let minted: Value = serde_json::from_str(&body).unwrap();
    let secret = minted["value"].as_str().unwrap().to_owned();

    let offer =
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
    let (status, location, answer) = http_post(
        b.addr,
        "/v1/realtime/calls",
        "application/sdp",
        Some(&secret),
        offer.to_owned(),
    )
    .await;
    assert_eq!(status, 201, "the other replica knows the secret: {answer}");
    let location = location.unwrap();
    assert!(
        location.starts_with("/v1/realtime/calls/gw_call_"),
        "{location}"
    );
    let rtc = provider.calls();
    assert_eq!(rtc.len(), 1);

    let (status, _, body) = http_post(
        a.addr,
        &format!("{location}/hangup"),
        "application/json",
        Some(&secret),
        String::new(),
    )
    .await;
    assert_eq!(status, 200, "the first replica knows the call: {body}");
    assert_eq!(provider.actions(), [(rtc[0].clone(), "hangup".to_owned())]);
}

/// A price file in the scratch directory.
fn price_file(name: &str, text: &str) -> PathBuf {
    let path = scratch_dir("gateway_replicas").join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_dollar_budget_is_priced_from_a_toml_file() {
    // $10 per million text tokens in, $20 out: 2,000 tokens in cost $0.02.
    let prices = price_file(
        "prices.toml",
        "# dollars per million tokens\n\
         [models.\"demo/realtime\"]\n\
         input_text = 10\n\
         output_text = \"20\"\n\
         input_audio = 10.0\n",
    );
    let example = gateway(&[
        "--usd-budget",
        "0.015",
        "--prices",
        prices.to_str().unwrap(),
    ]);
    assert!(
        example
            .banner
            .contains("budgets    per identity: $0.015 per UTC day; in this process"),
        "{}",
        example.banner
    );
    let mut alice = open_session(&example, ALICE).await;
    long_turn(&mut alice, 2_000).await;
    let (events, close) = until_closed(&mut alice).await;
    assert!(
        events
            .iter()
            .any(|event| event["error"]["code"] == "insufficient_quota"),
        "{events:?}"
    );
    assert_eq!(close, Some(1008));
    let (status, _, body) = refused(&url(&example), ALICE).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    let mut bob = open_session(&example, BOB).await;
    bob.close(None).await.unwrap();

    // The session's log line says what it charged alice: over $0.02 for
    // the 2,000 tokens of input, as the price file says.
    assert!(
        example.wait_for_log("usage: session identity=alice"),
        "{}",
        example.log()
    );
    let log = example.log();
    let line = log
        .lines()
        .find(|line| line.contains("usage: session identity=alice"))
        .unwrap();
    let usd: f64 = line
        .split_once("usd=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no spend in: {line}"))
        .parse()
        .unwrap();
    assert!((0.02..0.03).contains(&usd), "{line}");
    assert!(line.contains("spent=tokens=2"), "{line}");
}

#[tokio::test]
async fn unreachable_redis_fails_closed_unless_told_to_fail_open() {
    let mut redis = RedisServer::start().await;
    let url_of_redis = redis.url();
    redis.kill();

    let closed = gateway(&["--redis", &url_of_redis, "--token-budget", "100000"]);
    assert!(
        closed.wait_for_log("Redis does not answer yet"),
        "{}",
        closed.log()
    );
    let (status, headers, body) = refused(&url(&closed), ALICE).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["error"]["code"], "budget_store_unavailable", "{body}");

    let open = gateway(&[
        "--redis",
        &url_of_redis,
        "--token-budget",
        "100000",
        "--redis-fail-open",
    ]);
    assert!(open.banner.contains("(fail open)"), "{}", open.banner);
    let mut alice = open_session(&open, ALICE).await;
    alice.close(None).await.unwrap();

    // Redis back: the fail-closed replica admits again by itself.
    redis.restart().await;
    let mut alice = open_eventually(&closed, ALICE).await;
    alice.close(None).await.unwrap();
}

#[test]
fn budget_flags_are_checked_at_startup() {
    let binary = example_binary("gateway");
    let help = Command::new(&binary).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for item in [
        "--token-budget N",
        "--usd-budget X",
        "--prices FILE",
        "--max-sessions-per-key N",
        "--sessions-per-minute-per-key N",
        "--redis URL",
        "--redis-fail-open",
        "REDIS_URL",
    ] {
        assert!(help.contains(item), "{item} missing from --help:\n{help}");
    }

    let unknown_price = price_file(
        "unknown-price.json",
        r#"{"models": {"demo/realtime": {"input_txt": "4"}}}"#,
    );
    let not_toml = price_file("broken.toml", "[models.\"demo/realtime\"\ninput_text = 4\n");
    let too_precise = price_file(
        "too-precise.toml",
        "[default]\noutput_audio = \"0.0000001\"\n",
    );
    let missing = scratch_dir("gateway_replicas").join("missing.json");
    let path = |path: &PathBuf| path.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--usd-budget".into(), "5".into()],
            "--usd-budget needs --prices FILE",
        ),
        (
            vec![
                "--usd-budget".into(),
                "5".into(),
                "--prices".into(),
                path(&unknown_price),
            ],
            "models.demo/realtime.input_txt: unknown price",
        ),
        (
            vec![
                "--usd-budget".into(),
                "5".into(),
                "--prices".into(),
                path(&not_toml),
            ],
            "broken.toml: price table:",
        ),
        (
            vec!["--prices".into(), path(&too_precise)],
            "default.output_audio",
        ),
        (
            vec![
                "--usd-budget".into(),
                "5".into(),
                "--prices".into(),
                path(&missing),
            ],
            "missing.json",
        ),
        (
            vec!["--usd-budget".into(), "-1".into()],
            "--usd-budget: `-1` is not valid",
        ),
        (
            vec!["--usd-budget".into(), "0".into()],
            "--usd-budget must be more than 0",
        ),
        (
            vec!["--token-budget".into(), "0".into()],
            "--token-budget must be at least 1",
        ),
        (
            vec!["--token-budget".into(), "many".into()],
            "--token-budget: `many` is not valid",
        ),
        (
            vec!["--max-sessions-per-key".into(), "0".into()],
            "--max-sessions-per-key must be at least 1",
        ),
        (
            vec!["--redis-fail-open".into()],
            "--redis-fail-open needs --redis URL",
        ),
        (
            vec![
                "--redis".into(),
                "not a url".into(),
                "--token-budget".into(),
                "5".into(),
            ],
            "--redis:",
        ),
    ];
    for (args, complaint) in cases {
        let output = Command::new(&binary)
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .env_remove("REDIS_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(complaint), "{args:?}: {stderr}");
    }
}
