//! Deployment health shared by two gateways through a real `redis-server`:
//! a deployment that failed behind one gateway is skipped behind the other
//! until its cooldown ends, and sessions still open while Redis is down.
#![cfg(feature = "redis")]

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use common::*;
use redis_server::RedisServer;
use tower_realtime::deployment::{Deployment, DeploymentHealth};
use tower_realtime::provider::OpenAi;
use tower_realtime::store::{RedisBudgetStore, RedisDeploymentHealth};
use tower_realtime::testing::{Handshake, MockUpstream};
use tower_realtime::{Providers, RealtimeLayer, Secret};

/// The first cooldown, and the longest: a failed deployment cools down
/// between half of it and all of it.
const COOLDOWN: Duration = Duration::from_secs(4);

fn provider(base_url: &str) -> OpenAi {
    OpenAi::new(Secret::new(PROVIDER_KEY))
        .base_url(base_url)
        .unwrap()
}

/// A gateway whose alias `voice` is `primary/m` then `backup/m` (tier 1),
/// with its own client of the shared health.
async fn gateway(
    primary: &MockUpstream,
    backup: &MockUpstream,
    health: RedisDeploymentHealth,
) -> Gateway {
    let providers = Providers::new()
        .with("primary", provider(&primary.base_url()))
        .with("backup", provider(&backup.base_url()))
        .deployments(
            "voice",
            [
                Deployment::new("primary/m"),
                Deployment::new("backup/m").tier(1),
            ],
        )
        .deployment_health(health.backoff(COOLDOWN, COOLDOWN));
    serve_axum(RealtimeLayer::new(providers)).await
}

fn health(redis: &RedisServer) -> RedisDeploymentHealth {
    RedisBudgetStore::builder(redis.url())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .deployment_health()
}

/// A deployment that refuses every session with `503`, and an echoing backup.
async fn busy_and_backup() -> (MockUpstream, MockUpstream) {
    let failing = MockUpstream::builder()
        .handshake(Handshake::reject(503, "busy"))
        .start()
        .await
        .unwrap();
    (failing, MockUpstream::echo().await.unwrap())
}

/// Opens a session on `voice` (within [`PROMPTLY`]) and closes it.
async fn one_session(gateway: &Gateway) {
    let mut client = tokio::time::timeout(PROMPTLY, open(gateway, "voice"))
        .await
        .expect("the session opens in time");
    client.close(None).await.unwrap();
}

#[tokio::test]
async fn a_deployment_that_failed_behind_one_gateway_is_skipped_by_the_other_until_it_cooled_down()
{
    let redis = RedisServer::start().await;
    let (failing, backup) = busy_and_backup().await;
    let a = gateway(&failing, &backup, health(&redis)).await;
    let b = gateway(&failing, &backup, health(&redis)).await;

    one_session(&a).await;
    assert_eq!((failing.connections(), backup.connections()), (1, 1));
    // At most a second after the failure: well within its cooldown.
    one_session(&b).await;
    assert_eq!(
        (failing.connections(), backup.connections()),
        (1, 2),
        "the other gateway skipped the failed deployment"
    );

    tokio::time::sleep(COOLDOWN * 2).await;
    one_session(&b).await;
    assert_eq!(
        (failing.connections(), backup.connections()),
        (2, 3),
        "probed again once cooled down"
    );
}

#[tokio::test]
async fn while_redis_is_down_sessions_open_and_health_is_kept_locally() {
    let mut redis = RedisServer::start().await;
    let (failing, backup) = busy_and_backup().await;
    let working = MockUpstream::echo().await.unwrap();
    let a = gateway(&failing, &backup, health(&redis)).await;
    let b = gateway(&working, &backup, health(&redis)).await;
    one_session(&b).await;
    assert_eq!(
        working.connections(),
        1,
        "Redis answered: nothing cools down"
    );
    redis.kill();

    // Every session opens (in time) on the deployment that works.
    one_session(&b).await;
    one_session(&b).await;
    assert_eq!(working.connections(), 3);
    one_session(&a).await;
    assert_eq!((failing.connections(), backup.connections()), (1, 1));
    // The failure is remembered in the gateway that saw it.
    one_session(&a).await;
    assert_eq!((failing.connections(), backup.connections()), (1, 2));
}

#[tokio::test]
async fn replicas_count_failures_in_a_row_together_and_one_success_resets_them() {
    let redis = RedisServer::start().await;
    let backoff = |health: RedisDeploymentHealth| {
        health.backoff(Duration::from_secs(10), Duration::from_secs(80))
    };
    let a = backoff(health(&redis));
    let b = backoff(health(&redis));
    const EAST: &str = "azure-east/gpt-realtime";
    let secs = |cooldown: Option<Duration>| cooldown.map(|d| d.as_secs_f64());

    assert_eq!(b.cooldown(EAST).await, None);
    // Failures from either replica double the same backoff: 10 s, 20 s,
    // 40 s, each with up to half taken off.
    for (failing, full) in [(&a, 10.0), (&b, 20.0), (&a, 40.0)] {
        failing.failed(EAST, None).await;
        for seen_by in [&a, &b] {
            let cooldown = secs(seen_by.cooldown(EAST).await).expect("cooling down");
            assert!(
                (full / 2.0 - 1.0..=full).contains(&cooldown),
                "{cooldown} of {full}"
            );
        }
    }
    // A Retry-After longer than the backoff is honoured.
    b.failed(EAST, Some(Duration::from_secs(3600))).await;
    let cooldown = secs(a.cooldown(EAST).await).unwrap();
    assert!((3590.0..=3600.0).contains(&cooldown), "{cooldown}");
    assert_eq!(a.cooldown("openai/gpt-realtime").await, None);

    // One session opening anywhere resets it for everyone.
    b.succeeded(EAST).await;
    assert_eq!(a.cooldown(EAST).await, None);
    a.failed(EAST, None).await;
    let cooldown = secs(b.cooldown(EAST).await).unwrap();
    assert!(
        (4.0..=10.0).contains(&cooldown),
        "counted from one again: {cooldown}"
    );
}

#[tokio::test]
async fn sessions_open_when_redis_accepts_but_never_answers() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let silent_health = || {
        RedisBudgetStore::builder(url.clone())
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap()
            .deployment_health()
    };
    let (failing, backup) = busy_and_backup().await;
    let gateway = gateway(&failing, &backup, silent_health()).await;
    for _ in 0..3 {
        one_session(&gateway).await;
    }
    assert_eq!(
        (failing.connections(), backup.connections()),
        (1, 3),
        "failed over once, then cooled down in this process"
    );
}

#[tokio::test]
async fn health_is_shared_again_once_redis_is_back() {
    let mut redis = RedisServer::start().await;
    let a = health(&redis);
    let b = health(&redis);
    a.failed("before/m", None).await;
    assert!(b.cooldown("before/m").await.is_some());
    redis.kill();
    a.failed("during/m", None).await;
    assert_eq!(b.cooldown("during/m").await, None, "Redis lost it");
    assert!(
        a.cooldown("during/m").await.is_some(),
        "kept in the process"
    );
    redis.restart().await;

    let shared_again = async {
        for attempt in 0.. {
            let deployment = format!("after-{attempt}/m");
            a.failed(&deployment, None).await;
            // `b` never saw it fail: a cooldown can only come from Redis.
            if b.cooldown(&deployment).await.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PROMPTLY, shared_again)
        .await
        .expect("shared again within the retry interval");
}
