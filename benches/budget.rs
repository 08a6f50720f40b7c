//! What budgets cost: Redis commands per response (reserve + settle), and
//! the latency a session admission adds, in memory and in a local Redis,
//! measured in one run: at the store, and through the layer (session setup
//! to the `101`, and responses relayed by a session). Starts its own
//! `redis-server` (Debian package) and a scripted upstream.
//!
//! `cargo bench --all-features --bench budget [-- --quick]`

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tower_realtime::budget::{Budget, Limit, Limits, Micros, Spend, Window};
use tower_realtime::provider::OpenAi;
use tower_realtime::store::{
    Admission, BudgetStore, Grant, MemoryBudgetStore, RedisBudgetStore, Reservation,
    SessionRequest, Settlement,
};
use tower_realtime::testing::{MockUpstream, UpstreamSession};
use tower_realtime::{Providers, RealtimeLayer, Secret};

fn limits() -> Limits {
    Limits::new()
        .with(Limit::tokens(Window::Day, u64::MAX))
        .with(Limit::money(Window::Month, Micros::new(1 << 50)))
        .max_live_sessions(1_000_000)
        .max_new_sessions_per_minute(1_000_000)
}

/// Percentiles of `samples`, in microseconds.
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    format!(
        "p50 {:>7.1} us   p90 {:>7.1} us   p99 {:>7.1} us",
        at(0.5),
        at(0.9),
        at(0.99)
    )
}

/// Times `admit` of `count` fresh sessions (each released after, untimed).
async fn admissions(store: &dyn BudgetStore, count: usize, tag: &str) -> Vec<Duration> {
    let limits = limits();
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let session = format!("{tag}-{i}");
        let request = SessionRequest::new("alice", &session, &limits);
        let started = Instant::now();
        let admission = store.admit(&request).await.unwrap();
        samples.push(started.elapsed());
        assert_eq!(admission, Admission::Admitted);
        store.release_session("alice", &session).await.unwrap();
    }
    samples
}

/// Times reserve + settle of `count` responses.
async fn responses(store: &dyn BudgetStore, count: usize, tag: &str) -> Vec<Duration> {
    let limits = limits();
    let estimate = Spend::new()
        .with_tokens(4_096)
        .with_money(Micros::new(300_000));
    let actual = Spend::new()
        .with_tokens(1_200)
        .with_money(Micros::new(80_000));
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let id = format!("{tag}-{i}");
        let started = Instant::now();
        let grant = store
            .reserve(&Reservation::new("alice", &id, &limits, estimate))
            .await
            .unwrap();
        assert!(matches!(grant, Grant::Granted(_)));
        store
            .settle(&Settlement::new("alice", &id, &limits, actual).releasing(&id))
            .await
            .unwrap();
        samples.push(started.elapsed());
    }
    samples
}

/// An upstream that answers each `response.create` with `response.created`
/// and a `response.done` with usage.
async fn billing_upstream() -> MockUpstream {
    MockUpstream::with_script(|mut session: UpstreamSession| async move {
        session.session_created().await;
        let mut n = 0;
        while let Some(message) = session.recv().await {
            if !message.to_text().unwrap_or_default().contains("response.create") {
                continue;
            }
            n += 1;
            let id = format!("resp_{n}");
            let created = serde_json::json!({"type": "response.created", "response": {"id": id}});
            let usage = serde_json::json!({"total_tokens": 300, "input_tokens": 100, "output_tokens": 200});
            let done = serde_json::json!({"type": "response.done", "response": {"id": id, "usage": usage}});
            session.send_json(&created).await;
            session.send_json(&done).await;
        }
    })
    .await
    .unwrap()
}

/// A gateway on loopback with the layer (and `budget`, if any) in front of `upstream`.
async fn gateway(upstream: &MockUpstream, budget: Option<Budget>) -> std::net::SocketAddr {
    let providers = Providers::new().with(
        "openai",
        OpenAi::new(Secret::new("sk-bench"))
            .base_url(&upstream.base_url())
            .unwrap(),
    );
    let mut layer = RealtimeLayer::new(providers).allow_unauthenticated();
    if let Some(budget) = budget {
        layer = layer.budget(budget);
    }
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn url(addr: std::net::SocketAddr) -> String {
    format!("ws://{addr}/v1/realtime?model=openai/gpt-realtime")
}

/// Times `count` session setups (upgrade request to `101`, the upstream
/// dialled on loopback); each session is closed after, untimed.
async fn setups(addr: std::net::SocketAddr, count: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let (mut client, _) = tokio_tungstenite::connect_async(url(addr)).await.unwrap();
        samples.push(started.elapsed());
        client.close(None).await.unwrap();
        while let Some(Ok(_)) = client.next().await {}
    }
    samples
}

/// Times `count` responses in one session (`response.create` to `response.done`).
async fn relayed_responses(addr: std::net::SocketAddr, count: usize) -> Vec<Duration> {
    let (mut client, _) = tokio_tungstenite::connect_async(url(addr)).await.unwrap();
    let _session_created = client.next().await;
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        client
            .send(Message::text(r#"{"type":"response.create"}"#))
            .await
            .unwrap();
        loop {
            let message = client.next().await.unwrap().unwrap();
            if message
                .to_text()
                .unwrap_or_default()
                .contains("response.done")
            {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}
    samples
}

/// A gateway holding every identity (named by the `x-identity` header) to
/// 250 tokens a day in `store`, in front of `upstream`.
async fn tight_gateway(upstream: &MockUpstream, store: RedisBudgetStore) -> std::net::SocketAddr {
    let providers = Providers::new().with(
        "openai",
        OpenAi::new(Secret::new("sk-bench"))
            .base_url(&upstream.base_url())
            .unwrap(),
    );
    let budget = Budget::new(store, Limits::new().with(Limit::tokens(Window::Day, 250)))
        .estimate(10, 100, 10);
    let layer = RealtimeLayer::new(providers)
        .admission(|request: &http::request::Parts| {
            let name = request.headers["x-identity"].to_str().unwrap_or("?");
            Ok::<_, tower_realtime::admission::Refusal>(tower_realtime::Identity::new(name))
        })
        .budget(budget);
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A session of `identity` on the gateway at `addr`, past its `session.created`.
async fn session_of(
    addr: std::net::SocketAddr,
    identity: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url(addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-identity", identity.parse().unwrap());
    let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let _session_created = client.next().await;
    client
}

/// Times, `count` times, how long after one replica's client got the
/// `response.done` that spent its identity's budget the identity's session
/// on another replica (its own store on the same Redis) was closed.
async fn cross_replica_ends(
    upstream: &MockUpstream,
    replica_a: RedisBudgetStore,
    replica_b: RedisBudgetStore,
    count: usize,
) -> Vec<Duration> {
    let a = tight_gateway(upstream, replica_a).await;
    let b = tight_gateway(upstream, replica_b).await;
    let mut samples = Vec::with_capacity(count);
    for sample in 0..count {
        let identity = format!("spender-{sample}");
        let mut on_b = session_of(b, &identity).await;
        let mut on_a = session_of(a, &identity).await;
        let spent = Instant::now();
        on_a.send(Message::text(r#"{"type":"response.create"}"#))
            .await
            .unwrap();
        while let Some(Ok(message)) = on_b.next().await {
            if message.is_close() {
                break;
            }
        }
        samples.push(spent.elapsed());
        while let Some(Ok(_)) = on_a.next().await {}
    }
    samples
}

/// Commands clients sent (`INFO commandstats` also counts the commands a
/// script runs, so only commands scripts never run are counted: `EVALSHA`,
/// `EVAL`, `SCRIPT`, `ZREM`, `PUBLISH`).
async fn client_commands(connection: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(connection)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            [
                "evalsha",
                "eval",
                "script|load",
                "script",
                "zrem",
                "publish",
            ]
            .contains(&name)
            .then_some(())?;
            stats
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not (a smoke test).
    let has = |flag: &str| std::env::args().any(|arg| arg == flag);
    let quick = has("--quick") || !has("--bench");
    let count = if quick { 200 } else { 5_000 };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(count));
}

async fn run(count: usize) {
    let server = redis_server::RedisServer::start().await;
    let redis = RedisBudgetStore::builder(server.url())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let memory = MemoryBudgetStore::new();
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();

    // Warm up: scripts loaded, connection made.
    admissions(&redis, 50, "warm").await;
    responses(&redis, 50, "warm").await;

    // Round trips: commands the store sent per response and per session.
    let before = client_commands(&mut connection).await;
    responses(&redis, count, "count").await;
    let after = client_commands(&mut connection).await;
    let per_response = (after - before) as f64 / count as f64;

    let before = client_commands(&mut connection).await;
    admissions(&redis, count, "count").await;
    let after = client_commands(&mut connection).await;
    let per_session = (after - before) as f64 / count as f64;

    let mut ping = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .unwrap();
        ping.push(started.elapsed());
    }

    // Memory and Redis take turns so that other load hits both alike.
    let (mut admit_memory, mut admit_redis) = (Vec::new(), Vec::new());
    let (mut response_memory, mut response_redis) = (Vec::new(), Vec::new());
    for turn in 0..4 {
        let tag = format!("t{turn}");
        admit_memory.extend(admissions(&memory, count / 4, &tag).await);
        admit_redis.extend(admissions(&redis, count / 4, &tag).await);
        response_memory.extend(responses(&memory, count / 4, &tag).await);
        response_redis.extend(responses(&redis, count / 4, &tag).await);
    }

    // Through the layer: no budget, in memory, in Redis.
    let upstream = billing_upstream().await;
    let unbudgeted = gateway(&upstream, None).await;
    let in_memory = gateway(&upstream, Some(Budget::new(memory.clone(), limits()))).await;
    let in_redis = gateway(&upstream, Some(Budget::new(redis.clone(), limits()))).await;
    let sessions = (count / 10).max(40);
    for addr in [unbudgeted, in_memory, in_redis] {
        setups(addr, 10).await;
        relayed_responses(addr, 10).await;
    }
    let before = client_commands(&mut connection).await;
    relayed_responses(in_redis, sessions).await;
    let after = client_commands(&mut connection).await;
    // Less the session's own admission and release.
    let per_relayed = (after - before).saturating_sub(2) as f64 / sessions as f64;
    let (mut setup_none, mut setup_memory, mut setup_redis) = (Vec::new(), Vec::new(), Vec::new());
    let (mut relay_none, mut relay_memory, mut relay_redis) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..4 {
        setup_none.extend(setups(unbudgeted, sessions / 4).await);
        setup_memory.extend(setups(in_memory, sessions / 4).await);
        setup_redis.extend(setups(in_redis, sessions / 4).await);
        relay_none.extend(relayed_responses(unbudgeted, sessions / 4).await);
        relay_memory.extend(relayed_responses(in_memory, sessions / 4).await);
        relay_redis.extend(relayed_responses(in_redis, sessions / 4).await);
    }

    let replica = || {
        RedisBudgetStore::builder(server.url())
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    let (replica_a, replica_b) = (replica(), replica());
    tokio::time::timeout(Duration::from_secs(10), replica_b.subscribed())
        .await
        .expect("subscribed");
    let ends = cross_replica_ends(&upstream, replica_a, replica_b, (count / 100).max(20)).await;

    println!("budget store, {count} samples each (loopback redis-server, current-thread runtime)");
    println!("Redis round trips per response (reserve + settle): {per_response:.2}");
    println!("Redis round trips per session (admit + release):  {per_session:.2}");
    println!("redis PING round trip           {}", summary(ping));
    println!("admit, memory                   {}", summary(admit_memory));
    println!("admit, redis                    {}", summary(admit_redis));
    println!(
        "reserve + settle, memory        {}",
        summary(response_memory)
    );
    println!(
        "reserve + settle, redis         {}",
        summary(response_redis)
    );
    println!("through the layer, {sessions} samples each (loopback upstream and client)");
    println!("Redis round trips per relayed response:           {per_relayed:.2}");
    println!("session setup, no budget        {}", summary(setup_none));
    println!("session setup, memory budget    {}", summary(setup_memory));
    println!("session setup, redis budget     {}", summary(setup_redis));
    println!("response, no budget             {}", summary(relay_none));
    println!("response, memory budget         {}", summary(relay_memory));
    println!("response, redis budget          {}", summary(relay_redis));
    println!(
        "a spent budget ends the identity's session on another replica, {} samples",
        ends.len()
    );
    println!("response.create on A to close on B {}", summary(ends));
}
