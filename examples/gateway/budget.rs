//! Budgets and limits per identity (`--token-budget`, `--usd-budget`,
//! `--max-sessions-per-key`, ...), counted in this process or shared by
//! every replica through Redis (`--redis`), which shares deployment health
//! and WebRTC calls (client secrets, calls, sideband leases) too.

use std::path::Path;
use std::time::Duration;

use tower_realtime::budget::{Budget, Limit, Limits, PriceTable, Window};
use tower_realtime::store::{
    MemoryBudgetStore, OnUnavailable, RedisBudgetStore, RedisDeploymentHealth,
};
use tower_realtime::webrtc::RedisCallStore;

use crate::options::BudgetOptions;

/// How long startup waits for Redis to answer before it goes on without.
const REDIS_PATIENCE: Duration = Duration::from_secs(5);

/// How long one Redis call may take.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// What the gateway keeps per identity, and what it shares with other
/// replicas.
pub struct Shared {
    /// The budget the layer enforces, if any.
    pub budget: Option<Budget>,
    /// Deployment health shared through Redis (`--redis`): a deployment
    /// that failed on one replica is skipped by all of them.
    pub health: Option<RedisDeploymentHealth>,
    /// Client secrets and WebRTC calls kept in Redis (`--redis`): any
    /// replica serves a call's requests, and one takes over the sideband of
    /// a call whose replica stopped.
    pub calls: Option<RedisCallStore>,
    /// Banner lines: `(label, text)`.
    pub banner: Vec<(&'static str, String)>,
}

/// What `options` ask for. Fails on a price file that cannot be read or a
/// bad Redis URL.
pub async fn configure(options: &BudgetOptions) -> Result<Shared, String> {
    let budgeted = options.limits_anything() || options.prices.is_some();
    let prices = match &options.prices {
        Some(path) => Some(
            read_prices(path).map_err(|error| format!("--prices {}: {error}", path.display()))?,
        ),
        None => None,
    };
    let mut banner = Vec::new();
    let calls = match &options.redis {
        Some(url) => Some(
            RedisCallStore::builder(url.as_str())
                .timeout(REDIS_TIMEOUT)
                .build()
                .map_err(|error| format!("--redis: {error}"))?,
        ),
        None => None,
    };
    let (budget, health) = match &options.redis {
        Some(url) => {
            let store = redis_store(url, options.redis_fail_open)?;
            let at = redis_host(url);
            banner.push((
                "shared",
                format!("deployment health and WebRTC calls through Redis at {at}"),
            ));
            let health = store.deployment_health();
            if !budgeted {
                return Ok(Shared {
                    budget: None,
                    health: Some(health),
                    calls,
                    banner,
                });
            }
            // Exhaustion announced by other replicas reaches this one only
            // once it is subscribed.
            if tokio::time::timeout(REDIS_PATIENCE, store.subscribed())
                .await
                .is_err()
            {
                tracing::warn!(
                    redis = %at,
                    "Redis does not answer yet; until it does, {}",
                    if options.redis_fail_open {
                        "sessions are admitted and counted in this process only"
                    } else {
                        "new sessions are refused with 503 budget_store_unavailable"
                    }
                );
            }
            let policy = if options.redis_fail_open {
                "fail open"
            } else {
                "fail closed"
            };
            banner.insert(
                0,
                (
                    "budgets",
                    format!(
                        "{}; shared through Redis at {at} ({policy})",
                        describe(options)
                    ),
                ),
            );
            (Budget::new(store, limits(options)), Some(health))
        }
        None if budgeted => {
            banner.push(("budgets", format!("{}; in this process", describe(options))));
            (Budget::new(MemoryBudgetStore::new(), limits(options)), None)
        }
        None => {
            return Ok(Shared {
                budget: None,
                health: None,
                calls,
                banner,
            });
        }
    };
    let budget = match prices {
        Some(prices) => budget.prices(prices),
        None => budget,
    };
    Ok(Shared {
        budget: Some(budget),
        health,
        calls,
        banner,
    })
}

/// The store on the Redis at `url`.
fn redis_store(url: &str, fail_open: bool) -> Result<RedisBudgetStore, String> {
    let policy = if fail_open {
        OnUnavailable::FailOpen
    } else {
        OnUnavailable::FailClosed
    };
    RedisBudgetStore::builder(url)
        .timeout(REDIS_TIMEOUT)
        .on_unavailable(policy)
        .build()
        .map_err(|error| format!("--redis: {error}"))
}

/// The limits of every identity.
fn limits(options: &BudgetOptions) -> Limits {
    let mut limits = Limits::new();
    if let Some(tokens) = options.token_budget {
        limits = limits.with(Limit::tokens(Window::Day, tokens));
    }
    if let Some(dollars) = options.usd_budget {
        limits = limits.with(Limit::money(Window::Day, dollars));
    }
    if let Some(live) = options.max_sessions_per_key {
        limits = limits.max_live_sessions(live);
    }
    if let Some(per_minute) = options.sessions_per_minute_per_key {
        limits = limits.max_new_sessions_per_minute(per_minute);
    }
    limits
}

/// `per identity: 1000 tokens per UTC day, $5 per UTC day, 2 live sessions`.
fn describe(options: &BudgetOptions) -> String {
    let mut parts = Vec::new();
    if let Some(tokens) = options.token_budget {
        parts.push(format!("{tokens} tokens per UTC day"));
    }
    if let Some(dollars) = options.usd_budget {
        parts.push(format!("${dollars} per UTC day"));
    }
    if let Some(live) = options.max_sessions_per_key {
        let plural = if live == 1 { "" } else { "s" };
        parts.push(format!("{live} live session{plural}"));
    }
    if let Some(per_minute) = options.sessions_per_minute_per_key {
        parts.push(format!("{per_minute} new sessions per minute"));
    }
    if parts.is_empty() {
        return "no limits, spend is priced".to_owned();
    }
    format!("per identity: {}", parts.join(", "))
}

/// Reads a price file: TOML when its name ends in `.toml`, JSON otherwise
/// (`PriceTable::from_file`).
fn read_prices(path: &Path) -> Result<PriceTable, String> {
    PriceTable::from_file(path).map_err(|error| error.to_string())
}

/// `host:port` of a Redis URL: its user and password are never shown.
fn redis_host(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(url) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => "a Unix socket".to_owned(),
        },
        Err(_) => "an unparsable URL".to_owned(),
    }
}
