//! Providers configured from environment variables.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::base_url::refuse_clear_text_key;
use super::registry::is_valid_name;
use super::{
    Azure, Bailian, Compatible, ConfigError, Gemini, Keys, OpenAi, Provider, Providers,
    ServiceAccount, Vertex, VertexCredential, Xai, Zai, websocket_base_url,
};
use crate::deployment::Deployment;
use crate::secret::Secret;

/// The names of extra OpenAI-compatible providers, comma-separated.
const PROVIDERS: &str = "REALTIME_PROVIDERS";
/// The provider for models without a `provider/` prefix.
const DEFAULT_PROVIDER: &str = "REALTIME_DEFAULT_PROVIDER";
/// `alias=provider/model` pairs, comma-separated; an alias may name several
/// deployments separated by `|`, tried in that order.
const MODEL_ALIASES: &str = "REALTIME_MODEL_ALIASES";

impl Providers {
    /// Every provider configured in the process environment; see
    /// [`Providers::from_vars`] for the variables.
    ///
    /// Call it once at start-up: a configuration that cannot work is an
    /// error here, not a failed session later.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_realtime::{Providers, RealtimeLayer};
    ///
    /// let providers = Providers::from_env().unwrap_or_else(|error| {
    ///     eprintln!("configuration error: {error}");
    ///     std::process::exit(2)
    /// });
    /// let layer = RealtimeLayer::new(providers);
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars_os().map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        }))
    }

    /// Every provider configured in `vars`, `(name, value)` pairs read like
    /// environment variables. An empty value counts as unset.
    ///
    /// A built-in provider is enabled when its key is set:
    ///
    /// | provider (`?model=` prefix) | key | other variables |
    /// |---|---|---|
    /// | `openai` | `OPENAI_API_KEY` | `OPENAI_BASE_URL` |
    /// | `azure` | `AZURE_API_KEY` | `AZURE_BASE_URL` (required), `AZURE_API_VERSION` |
    /// | `xai` | `XAI_API_KEY` | `XAI_BASE_URL` |
    /// | `bailian`, `dashscope` | `BAILIAN_API_KEY` or `DASHSCOPE_API_KEY` | `BAILIAN_BASE_URL` |
    /// | `zai`, `zhipu` | `ZAI_API_KEY` | `ZAI_BASE_URL` |
    /// | `gemini` | `GEMINI_API_KEY` | `GEMINI_BASE_URL`, `GEMINI_API_VERSION` (default `v1`), `GEMINI_RECONFIGURE_BY_RESUMING` (default `true`) |
    /// | `vertex` | `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key file) or `VERTEX_API_KEY` (express mode) | `VERTEX_PROJECT` (required with a service account), `VERTEX_LOCATION` (default `us-central1`), `VERTEX_BASE_URL`, `VERTEX_API_VERSION` (default `v1`), `VERTEX_RECONFIGURE_BY_RESUMING` (default `true`) |
    ///
    /// `vertex` is enabled when `VERTEX_PROJECT` or `VERTEX_API_KEY` is set.
    /// `PREFIX_RECONFIGURE_BY_RESUMING=false` refuses a `session.update`
    /// that Gemini cannot apply in place (`unsupported_session_update`)
    /// instead of applying it by resuming the session
    /// ([`Gemini::reconfigure_by_resuming`]).
    ///
    /// - More keys for one provider go in `KEY_2`, `KEY_3`, … (e.g.
    ///   `OPENAI_API_KEY_2`); sessions take them in turn (see [`Keys`]).
    /// - `PREFIX_MODELS=gpt-realtime,gpt-realtime-mini` limits the models
    ///   clients may ask the provider for ([`Providers::allow_models`]), for
    ///   every prefix above (`OPENAI_MODELS`, `BAILIAN_MODELS` or
    ///   `DASHSCOPE_MODELS`, `GEMINI_MODELS`, `VERTEX_MODELS`, …) and every
    ///   extra provider (`NAME_MODELS`).
    /// - A key is refused on a plain `http`/`ws` base URL to a host other
    ///   than loopback unless `PREFIX_ALLOW_INSECURE_TRANSPORT=true` (not
    ///   for Azure).
    /// - `REALTIME_PROVIDERS=vllm,local` adds OpenAI-compatible providers
    ///   ([`Compatible`]), each with `NAME_BASE_URL` (required),
    ///   `NAME_API_KEY` (and `NAME_API_KEY_2`, …) and `NAME_AUTH` (`bearer`,
    ///   `api-key` or `none`; `bearer` when a key is set, else `none`). `NAME`
    ///   is the provider name in upper case with `-` as `_`.
    /// - `REALTIME_DEFAULT_PROVIDER` names the provider of unprefixed models.
    /// - `REALTIME_MODEL_ALIASES=voice=openai/gpt-realtime,fast=xai/grok-voice`
    ///   maps public model names to `provider/model`; several deployments
    ///   separated by `|` (`voice=azure-east/gpt-realtime|openai/gpt-realtime`)
    ///   are tried in that order, one tier each (see [`crate::deployment`]).
    ///
    /// Base URLs with another scheme than `https`, `http`, `wss` or `ws`,
    /// keys that cannot be sent in a header, unknown auth styles, and default
    /// providers or aliases naming a provider that is not configured are
    /// errors. Error messages name variables, never their secret values.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_realtime::Providers;
    ///
    /// let providers = Providers::from_vars([
    ///     ("OPENAI_API_KEY", "sk-1"),
    ///     ("OPENAI_API_KEY_2", "sk-2"),
    ///     ("DASHSCOPE_API_KEY", "sk-ds"),
    ///     ("REALTIME_PROVIDERS", "vllm"),
    ///     ("VLLM_BASE_URL", "http://127.0.0.1:8000/v1"),
    ///     ("REALTIME_DEFAULT_PROVIDER", "openai"),
    ///     ("REALTIME_MODEL_ALIASES", "local=vllm/qwen3-omni"),
    /// ])
    /// .unwrap();
    /// assert_eq!(
    ///     providers.names().collect::<Vec<_>>(),
    ///     ["bailian", "dashscope", "openai", "vllm"]
    /// );
    /// assert_eq!(providers.default_name(), Some("openai"));
    ///
    /// let error = Providers::from_vars([("XAI_API_KEY", "k"), ("XAI_BASE_URL", "ftp://x.ai")]).unwrap_err();
    /// assert!(error.to_string().starts_with("XAI_BASE_URL: "));
    /// ```
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let vars = Vars(
            vars.into_iter()
                .map(|(name, value)| (name.as_ref().to_owned(), value.as_ref().to_owned()))
                .collect(),
        );
        let mut providers = Providers::new();
        for built_in in &BUILT_IN {
            providers = built_in.register(&vars, providers)?;
        }
        providers = register_vertex(&vars, providers)?;
        providers = register_compatible(&vars, providers)?;
        if let Some(default) = vars.get(DEFAULT_PROVIDER) {
            if providers.get(default).is_none() {
                return Err(not_configured(DEFAULT_PROVIDER, default, &providers));
            }
            providers = providers.default_provider(default);
        }
        register_aliases(&vars, providers)
    }
}

/// The variables, by name.
struct Vars(HashMap<String, String>);

impl Vars {
    /// The trimmed value of `name`, unless unset or empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// The comma-separated entries of `name`, trimmed, without empty ones.
    fn list(&self, name: &str) -> impl Iterator<Item = &str> {
        self.get(name)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
    }

    /// The models of `PREFIX_MODELS`, empty when unset.
    fn models(&self, prefix: &str) -> Vec<&str> {
        self.list(&format!("{prefix}_MODELS")).collect()
    }

    /// Whether `PREFIX_ALLOW_INSECURE_TRANSPORT` is `true` (or `1`, `yes`).
    fn allows_insecure_transport(&self, prefix: &str) -> Result<bool, ConfigError> {
        let name = format!("{prefix}_ALLOW_INSECURE_TRANSPORT");
        Ok(self.flag(&name)?.unwrap_or(false))
    }

    /// The switch `name`: `true` (or `1`, `yes`), `false` (or `0`, `no`),
    /// `None` when unset.
    fn flag(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(value)
                if ["true", "1", "yes"]
                    .iter()
                    .any(|v| value.eq_ignore_ascii_case(v)) =>
            {
                Ok(Some(true))
            }
            Some(value)
                if ["false", "0", "no"]
                    .iter()
                    .any(|v| value.eq_ignore_ascii_case(v)) =>
            {
                Ok(Some(false))
            }
            Some(_) => Err(ConfigError::new(format!("{name} must be true or false"))),
        }
    }

    /// `PREFIX_API_KEY`, then `PREFIX_API_KEY_2`, `PREFIX_API_KEY_3`, … in
    /// numeric order; `None` when none is set.
    fn keys(&self, prefix: &str) -> Result<Option<Keys>, ConfigError> {
        let first = format!("{prefix}_API_KEY");
        let numbered = format!("{first}_");
        let mut found: Vec<(u64, &str)> = self
            .0
            .keys()
            .filter_map(|name| {
                let turn = match name.strip_prefix(&numbered) {
                    Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                        digits.parse().ok()?
                    }
                    _ if *name == first => 0,
                    _ => return None,
                };
                self.get(name).is_some().then_some((turn, name.as_str()))
            })
            .collect();
        found.sort_unstable();
        match found.first() {
            None => return Ok(None),
            Some((0, _)) => {}
            Some((_, name)) => {
                return Err(ConfigError::new(format!(
                    "{name} is set but {first} is not"
                )));
            }
        }
        let mut keys = Vec::with_capacity(found.len());
        for (_, name) in found {
            let key = self.get(name).unwrap_or_default();
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::new(format!(
                    "{name} contains characters that an API key cannot have (only visible ASCII)"
                )));
            }
            keys.push(Secret::new(key));
        }
        Keys::new(keys).map(Some)
    }
}

/// A provider this crate knows, and how the environment configures it.
struct BuiltIn {
    /// The names it is registered under: its own, then aliases.
    names: &'static [&'static str],
    /// The key variable prefixes, in order of preference.
    key_prefixes: &'static [&'static str],
    build: fn(&Vars, Keys) -> Built,
}

/// A provider built from the environment.
type Built = Result<Arc<dyn Provider>, ConfigError>;

const BUILT_IN: [BuiltIn; 6] = [
    BuiltIn {
        names: &["openai"],
        key_prefixes: &["OPENAI"],
        build: |vars, keys| {
            based(
                vars,
                "OPENAI",
                OpenAi::new(keys),
                OpenAi::allow_insecure_transport,
                OpenAi::base_url,
            )
        },
    },
    BuiltIn {
        names: &["azure"],
        key_prefixes: &["AZURE"],
        build: azure,
    },
    BuiltIn {
        names: &["xai"],
        key_prefixes: &["XAI"],
        build: |vars, keys| {
            based(
                vars,
                "XAI",
                Xai::new(keys),
                Xai::allow_insecure_transport,
                Xai::base_url,
            )
        },
    },
    BuiltIn {
        names: &["bailian", "dashscope"],
        key_prefixes: &["BAILIAN", "DASHSCOPE"],
        build: |vars, keys| {
            based(
                vars,
                "BAILIAN",
                Bailian::new(keys),
                Bailian::allow_insecure_transport,
                Bailian::base_url,
            )
        },
    },
    BuiltIn {
        names: &["zai", "zhipu"],
        key_prefixes: &["ZAI"],
        build: |vars, keys| {
            based(
                vars,
                "ZAI",
                Zai::new(keys),
                Zai::allow_insecure_transport,
                Zai::base_url,
            )
        },
    },
    BuiltIn {
        names: &["gemini"],
        key_prefixes: &["GEMINI"],
        build: gemini,
    },
];

/// The names of the Vertex AI provider (enabled by its own variables).
const VERTEX_NAMES: [&str; 1] = ["vertex"];

impl BuiltIn {
    /// Adds the provider under all its names if one of its keys is set.
    fn register(&self, vars: &Vars, mut providers: Providers) -> Result<Providers, ConfigError> {
        let mut keys = None;
        for prefix in self.key_prefixes {
            keys = vars.keys(prefix)?;
            if keys.is_some() {
                break;
            }
        }
        let Some(keys) = keys else {
            return Ok(providers);
        };
        let provider = (self.build)(vars, keys)?;
        let models = self
            .key_prefixes
            .iter()
            .map(|prefix| vars.models(prefix))
            .find(|models| !models.is_empty());
        for name in self.names {
            providers = providers.with_shared(name, Arc::clone(&provider));
            if let Some(models) = &models {
                providers = providers.allow_models(name, models.iter().copied());
            }
        }
        Ok(providers)
    }
}

/// `provider`, moved to the base URL in `PREFIX_BASE_URL` if that is set,
/// over plain http/ws to a remote host only if
/// `PREFIX_ALLOW_INSECURE_TRANSPORT` says so.
fn based<P: Provider>(
    vars: &Vars,
    prefix: &str,
    provider: P,
    allow_insecure_transport: fn(P) -> P,
    base_url: fn(P, &str) -> Result<P, ConfigError>,
) -> Built {
    let provider = if vars.allows_insecure_transport(prefix)? {
        allow_insecure_transport(provider)
    } else {
        provider
    };
    let var = format!("{prefix}_BASE_URL");
    Ok(match vars.get(&var) {
        Some(base) => {
            refuse_clear_text_key_in(vars, prefix, &var, base)?;
            Arc::new(base_url(provider, base).map_err(in_var(&var))?)
        }
        None => Arc::new(provider),
    })
}

/// Refuses a key on the base URL in `var` (a provider with a key) that would
/// travel in clear text, unless `PREFIX_ALLOW_INSECURE_TRANSPORT` allows it;
/// the error names the variables.
fn refuse_clear_text_key_in(
    vars: &Vars,
    prefix: &str,
    var: &str,
    base: &str,
) -> Result<(), ConfigError> {
    if vars.allows_insecure_transport(prefix)? {
        return Ok(());
    }
    let url = websocket_base_url(base).map_err(in_var(var))?;
    let opt_in = format!("{prefix}_ALLOW_INSECURE_TRANSPORT=true");
    refuse_clear_text_key(&url, Some(&opt_in)).map_err(in_var(var))
}

fn azure(vars: &Vars, keys: Keys) -> Built {
    let base = vars.get("AZURE_BASE_URL").ok_or_else(|| {
        ConfigError::new(
            "AZURE_API_KEY is set but AZURE_BASE_URL is not; set it to the resource root, e.g. https://RESOURCE.openai.azure.com",
        )
    })?;
    let mut azure = Azure::new(base, keys).map_err(in_var("AZURE_BASE_URL"))?;
    if let Some(version) = vars.get("AZURE_API_VERSION") {
        azure = azure.api_version(version);
    }
    Ok(Arc::new(azure))
}

fn gemini(vars: &Vars, keys: Keys) -> Built {
    let mut gemini = Gemini::new(keys);
    if let Some(on) = vars.flag("GEMINI_RECONFIGURE_BY_RESUMING")? {
        gemini = gemini.reconfigure_by_resuming(on);
    }
    if let Some(version) = vars.get("GEMINI_API_VERSION") {
        gemini = gemini
            .api_version(version)
            .map_err(in_var("GEMINI_API_VERSION"))?;
    }
    based(
        vars,
        "GEMINI",
        gemini,
        Gemini::allow_insecure_transport,
        Gemini::base_url,
    )
}

/// Vertex AI, when `VERTEX_PROJECT` or `VERTEX_API_KEY` is set.
fn register_vertex(vars: &Vars, mut providers: Providers) -> Result<Providers, ConfigError> {
    let project = vars.get("VERTEX_PROJECT");
    let keys = vars.keys("VERTEX")?;
    if project.is_none() && keys.is_none() {
        return Ok(providers);
    }
    let location = vars.get("VERTEX_LOCATION").unwrap_or("us-central1");
    let mut vertex = match (project, keys) {
        (None, Some(keys)) => Vertex::express(keys),
        (Some(project), Some(keys)) => {
            Vertex::new(project, location, VertexCredential::ApiKey(keys))
                .map_err(in_var("VERTEX_PROJECT"))?
        }
        (Some(project), None) => {
            let path = vars.get("GOOGLE_APPLICATION_CREDENTIALS").ok_or_else(|| {
                ConfigError::new(
                    "VERTEX_PROJECT is set but neither GOOGLE_APPLICATION_CREDENTIALS (a service account key file) nor VERTEX_API_KEY is",
                )
            })?;
            let account = ServiceAccount::from_file(path)
                .map_err(in_var("GOOGLE_APPLICATION_CREDENTIALS"))?;
            Vertex::new(project, location, VertexCredential::ServiceAccount(account))
                .map_err(in_var("VERTEX_PROJECT"))?
        }
        (None, None) => unreachable!("checked above"),
    };
    if vars.allows_insecure_transport("VERTEX")? {
        vertex = vertex.allow_insecure_transport();
    }
    if let Some(on) = vars.flag("VERTEX_RECONFIGURE_BY_RESUMING")? {
        vertex = vertex.reconfigure_by_resuming(on);
    }
    if let Some(base) = vars.get("VERTEX_BASE_URL") {
        refuse_clear_text_key_in(vars, "VERTEX", "VERTEX_BASE_URL", base)?;
        vertex = vertex.base_url(base).map_err(in_var("VERTEX_BASE_URL"))?;
    }
    if let Some(version) = vars.get("VERTEX_API_VERSION") {
        vertex = vertex
            .api_version(version)
            .map_err(in_var("VERTEX_API_VERSION"))?;
    }
    let vertex: Arc<dyn Provider> = Arc::new(vertex);
    let models = vars.models("VERTEX");
    for name in VERTEX_NAMES {
        providers = providers.with_shared(name, Arc::clone(&vertex));
        if !models.is_empty() {
            providers = providers.allow_models(name, models.iter().copied());
        }
    }
    Ok(providers)
}

/// How an extra compatible provider authenticates (`NAME_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthStyle {
    Bearer,
    ApiKey,
    None,
}

/// The providers listed in `REALTIME_PROVIDERS`.
fn register_compatible(vars: &Vars, mut providers: Providers) -> Result<Providers, ConfigError> {
    let mut prefixes = HashSet::new();
    for name in vars.list(PROVIDERS) {
        let name = name.to_ascii_lowercase();
        if !is_valid_name(&name) {
            return Err(ConfigError::new(format!(
                "{PROVIDERS}: `{name}` is not a provider name (use ASCII letters, digits, `-` and `_`)"
            )));
        }
        if BUILT_IN
            .iter()
            .any(|built_in| built_in.names.contains(&name.as_str()))
            || VERTEX_NAMES.contains(&name.as_str())
        {
            return Err(ConfigError::new(format!(
                "{PROVIDERS}: `{name}` is a built-in provider; configure it with its own variables"
            )));
        }
        let prefix = name.to_ascii_uppercase().replace('-', "_");
        if !prefixes.insert(prefix.clone()) {
            return Err(ConfigError::new(format!(
                "{PROVIDERS}: `{name}` is listed twice (variables {prefix}_*)"
            )));
        }
        providers = providers.with(&name, compatible(vars, &prefix)?);
        let models = vars.models(&prefix);
        if !models.is_empty() {
            providers = providers.allow_models(&name, models);
        }
    }
    Ok(providers)
}

/// One extra provider from `PREFIX_BASE_URL`, `PREFIX_API_KEY…` and `PREFIX_AUTH`.
fn compatible(vars: &Vars, prefix: &str) -> Result<Compatible, ConfigError> {
    let base_var = format!("{prefix}_BASE_URL");
    let base = vars.get(&base_var).ok_or_else(|| {
        ConfigError::new(format!(
            "{base_var} is required for a provider listed in {PROVIDERS}"
        ))
    })?;
    let mut provider = Compatible::new(base).map_err(in_var(&base_var))?;
    if vars.allows_insecure_transport(prefix)? {
        provider = provider.allow_insecure_transport();
    }
    let keys = vars.keys(prefix)?;
    let auth_var = format!("{prefix}_AUTH");
    let style = match vars.get(&auth_var) {
        None if keys.is_some() => AuthStyle::Bearer,
        None => AuthStyle::None,
        Some(style) if style.eq_ignore_ascii_case("bearer") => AuthStyle::Bearer,
        Some(style) if style.eq_ignore_ascii_case("api-key") => AuthStyle::ApiKey,
        Some(style) if style.eq_ignore_ascii_case("none") => AuthStyle::None,
        Some(other) => {
            return Err(ConfigError::new(format!(
                "{auth_var}: unknown auth style `{other}`; use bearer, api-key or none"
            )));
        }
    };
    if style != AuthStyle::None && keys.is_some() {
        refuse_clear_text_key_in(vars, prefix, &base_var, base)?;
    }
    match (style, keys) {
        (AuthStyle::Bearer, Some(keys)) => provider.bearer(keys).map_err(in_var(&base_var)),
        (AuthStyle::ApiKey, Some(keys)) => provider.api_key(keys).map_err(in_var(&base_var)),
        (AuthStyle::None, None) => Ok(provider),
        (AuthStyle::Bearer | AuthStyle::ApiKey, None) => Err(ConfigError::new(format!(
            "{auth_var} asks for a key but {prefix}_API_KEY is not set"
        ))),
        (AuthStyle::None, Some(_)) => Err(ConfigError::new(format!(
            "{prefix}_API_KEY is set but {auth_var}=none would never send it"
        ))),
    }
}

/// The aliases in `REALTIME_MODEL_ALIASES`, each checked against the providers.
fn register_aliases(vars: &Vars, mut providers: Providers) -> Result<Providers, ConfigError> {
    let mut seen = HashSet::new();
    for entry in vars.list(MODEL_ALIASES) {
        let (alias, selector) = entry
            .split_once('=')
            .map(|(alias, selector)| (alias.trim(), selector.trim()))
            .filter(|(alias, selector)| !alias.is_empty() && !selector.is_empty())
            .ok_or_else(|| {
                ConfigError::new(format!(
                    "{MODEL_ALIASES}: `{entry}` is not ALIAS=PROVIDER/MODEL"
                ))
            })?;
        if !seen.insert(alias) {
            return Err(ConfigError::new(format!(
                "{MODEL_ALIASES}: `{alias}` is defined twice"
            )));
        }
        let mut deployments = Vec::new();
        for (tier, selector) in (0..).zip(selector.split('|').map(str::trim)) {
            match selector.split_once('/') {
                _ if selector.is_empty() => {
                    return Err(ConfigError::new(format!(
                        "{MODEL_ALIASES}: `{alias}` has an empty deployment between `|`"
                    )));
                }
                Some((_, "")) => {
                    return Err(ConfigError::new(format!(
                        "{MODEL_ALIASES}: `{alias}` names no model after its provider"
                    )));
                }
                Some((provider, _)) if providers.get(provider).is_none() => {
                    return Err(not_configured(MODEL_ALIASES, provider, &providers));
                }
                None if providers.default_name().is_none() => {
                    return Err(ConfigError::new(format!(
                        "{MODEL_ALIASES}: `{alias}={selector}` has no provider prefix and {DEFAULT_PROVIDER} is not set"
                    )));
                }
                _ => {}
            }
            deployments.push(Deployment::new(selector).tier(tier));
        }
        providers = providers.deployments(alias, deployments);
    }
    Ok(providers)
}

/// Prefixes an error with the variable it came from.
fn in_var(var: &str) -> impl Fn(ConfigError) -> ConfigError + '_ {
    move |error| ConfigError::new(format!("{var}: {error}"))
}

fn not_configured(var: &str, name: &str, providers: &Providers) -> ConfigError {
    let configured: Vec<&str> = providers.names().collect();
    let configured = if configured.is_empty() {
        "none".to_owned()
    } else {
        configured.join(", ")
    };
    ConfigError::new(format!(
        "{var}: provider `{name}` is not configured; configured providers: {configured}"
    ))
}
