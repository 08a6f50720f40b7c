//! What budgets cost: Redis commands per response (reserve + settle), and
//! the latency a session admission adds, in memory and in a local Redis,
//! measured in one run. Starts its own `redis-server` (Debian package).
//!
//! `cargo bench --all-features --bench budget [-- --quick]`

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use tower_realtime::budget::{Limit, Limits, Micros, Spend, Window};
use tower_realtime::store::{
    Admission, BudgetStore, Grant, MemoryBudgetStore, RedisBudgetStore, Reservation,
    SessionRequest, Settlement,
};

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
}
