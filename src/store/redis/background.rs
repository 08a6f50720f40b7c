//! What a Redis store does on its own: listens for exhausted identities,
//! renews the leases of its live sessions, and applies settlements that
//! were deferred while Redis was unreachable.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;

use super::{Shared, keys, lock};
use crate::budget::{Limits, Spend, unix_ms};
use crate::store::Settlement;

/// How many settlements wait for Redis at most; beyond, the oldest is dropped.
const MAX_DEFERRED: usize = 100_000;

/// The shortest and longest pause between two attempts to reach Redis.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// How often the subscription connection is checked while it is quiet.
const PING_EVERY: Duration = Duration::from_secs(5);

/// A settlement waiting for Redis.
#[derive(Debug, Clone)]
pub(super) struct Deferred {
    identity: String,
    id: String,
    reservation: Option<String>,
    limits: Limits,
    actual: Spend,
    now: SystemTime,
}

impl Deferred {
    fn settlement(&self) -> Settlement<'_> {
        let mut settlement =
            Settlement::new(&self.identity, &self.id, &self.limits, self.actual).at(self.now);
        settlement.reservation = self.reservation.as_deref();
        settlement
    }
}

/// Queues `settlement` to be applied when Redis is back.
pub(super) fn defer(shared: &Shared, settlement: &Settlement<'_>) {
    let mut queue = lock(&shared.deferred);
    if queue.len() >= MAX_DEFERRED {
        queue.pop_front();
        tracing::error!("budget store unreachable too long: oldest deferred settlement dropped");
    }
    queue.push_back(Deferred {
        identity: settlement.identity.to_owned(),
        id: settlement.id.to_owned(),
        reservation: settlement.reservation.map(str::to_owned),
        limits: settlement.limits.clone(),
        actual: settlement.actual,
        now: settlement.now,
    });
    drop(queue);
    shared.deferred_added.notify_one();
}

/// Applies deferred settlements in order, each once (settlements are
/// idempotent, so one applied before a lost answer is not charged twice).
pub(super) async fn apply_deferred(shared: Arc<Shared>) {
    let mut pause = RETRY_MIN;
    loop {
        let next = lock(&shared.deferred).front().cloned();
        let Some(deferred) = next else {
            shared.deferred_added.notified().await;
            continue;
        };
        match shared.settle_remote(&deferred.settlement()).await {
            Ok(_) => {
                lock(&shared.deferred).pop_front();
                pause = RETRY_MIN;
            }
            Err(error) => {
                tracing::debug!(%error, "deferred settlement still waiting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Renews the leases of this replica's live sessions, three times per lease.
/// A session Redis lost (a restart, a failover to a replica that had not
/// seen it) is added back, so that it counts again; one that ended while
/// the renewal was on its way is removed again after it.
pub(super) async fn renew_leases(shared: Arc<Shared>) {
    let every = shared.session_lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let live: Vec<(String, Vec<String>)> = lock(&shared.live)
            .iter()
            .map(|(identity, sessions)| (identity.clone(), sessions.iter().cloned().collect()))
            .collect();
        if live.is_empty() {
            continue;
        }
        let lease = u64::try_from(shared.session_lease.as_millis()).unwrap_or(u64::MAX);
        let until = unix_ms(SystemTime::now()).saturating_add(lease);
        let mut pipe = redis::pipe();
        for (identity, sessions) in &live {
            let key = shared.keys(identity).live();
            let renew = pipe.cmd("ZADD").arg(&key).arg("GT");
            for session in sessions {
                renew.arg(until).arg(session);
            }
            pipe.ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(lease.saturating_mul(2))
                .ignore();
        }
        let mut connection = shared.connection.clone();
        if let Err(error) = shared
            .call("renew leases", pipe.exec_async(&mut connection))
            .await
        {
            tracing::debug!(%error, "session leases not renewed");
        }
        let ended = {
            let now_live = lock(&shared.live);
            let mut ended = redis::pipe();
            let mut any = false;
            for (identity, sessions) in &live {
                for session in sessions {
                    if !now_live.get(identity).is_some_and(|s| s.contains(session)) {
                        ended
                            .cmd("ZREM")
                            .arg(shared.keys(identity).live())
                            .arg(session)
                            .ignore();
                        any = true;
                    }
                }
            }
            any.then_some(ended)
        };
        if let Some(ended) = ended
            && let Err(error) = shared
                .call("release ended", ended.exec_async(&mut connection))
                .await
        {
            tracing::debug!(%error, "ended sessions not released");
        }
    }
}

/// Hands identities published on the exhausted channels to subscribers,
/// reconnecting whenever the subscription is lost.
pub(super) async fn listen(shared: Arc<Shared>) {
    let pattern = keys::exhausted_pattern(&shared.prefix);
    let mut pause = RETRY_MIN;
    loop {
        let subscribed = tokio::time::timeout(shared.timeout, async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscribed {
            Ok(Ok(pubsub)) => {
                pause = RETRY_MIN;
                shared.subscribed.send_replace(true);
                forward(&shared, pubsub).await;
                shared.subscribed.send_replace(false);
                tracing::warn!("budget store subscription lost; reconnecting");
            }
            Ok(Err(error)) => tracing::debug!(%error, "budget store subscription failed"),
            Err(_) => tracing::debug!("budget store subscription timed out"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// Forwards messages until the connection fails or stops answering pings.
async fn forward(shared: &Shared, pubsub: redis::aio::PubSub) {
    let (mut sink, mut messages) = pubsub.split();
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return };
                match message.get_payload::<String>() {
                    Ok(identity) => {
                        let _ = shared.exhausted.send(Arc::from(identity));
                    }
                    Err(error) => tracing::debug!(%error, "unreadable exhaustion message"),
                }
            }
            () = tokio::time::sleep(PING_EVERY) => {
                let ping = tokio::time::timeout(shared.timeout, sink.ping::<redis::Value>()).await;
                if !matches!(ping, Ok(Ok(_))) {
                    return;
                }
            }
        }
    }
}
