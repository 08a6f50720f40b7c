//! Budgets and limits per identity (`--token-budget`, `--usd-budget`,
//! `--max-sessions-per-key`, ...), counted in this process or shared by
//! every replica through Redis (`--redis`).

use std::path::Path;
use std::time::Duration;

use tower_realtime::budget::{Budget, Limit, Limits, PriceTable, Window};
use tower_realtime::store::{MemoryBudgetStore, OnUnavailable, RedisBudgetStore};

use crate::options::BudgetOptions;

/// How long startup waits for Redis to answer before it goes on without.
const REDIS_PATIENCE: Duration = Duration::from_secs(5);

/// How long one Redis call may take.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// The budget the layer enforces, and a line for the banner.
pub struct Budgets {
    pub budget: Budget,
    pub banner: String,
    /// How long the sessions' last store calls may take after they ended
    /// (a session gives its place under the limits back in the
    /// background): shutdown waits this long once sessions are drained, so
    /// that other replicas admit their reconnects at once. `None` when the
    /// store dies with the process anyway.
    pub release_wait: Option<Duration>,
}

/// The budget `options` ask for; `None` when they set neither a limit nor
/// prices. Fails on a price file that cannot be read or a bad Redis URL.
pub async fn configure(options: &BudgetOptions) -> Result<Option<Budgets>, String> {
    if !options.limits_anything() && options.prices.is_none() {
        return Ok(None);
    }
    let limits = limits(options);
    let prices = match &options.prices {
        Some(path) => Some(
            read_prices(path).map_err(|error| format!("--prices {}: {error}", path.display()))?,
        ),
        None => None,
    };
    let (budget, place, release_wait) = match &options.redis {
        Some(url) => {
            let policy = if options.redis_fail_open {
                OnUnavailable::FailOpen
            } else {
                OnUnavailable::FailClosed
            };
            let store = RedisBudgetStore::builder(url.as_str())
                .timeout(REDIS_TIMEOUT)
                .on_unavailable(policy)
                .build()
                .map_err(|error| format!("--redis: {error}"))?;
            let at = redis_host(url);
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
            (
                Budget::new(store, limits.clone()),
                format!("shared through Redis at {at} ({policy})"),
                Some(REDIS_TIMEOUT),
            )
        }
        None => (
            Budget::new(MemoryBudgetStore::new(), limits.clone()),
            "in this process".to_owned(),
            None,
        ),
    };
    let budget = match prices {
        Some(prices) => budget.prices(prices),
        None => budget,
    };
    Ok(Some(Budgets {
        budget,
        banner: format!("{}; {place}", describe(options)),
        release_wait,
    }))
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

/// Reads a price file: TOML when its name ends in `.toml`, JSON otherwise.
/// Both have the same layout (see `PriceTable`): TOML is read into JSON
/// values and handed to the JSON reader.
fn read_prices(path: &Path) -> Result<PriceTable, String> {
    let is_toml = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("toml"));
    if !is_toml {
        return PriceTable::from_file(path).map_err(|error| error.to_string());
    }
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read it: {error}"))?;
    let value: serde_json::Value =
        toml::from_str(&text).map_err(|error| format!("price table: {error}"))?;
    PriceTable::from_json(&value.to_string()).map_err(|error| error.to_string())
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
