//! The budget stores' behaviour: the same tests against the in-memory store
//! and against a real `redis-server` (two separate clients, as two
//! replicas would have), plus what only Redis can do: fail while it is down
//! and recover when it is back.

#[cfg(feature = "redis")]
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_realtime::budget::{Limit, Limits, Micros, RefusalReason, Spend, Window};
use tower_realtime::store::{
    Admission, BudgetStore, Grant, MemoryBudgetStore, Reservation, SessionRequest, Settlement,
};

/// How long a test waits for something that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(10);
const HOUR: u64 = 3_600;
const DAY: u64 = 24 * HOUR;

/// 2026-12-02T01:00:00Z plus `seconds`.
fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_796_169_600_000) + Duration::from_secs(HOUR + seconds)
}

fn tokens(n: u64) -> Spend {
    Spend::new().with_tokens(n)
}

/// Two clients of one store, as two replicas have.
struct Stores {
    a: Arc<dyn BudgetStore>,
    b: Arc<dyn BudgetStore>,
    #[cfg(feature = "redis")]
    _redis: Option<redis_server::RedisServer>,
}

/// Store settings a test needs.
#[derive(Clone, Copy)]
struct Options {
    reservation_ttl: Duration,
}

const DEFAULTS: Options = Options {
    reservation_ttl: Duration::from_secs(600),
};

fn memory_stores(options: Options) -> Stores {
    let store = MemoryBudgetStore::with_reservation_ttl(options.reservation_ttl);
    Stores {
        a: Arc::new(store.clone()),
        b: Arc::new(store),
        #[cfg(feature = "redis")]
        _redis: None,
    }
}

#[cfg(feature = "redis")]
async fn redis_stores(options: Options) -> Stores {
    use tower_realtime::store::RedisBudgetStore;
    let server = redis_server::RedisServer::start().await;
    let client = || {
        RedisBudgetStore::builder(server.url())
            .timeout(Duration::from_secs(2))
            .reservation_ttl(options.reservation_ttl)
            .build()
            .unwrap()
    };
    let (a, b) = (client(), client());
    for store in [&a, &b] {
        tokio::time::timeout(PROMPTLY, store.subscribed())
            .await
            .expect("subscribed to exhaustion announcements");
    }
    Stores {
        a: Arc::new(a),
        b: Arc::new(b),
        _redis: Some(server),
    }
}

/// Runs each test body against both stores.
macro_rules! on_both_stores {
    ($($test:ident($options:expr);)*) => {$(
        mod $test {
            use super::*;

            #[tokio::test]
            async fn memory() {
                super::$test(&memory_stores($options)).await;
            }

            #[cfg(feature = "redis")]
            #[tokio::test]
            async fn redis() {
                super::$test(&redis_stores($options).await).await;
            }
        }
    )*};
}

on_both_stores! {
    reserve_settle_and_window_reset(DEFAULTS);
    concurrent_reservations_never_overspend(DEFAULTS);
    settling_twice_charges_once(DEFAULTS);
    an_expired_reservation_is_charged_once(Options { reservation_ttl: Duration::from_secs(1) });
    live_sessions_are_counted_across_clients(DEFAULTS);
    new_sessions_are_counted_per_minute(DEFAULTS);
    exhaustion_reaches_every_client(DEFAULTS);
    several_budgets_all_hold(DEFAULTS);
}

async fn reserve(
    store: &dyn BudgetStore,
    identity: &str,
    id: &str,
    limits: &Limits,
    want: Spend,
    min: Spend,
    now: SystemTime,
) -> Grant {
    let reservation = Reservation::new(identity, id, limits, want)
        .at_least(min)
        .at(now);
    store.reserve(&reservation).await.unwrap()
}

async fn settle(
    store: &dyn BudgetStore,
    id: &str,
    reservation: Option<&str>,
    limits: &Limits,
    actual: Spend,
    now: SystemTime,
) -> tower_realtime::store::Settled {
    let mut settlement = Settlement::new("alice", id, limits, actual).at(now);
    if let Some(reservation) = reservation {
        settlement = settlement.releasing(reservation);
    }
    store.settle(&settlement).await.unwrap()
}

/// (spent, held) of the first budget.
async fn balance(store: &dyn BudgetStore, limits: &Limits, now: SystemTime) -> (u64, u64) {
    let balance = store.balance("alice", limits, now).await.unwrap();
    (balance[0].spent, balance[0].held)
}

async fn admit(
    store: &dyn BudgetStore,
    identity: &str,
    session: &str,
    limits: &Limits,
    now: SystemTime,
) -> Admission {
    let request = SessionRequest::new(identity, session, limits).at(now);
    store.admit(&request).await.unwrap()
}

fn refused(grant: Grant) -> tower_realtime::budget::Refusal {
    match grant {
        Grant::Refused(refusal) => refusal,
        Grant::Granted(spend) => panic!("granted {spend:?}"),
        _ => unreachable!(),
    }
}

async fn reserve_settle_and_window_reset(stores: &Stores) {
    let (a, b) = (&*stores.a, &*stores.b);
    let limits = Limits::new().with(Limit::tokens(Window::Day, 1_000));
    let t0 = at(0);

    // All or nothing by default.
    let grant = reserve(a, "alice", "r1", &limits, tokens(600), tokens(600), t0).await;
    assert_eq!(grant, Grant::Granted(tokens(600)));
    let refusal = refused(reserve(b, "alice", "r2", &limits, tokens(600), tokens(600), t0).await);
    assert_eq!(refusal.code(), "insufficient_quota");
    assert_eq!(
        refusal.reason(),
        RefusalReason::Budget(Limit::tokens(Window::Day, 1_000))
    );
    assert_eq!(refusal.retry_after(), Some(Duration::from_secs(23 * HOUR)));

    // Less than asked for, down to a minimum.
    let grant = reserve(b, "alice", "r2", &limits, tokens(600), tokens(100), t0).await;
    assert_eq!(grant, Grant::Granted(tokens(400)));
    assert_eq!(balance(a, &limits, t0).await, (0, 1_000));

    // Settling returns what was not used.
    let settled = settle(a, "resp_1", Some("r1"), &limits, tokens(500), t0).await;
    assert!(settled.applied());
    assert!(!settled.is_deferred());
    assert_eq!(settled.exhausted(), None);
    assert_eq!(balance(b, &limits, t0).await, (500, 400));

    // Spending the rest exhausts the budget: no new session today.
    let settled = settle(b, "resp_2", Some("r2"), &limits, tokens(500), t0).await;
    let exhausted = settled.exhausted().expect("the day's tokens are spent");
    assert_eq!(
        exhausted.retry_after(),
        Some(Duration::from_secs(23 * HOUR))
    );
    assert_eq!(balance(a, &limits, t0).await, (1_000, 0));
    let Admission::Refused(refusal) = admit(a, "alice", "s1", &limits, t0).await else {
        panic!("admitted over budget");
    };
    assert_eq!(refusal.code(), "insufficient_quota");
    // Another identity is not affected.
    assert_eq!(
        admit(b, "bob", "s1", &limits, t0).await,
        Admission::Admitted
    );

    // The next UTC day starts afresh.
    let t1 = at(23 * HOUR);
    assert_eq!(balance(a, &limits, t1).await, (0, 0));
    assert_eq!(
        admit(b, "alice", "s1", &limits, t1).await,
        Admission::Admitted
    );
    let grant = reserve(a, "alice", "r3", &limits, tokens(1_000), tokens(1_000), t1).await;
    assert_eq!(grant, Grant::Granted(tokens(1_000)));
    let balances = a.balance("alice", &limits, t1).await.unwrap();
    assert_eq!(balances[0].remaining(), 0);
    assert_eq!(balances[0].resets_in, Some(Duration::from_secs(DAY)));
}

async fn concurrent_reservations_never_overspend(stores: &Stores) {
    let limits = Arc::new(Limits::new().with(Limit::money(Window::Total, Micros::new(10_000))));
    let price = Spend::new().with_money(Micros::new(700));
    let mut workers = Vec::new();
    for worker in 0..16 {
        let store = if worker % 2 == 0 {
            stores.a.clone()
        } else {
            stores.b.clone()
        };
        let limits = limits.clone();
        workers.push(tokio::spawn(async move {
            let mut granted = 0;
            for response in 0.. {
                let id = format!("w{worker}-r{response}");
                let reservation = Reservation::new("alice", &id, &limits, price).at(at(0));
                match store.reserve(&reservation).await.unwrap() {
                    Grant::Granted(spend) => {
                        assert_eq!(spend, price);
                        granted += 1;
                        let settlement = Settlement::new("alice", &id, &limits, price)
                            .releasing(&id)
                            .at(at(0));
                        store.settle(&settlement).await.unwrap();
                    }
                    Grant::Refused(_) => return granted,
                    _ => unreachable!(),
                }
            }
            granted
        }));
    }
    let mut granted = 0;
    for worker in workers {
        granted += worker.await.unwrap();
    }
    // 14 × 700 = 9800 fits in 10 000; a 15th would not.
    assert_eq!(granted, 14);
    let balance = stores.a.balance("alice", &limits, at(0)).await.unwrap();
    assert_eq!((balance[0].spent, balance[0].held), (9_800, 0));
}

async fn settling_twice_charges_once(stores: &Stores) {
    let (a, b) = (&*stores.a, &*stores.b);
    let limits = Limits::new().with(Limit::tokens(Window::Total, 10_000));
    let t0 = at(0);
    reserve(a, "alice", "r1", &limits, tokens(1_000), tokens(1_000), t0).await;
    let first = settle(a, "resp_1", Some("r1"), &limits, tokens(800), t0).await;
    let again = settle(b, "resp_1", Some("r1"), &limits, tokens(800), t0).await;
    let later = settle(a, "resp_1", Some("r1"), &limits, tokens(800), at(60)).await;
    assert!(first.applied());
    assert!(!again.applied());
    assert!(!later.applied());
    assert_eq!(balance(b, &limits, t0).await, (800, 0));

    // Charges without a reservation (transcriptions, audio time) too.
    for store in [a, b, a] {
        settle(store, "transcript_1", None, &limits, tokens(50), t0).await;
    }
    assert_eq!(balance(a, &limits, t0).await, (850, 0));
}

async fn an_expired_reservation_is_charged_once(stores: &Stores) {
    let (a, b) = (&*stores.a, &*stores.b);
    let limits = Limits::new().with(Limit::tokens(Window::Total, 10_000));
    reserve(
        a,
        "alice",
        "r1",
        &limits,
        tokens(1_000),
        tokens(1_000),
        at(0),
    )
    .await;
    // The reservation lives one second; the next reservation finds it expired
    // and charges it in full (its holder may have let the model speak).
    reserve(b, "alice", "r2", &limits, tokens(500), tokens(500), at(2)).await;
    assert_eq!(balance(a, &limits, at(2)).await, (1_000, 500));
    // Its holder was only slow: its settlement charges the difference.
    let settled = settle(a, "resp_1", Some("r1"), &limits, tokens(1_200), at(3)).await;
    assert!(settled.applied());
    assert_eq!(balance(b, &limits, at(3)).await, (1_200, 500));
    settle(b, "resp_2", Some("r2"), &limits, tokens(100), at(3)).await;
    assert_eq!(balance(a, &limits, at(3)).await, (1_300, 0));
}

async fn live_sessions_are_counted_across_clients(stores: &Stores) {
    let (a, b) = (&*stores.a, &*stores.b);
    let limits = Limits::new().max_live_sessions(2);
    let now = SystemTime::now();
    assert_eq!(
        admit(a, "alice", "s1", &limits, now).await,
        Admission::Admitted
    );
    assert_eq!(
        admit(b, "alice", "s2", &limits, now).await,
        Admission::Admitted
    );
    let Admission::Refused(refusal) = admit(a, "alice", "s3", &limits, now).await else {
        panic!("a third live session");
    };
    assert_eq!(refusal.reason(), RefusalReason::LiveSessions(2));
    assert_eq!(refusal.code(), "concurrency_limit_exceeded");
    assert_eq!(refusal.retry_after(), None);
    // Admitting a live session again does not count it twice.
    assert_eq!(
        admit(b, "alice", "s1", &limits, now).await,
        Admission::Admitted
    );
    assert_eq!(
        admit(a, "bob", "s3", &limits, now).await,
        Admission::Admitted
    );

    b.release_session("alice", "s1").await.unwrap();
    b.release_session("alice", "never-opened").await.unwrap();
    assert_eq!(
        admit(a, "alice", "s3", &limits, now).await,
        Admission::Admitted
    );
    assert!(matches!(
        admit(b, "alice", "s4", &limits, now).await,
        Admission::Refused(_)
    ));
}

async fn new_sessions_are_counted_per_minute(stores: &Stores) {
    let (a, b) = (&*stores.a, &*stores.b);
    let limits = Limits::new().max_new_sessions_per_minute(2);
    let t = at(10);
    for (store, session) in [(a, "n1"), (b, "n2")] {
        assert_eq!(
            admit(store, "alice", session, &limits, t).await,
            Admission::Admitted
        );
        store.release_session("alice", session).await.unwrap();
    }
    let Admission::Refused(refusal) = admit(a, "alice", "n3", &limits, t).await else {
        panic!("a third session in one minute");
    };
    assert_eq!(refusal.reason(), RefusalReason::NewSessions(2));
    assert_eq!(refusal.code(), "rate_limit_exceeded");
    assert_eq!(refusal.retry_after(), Some(Duration::from_secs(50)));
    assert_eq!(
        admit(b, "alice", "n3", &limits, at(60)).await,
        Admission::Admitted
    );
}

async fn exhaustion_reaches_every_client(stores: &Stores) {
    let (a, b) = (&*stores.a, &*stores.b);
    let (mut on_a, mut on_b) = (a.exhausted(), b.exhausted());
    let limits = Limits::new().with(Limit::tokens(Window::Total, 100));
    let settled = settle(a, "resp_1", None, &limits, tokens(150), at(0)).await;
    assert!(settled.exhausted().is_some());
    for exhausted in [&mut on_b, &mut on_a] {
        let identity = tokio::time::timeout(PROMPTLY, exhausted.recv())
            .await
            .unwrap();
        assert_eq!(identity.as_deref(), Some("alice"));
    }
    b.announce_exhausted("bob").await.unwrap();
    let identity = tokio::time::timeout(PROMPTLY, on_a.recv()).await.unwrap();
    assert_eq!(identity.as_deref(), Some("bob"));
}

async fn several_budgets_all_hold(stores: &Stores) {
    let (a, b) = (&*stores.a, &*stores.b);
    let limits = Limits::new()
        .with(Limit::tokens(Window::Hour, 1_000))
        .with(Limit::tokens(Window::Day, 1_500))
        .with(Limit::input_audio(Window::Day, Duration::from_secs(60)))
        .with(Limit::money(Window::Month, Micros::new(5_000)));
    let want = Spend::new()
        .with_tokens(900)
        .with_input_audio(Duration::from_secs(10))
        .with_money(Micros::new(1_000));
    assert_eq!(
        reserve(a, "alice", "r1", &limits, want, want, at(0)).await,
        Grant::Granted(want)
    );
    settle(a, "resp_1", Some("r1"), &limits, want, at(0)).await;
    // The hour allows 100 more tokens; the day 600.
    let refusal = refused(reserve(b, "alice", "r2", &limits, want, want, at(0)).await);
    assert_eq!(
        refusal.reason(),
        RefusalReason::Budget(Limit::tokens(Window::Hour, 1_000))
    );
    assert_eq!(refusal.retry_after(), Some(Duration::from_secs(HOUR)));
    // Next hour: the day's 600 tokens are what is left.
    let grant = reserve(b, "alice", "r2", &limits, want, tokens(1), at(HOUR)).await;
    let expected = want.with_tokens(600);
    assert_eq!(grant, Grant::Granted(expected));
    let balances = b.balance("alice", &limits, at(HOUR)).await.unwrap();
    let spent: Vec<u64> = balances.iter().map(|b| b.spent).collect();
    assert_eq!(spent, vec![0, 900, 10_000, 1_000]);
    let held: Vec<u64> = balances.iter().map(|b| b.held).collect();
    assert_eq!(held, vec![600, 600, 10_000, 1_000]);
}

#[cfg(feature = "redis")]
mod redis_only {
    use super::redis_server::RedisServer;
    use super::*;
    use tower_realtime::store::{OnUnavailable, RedisBudgetStore};

    fn store(server: &RedisServer, policy: OnUnavailable) -> RedisBudgetStore {
        RedisBudgetStore::builder(server.url())
            .timeout(Duration::from_millis(500))
            .on_unavailable(policy)
            .build()
            .unwrap()
    }

    /// Waits (bounded) until `done` holds.
    async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let give_up = tokio::time::Instant::now() + 3 * PROMPTLY;
        while !done().await {
            assert!(tokio::time::Instant::now() < give_up, "never: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn fail_closed_errors_promptly_and_settles_when_redis_is_back() {
        let mut server = RedisServer::start().await;
        let store = store(&server, OnUnavailable::FailClosed);
        let limits = Limits::new()
            .with(Limit::tokens(Window::Total, 1_000))
            .max_live_sessions(5);
        let request = SessionRequest::new("alice", "s1", &limits);
        assert_eq!(store.admit(&request).await.unwrap(), Admission::Admitted);

        server.kill();
        let request = SessionRequest::new("alice", "s2", &limits);
        let error = tokio::time::timeout(PROMPTLY, store.admit(&request))
            .await
            .expect("no hang")
            .unwrap_err();
        assert_eq!(error.code(), "budget_store_unavailable");
        let reservation = Reservation::new("alice", "r1", &limits, tokens(10));
        tokio::time::timeout(PROMPTLY, store.reserve(&reservation))
            .await
            .expect("no hang")
            .unwrap_err();
        // A live session's usage is kept for when Redis is back.
        let settlement = Settlement::new("alice", "resp_1", &limits, tokens(300)).releasing("r1");
        let settled = tokio::time::timeout(PROMPTLY, store.settle(&settlement))
            .await
            .expect("no hang")
            .unwrap();
        assert!(settled.is_deferred());
        assert!(!settled.applied());
        assert_eq!(store.deferred_settlements(), 1);

        server.restart().await;
        eventually("the deferred settlement is applied", async || {
            store.deferred_settlements() == 0
        })
        .await;
        let balance = store
            .balance("alice", &limits, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(balance[0].spent, 300);
        let request = SessionRequest::new("alice", "s2", &limits);
        assert_eq!(store.admit(&request).await.unwrap(), Admission::Admitted);
    }

    #[tokio::test]
    async fn a_redis_that_never_answered_fails_promptly() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = RedisBudgetStore::builder(format!("redis://127.0.0.1:{port}/"))
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let limits = Limits::new().max_live_sessions(1);
        for _ in 0..3 {
            let request = SessionRequest::new("alice", "s1", &limits);
            let error = tokio::time::timeout(PROMPTLY, store.admit(&request))
                .await
                .expect("no hang")
                .unwrap_err();
            assert_eq!(error.code(), "budget_store_unavailable");
        }
        let balance = tokio::time::timeout(PROMPTLY, store.balance("alice", &limits, at(0)))
            .await
            .expect("no hang");
        assert!(balance.is_err());
    }

    #[tokio::test]
    async fn fail_open_meters_locally_while_redis_is_down() {
        let mut server = RedisServer::start().await;
        let store = store(&server, OnUnavailable::FailOpen);
        let mut exhausted = store.exhausted();
        let limits = Limits::new()
            .with(Limit::tokens(Window::Total, 1_000))
            .max_live_sessions(1);
        server.kill();

        let admit = |session| {
            let store = store.clone();
            let limits = limits.clone();
            async move {
                let request = SessionRequest::new("alice", session, &limits);
                tokio::time::timeout(PROMPTLY, store.admit(&request))
                    .await
                    .expect("no hang")
                    .unwrap()
            }
        };
        assert_eq!(admit("s1").await, Admission::Admitted);
        assert!(matches!(admit("s2").await, Admission::Refused(_)));
        let reservation = Reservation::new("alice", "r1", &limits, tokens(800));
        assert_eq!(
            store.reserve(&reservation).await.unwrap(),
            Grant::Granted(tokens(800))
        );
        let reservation = Reservation::new("alice", "r2", &limits, tokens(800));
        assert!(matches!(
            store.reserve(&reservation).await.unwrap(),
            Grant::Refused(_)
        ));
        let settlement = Settlement::new("alice", "resp_1", &limits, tokens(1_200)).releasing("r1");
        let settled = store.settle(&settlement).await.unwrap();
        assert!(settled.is_deferred());
        assert!(settled.exhausted().is_some());
        let identity = tokio::time::timeout(PROMPTLY, exhausted.recv())
            .await
            .unwrap();
        assert_eq!(identity.as_deref(), Some("alice"));

        server.restart().await;
        eventually("the deferred settlement is applied", async || {
            store.deferred_settlements() == 0
        })
        .await;
        let balance = store
            .balance("alice", &limits, SystemTime::now())
            .await
            .unwrap();
        assert_eq!(balance[0].spent, 1_200);
    }

    #[tokio::test]
    async fn exhaustion_still_reaches_other_replicas_after_a_restart() {
        let mut server = RedisServer::start().await;
        let (a, b) = (
            store(&server, OnUnavailable::FailClosed),
            store(&server, OnUnavailable::FailClosed),
        );
        let mut on_b = b.exhausted();
        tokio::time::timeout(PROMPTLY, b.subscribed())
            .await
            .unwrap();
        server.kill();
        server.restart().await;
        tokio::time::timeout(3 * PROMPTLY, b.subscribed())
            .await
            .expect("subscribed again");
        // The subscription may be the one from before the restart until the
        // loss is noticed: announce until one arrives.
        let limits = Limits::new().with(Limit::tokens(Window::Total, 10));
        let mut attempt = 0;
        eventually("the announcement arrives", async || {
            attempt += 1;
            let id = format!("resp_{attempt}");
            let settlement = Settlement::new("alice", &id, &limits, tokens(20));
            let _ = a.settle(&settlement).await;
            tokio::time::timeout(Duration::from_millis(200), on_b.recv())
                .await
                .is_ok_and(|identity| identity.as_deref() == Some("alice"))
        })
        .await;
    }

    /// A store on `server` whose live sessions hold leases of `lease`.
    fn leased(server: &RedisServer, lease: Duration) -> RedisBudgetStore {
        RedisBudgetStore::builder(server.url())
            .timeout(Duration::from_secs(2))
            .session_lease(lease)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_dead_replica_frees_its_sessions_after_its_lease() {
        let server = RedisServer::start().await;
        let lease = Duration::from_secs(3);
        let replica = || leased(&server, lease);
        let (a, b) = (replica(), replica());
        let limits = Limits::new().max_live_sessions(1);
        let admit = |store: RedisBudgetStore, session: &'static str| {
            let limits = limits.clone();
            async move {
                let request = SessionRequest::new("alice", session, &limits);
                store.admit(&request).await.unwrap()
            }
        };
        assert_eq!(admit(a.clone(), "s1").await, Admission::Admitted);
        // A live replica renews its lease: the session still counts after several leases.
        tokio::time::sleep(lease + Duration::from_secs(1)).await;
        assert!(matches!(
            admit(b.clone(), "s2").await,
            Admission::Refused(_)
        ));
        drop(a);
        eventually("the dead replica's session stops counting", async || {
            admit(b.clone(), "s2").await == Admission::Admitted
        })
        .await;
    }

    /// Redis restarted empty (no persistence) forgets live sessions: the
    /// next renewal counts them again, so the limit still holds.
    #[tokio::test]
    async fn live_sessions_count_again_after_redis_restarts_empty() {
        let mut server = RedisServer::start().await;
        let lease = Duration::from_secs(3);
        let replica = || leased(&server, lease);
        let (a, b) = (replica(), replica());
        let limits = Limits::new().max_live_sessions(1);
        let admit = |store: RedisBudgetStore, session: &'static str| {
            let limits = limits.clone();
            async move {
                let request = SessionRequest::new("alice", session, &limits);
                store.admit(&request).await
            }
        };
        assert_eq!(admit(a.clone(), "s1").await.unwrap(), Admission::Admitted);
        server.kill();
        server.restart().await;
        // Renewals come every second (a third of the lease): after six,
        // s1 counts again (the first may still meet the broken connection).
        tokio::time::sleep(2 * lease).await;
        assert!(
            matches!(admit(b.clone(), "s2").await, Ok(Admission::Refused(_))),
            "s1 counts again"
        );
        drop(a);
    }

    #[tokio::test]
    async fn every_key_of_an_identity_carries_its_hash_tag() {
        let server = RedisServer::start().await;
        let store = store(&server, OnUnavailable::FailClosed);
        let limits = Limits::new()
            .with(Limit::tokens(Window::Day, 1_000))
            .with(Limit::money(Window::Total, Micros::new(1_000)))
            .max_live_sessions(3)
            .max_new_sessions_per_minute(3);
        let identity = "team:{7}";
        let request = SessionRequest::new(identity, "s1", &limits);
        store.admit(&request).await.unwrap();
        let reservation = Reservation::new(identity, "r1", &limits, tokens(10));
        store.reserve(&reservation).await.unwrap();
        let settlement = Settlement::new(identity, "resp_1", &limits, tokens(5));
        store.settle(&settlement).await.unwrap();

        let client = redis::Client::open(server.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(keys.len() >= 6, "{keys:?}");
        for key in &keys {
            assert!(key.starts_with("rtb:{team:%7B7%7D}:"), "{key}");
            let ttl: i64 = redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            // Only the total budget's window lives for ever.
            assert!(ttl > 0 || key.contains(":w:t:"), "{key} never expires");
        }
    }
}
