//! Command-line flags and environment of the gateway example.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tower_realtime::budget::Micros;

pub const USAGE: &str = "\
A realtime gateway with a built-in demo provider and a browser console.

Usage: cargo run --example gateway -- [OPTIONS]

Options:
  --listen ADDR               address to listen on (default 127.0.0.1:8080; port 0 picks a free one)
  --sessions-per-minute N     new sessions each client IP may open per minute (default 30)
  --max-sessions N            live sessions at most (default 100)
  --keepalive SECS            ping a silent peer after SECS seconds; two unanswered pings end the
                              session (default 3; 0 turns keepalive off)
  --prewarm N                 connected upstream sockets (TCP + TLS) kept ready per provider host,
                              so a session pays only the WebSocket upgrade (default 2; 0: off)
  --deny-event TYPE           refuse client events of this type (exact name, repeatable): they are
                              not forwarded, the client gets an `error` event (event_not_allowed)
  --no-demo                   do not start the demo providers (demo, gemini-demo)
  -h, --help                  print this help

Budgets and limits per identity (the gateway key's name; `anonymous` without keys), counted
in this process or, with --redis, shared by every replica using the same Redis:
  --token-budget N            tokens (input and output) each identity may use per UTC day
  --usd-budget X              US dollars each identity may spend per UTC day (e.g. 5 or 0.25);
                              needs --prices
  --prices FILE               the price of each model: a JSON file, or TOML if FILE ends in .toml
                              (dollars per million tokens per token class; see the README)
  --max-sessions-per-key N    live sessions each identity may hold at once
  --sessions-per-minute-per-key N
                              new sessions each identity may open per UTC minute
  --redis URL                 keep the budgets and limits above in Redis, shared by every replica
                              (redis://[user:password@]host:port/db); default: in this process.
                              Shares deployment health too, with or without budgets: a deployment
                              that failed behind one replica is skipped by all until it cooled
                              down (while Redis is unreachable, each replica keeps its own);
                              and WebRTC calls: client secrets, calls and their sidebands
  --redis-fail-open           while Redis is unreachable, admit sessions and count in this process
                              (default: fail closed, new sessions get 503 budget_store_unavailable;
                              live sessions carry on and are settled when Redis is back)

An identity over a budget or limit is refused with 429 (insufficient_quota,
  concurrency_limit_exceeded or rate_limit_exceeded); when a response spends its budget, every
  live session of the identity, on every replica, gets an `error` event and is closed with 1008.

A client's session.update or response.create that names another model is rewritten to the
model the session was routed to (model pinning; always on).

WebRTC calls (OpenAI's POST /v1/realtime/client_secrets and POST /v1/realtime/calls) are on for
OpenAI, Azure OpenAI and the demo: a gateway key (when one is set) mints a client secret, the
secret posts the SDP offer, and the gateway meters each call from a sideband of its own.

Environment:
  GATEWAY_API_KEY             a key clients may present (Authorization: Bearer KEY, or the
                              browser subprotocol openai-insecure-api-key.KEY), as identity `default`
  GATEWAY_API_KEYS            several keys, each naming its identity: alice:KEY1,bob:KEY2
                              (with GATEWAY_API_KEY too, any of them opens a session; the identity
                              is on every usage log line); neither set: no auth
  OPENAI_API_KEY, AZURE_API_KEY, XAI_API_KEY, BAILIAN_API_KEY, ZAI_API_KEY, REALTIME_PROVIDERS, ...
                              real providers next to the demo (see the README, Providers)
  GEMINI_API_KEY, GEMINI_BASE_URL, GEMINI_API_VERSION
                              Gemini Live (Gemini API), translated to OpenAI's realtime events
  VERTEX_PROJECT, VERTEX_LOCATION, GOOGLE_APPLICATION_CREDENTIALS, VERTEX_API_KEY, VERTEX_BASE_URL,
  VERTEX_API_VERSION          Gemini Live on Vertex AI (a service-account key file or an
                              express-mode key), translated likewise; input audio resampled to
                              16 kHz
  GEMINI_RECONFIGURE_BY_RESUMING, VERTEX_RECONFIGURE_BY_RESUMING
                              true (default): a session.update Gemini cannot apply in place
                              (instructions, voice, tools, turn detection after setup) is applied
                              by resuming the session; false: refused (unsupported_session_update)
  OPENAI_MODELS, ..., GEMINI_MODELS, VERTEX_MODELS (PREFIX_MODELS)
                              the models clients may ask each provider for, comma-separated
                              (any other is refused with 400 model_not_allowed)
  REALTIME_MODEL_ALIASES      public model names, comma-separated: voice=openai/gpt-realtime; an
                              alias may name several deployments separated by |, tried in that
                              order (failover): voice=azure-east/gpt-realtime|openai/gpt-realtime
  SSL_CERT_FILE, SSL_CERT_DIR  CA certificates (PEM) to trust for wss:// upstreams instead of the
                              system's, e.g. a private CA of a self-hosted upstream; the bundled
                              Mozilla roots are trusted too
  REDIS_URL                   as --redis (the flag wins)
  RUST_LOG                    log filter (default: info)
";

/// What the gateway was asked to do. Not `Debug`: it holds the gateway
/// keys and the Redis URL (which may carry a password).
#[derive(Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// `(identity, key)`: the keys clients may present. Empty: authentication is off.
    pub api_keys: Vec<(String, String)>,
    pub sessions_per_minute: u32,
    pub max_sessions: usize,
    /// `None`: keepalive is off.
    pub keepalive: Option<Duration>,
    pub demo: bool,
    /// Pre-warmed upstream sockets per provider host.
    pub prewarm: usize,
    /// Client event types refused by the event policy.
    pub deny_events: Vec<String>,
    /// Budgets and limits per identity.
    pub budget: BudgetOptions,
}

/// Budgets and limits per identity, and where they are counted. Not
/// `Debug`: the Redis URL may carry a password.
#[derive(Clone, Default)]
pub struct BudgetOptions {
    /// Tokens per identity per UTC day.
    pub token_budget: Option<u64>,
    /// Money per identity per UTC day.
    pub usd_budget: Option<Micros>,
    /// The price file.
    pub prices: Option<PathBuf>,
    /// Live sessions per identity.
    pub max_sessions_per_key: Option<u32>,
    /// New sessions per identity per UTC minute.
    pub sessions_per_minute_per_key: Option<u32>,
    /// The Redis URL; `None`: budgets in memory, deployment health per process.
    pub redis: Option<String>,
    /// Admit and count locally while Redis is unreachable.
    pub redis_fail_open: bool,
}

impl BudgetOptions {
    /// Whether any budget or limit is set.
    pub fn limits_anything(&self) -> bool {
        self.token_budget.is_some()
            || self.usd_budget.is_some()
            || self.max_sessions_per_key.is_some()
            || self.sessions_per_minute_per_key.is_some()
    }
}

/// What `main` does with the command line.
pub enum Command {
    Run(Box<Options>),
    Help,
}

impl Command {
    /// Parses the arguments (without the program name), `GATEWAY_API_KEY`,
    /// `GATEWAY_API_KEYS` and `REDIS_URL`.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        api_key: Option<String>,
        api_keys: Option<String>,
        redis_url: Option<String>,
    ) -> Result<Self, String> {
        let mut options = Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_keys: gateway_keys(api_key, api_keys)?,
            sessions_per_minute: 30,
            max_sessions: 100,
            keepalive: Some(tower_realtime::RealtimeLayer::DEFAULT_KEEPALIVE),
            demo: true,
            prewarm: 2,
            deny_events: Vec::new(),
            budget: BudgetOptions::default(),
        };
        let mut redis_flag = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--listen" => options.listen = parse(&value("--listen")?, "--listen")?,
                "--sessions-per-minute" => {
                    options.sessions_per_minute =
                        parse(&value("--sessions-per-minute")?, "--sessions-per-minute")?;
                }
                "--max-sessions" => {
                    options.max_sessions = parse(&value("--max-sessions")?, "--max-sessions")?;
                }
                "--keepalive" => {
                    let seconds: f64 = parse(&value("--keepalive")?, "--keepalive")?;
                    let interval = Duration::try_from_secs_f64(seconds)
                        .map_err(|_| format!("--keepalive: `{seconds}` is not valid"))?;
                    options.keepalive = (!interval.is_zero()).then_some(interval);
                }
                "--prewarm" => options.prewarm = parse(&value("--prewarm")?, "--prewarm")?,
                "--deny-event" => {
                    let event_type = value("--deny-event")?;
                    if event_type.is_empty() {
                        return Err("--deny-event needs an event type".into());
                    }
                    options.deny_events.push(event_type);
                }
                "--no-demo" => options.demo = false,
                "--token-budget" => {
                    options.budget.token_budget =
                        Some(positive(&value("--token-budget")?, "--token-budget")?);
                }
                "--usd-budget" => {
                    let dollars: Micros = parse(&value("--usd-budget")?, "--usd-budget")?;
                    if dollars == Micros::ZERO {
                        return Err("--usd-budget must be more than 0".into());
                    }
                    options.budget.usd_budget = Some(dollars);
                }
                "--prices" => options.budget.prices = Some(value("--prices")?.into()),
                "--max-sessions-per-key" => {
                    options.budget.max_sessions_per_key = Some(positive(
                        &value("--max-sessions-per-key")?,
                        "--max-sessions-per-key",
                    )?);
                }
                "--sessions-per-minute-per-key" => {
                    options.budget.sessions_per_minute_per_key = Some(positive(
                        &value("--sessions-per-minute-per-key")?,
                        "--sessions-per-minute-per-key",
                    )?);
                }
                "--redis" => {
                    let url = value("--redis")?;
                    if url.is_empty() {
                        return Err("--redis needs a URL (redis://host:port/)".into());
                    }
                    redis_flag = Some(url);
                }
                "--redis-fail-open" => options.budget.redis_fail_open = true,
                "-h" | "--help" => return Ok(Command::Help),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if options.sessions_per_minute == 0 {
            return Err("--sessions-per-minute must be at least 1".into());
        }
        check_budget(&mut options.budget, redis_flag, redis_url)?;
        Ok(Command::Run(Box::new(options)))
    }
}

/// Checks that the budget flags go together, and picks the Redis URL:
/// `--redis`, else `REDIS_URL`.
fn check_budget(
    budget: &mut BudgetOptions,
    flag: Option<String>,
    env: Option<String>,
) -> Result<(), String> {
    if budget.usd_budget.is_some() && budget.prices.is_none() {
        return Err("--usd-budget needs --prices FILE: the price of each model".into());
    }
    budget.redis = flag.or_else(|| env.filter(|url| !url.is_empty()));
    if budget.redis_fail_open && budget.redis.is_none() {
        return Err("--redis-fail-open needs --redis URL (or REDIS_URL)".into());
    }
    Ok(())
}

/// The `(identity, key)` pairs of `GATEWAY_API_KEY` (identity `default`)
/// and `GATEWAY_API_KEYS` (`alice:KEY1,bob:KEY2`). Empty values count as unset.
fn gateway_keys(
    api_key: Option<String>,
    api_keys: Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut keys = Vec::new();
    if let Some(key) = api_key.filter(|key| !key.is_empty()) {
        check_key("GATEWAY_API_KEY", &key)?;
        keys.push((crate::auth::DEFAULT_IDENTITY.to_owned(), key));
    }
    let entries = api_keys.iter().flat_map(|list| list.split(','));
    for (number, entry) in entries.map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        // The entry itself is not shown: without its `:` it may be a bare key.
        let Some((name, key)) = entry.split_once(':') else {
            return Err(format!(
                "GATEWAY_API_KEYS: entry {} is not IDENTITY:KEY (e.g. alice:KEY1,bob:KEY2)",
                number + 1
            ));
        };
        let (name, key) = (name.trim(), key.trim());
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!(
                "GATEWAY_API_KEYS: the identity `{name}` must be letters, digits and !#$%&'*+-.^_`|~"
            ));
        }
        check_key(&format!("GATEWAY_API_KEYS (identity `{name}`)"), key)?;
        if keys.iter().any(|(_, known)| known == key) {
            return Err(format!(
                "GATEWAY_API_KEYS: the key of identity `{name}` is given twice"
            ));
        }
        keys.push((name.to_owned(), key.to_owned()));
    }
    Ok(keys)
}

/// Keys travel in headers and, from browsers, inside a subprotocol name.
fn check_key(variable: &str, key: &str) -> Result<(), String> {
    if key.is_empty() || !key.bytes().all(is_token_byte) {
        return Err(format!(
            "{variable} may only contain letters, digits and !#$%&'*+-.^_`|~ \
             (browsers send it inside a subprotocol name)"
        ));
    }
    Ok(())
}

fn parse<T: std::str::FromStr>(value: &str, name: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{name}: `{value}` is not valid"))
}

fn positive<T: std::str::FromStr + Default + PartialEq>(
    value: &str,
    name: &str,
) -> Result<T, String> {
    let number: T = parse(value, name)?;
    if number == T::default() {
        return Err(format!("{name} must be at least 1"));
    }
    Ok(number)
}

/// The characters of an HTTP token (RFC 9110), which subprotocol names are.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}
