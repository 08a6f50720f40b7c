//! The set of providers a layer routes to, by name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::Provider;
use crate::deployment::{Balancing, Deployment, DeploymentEntry, DeploymentHealth, LocalHealth};

/// Named providers, an optional default for unprefixed models, model
/// aliases and model allow-lists.
///
/// A client selects `?model=NAME/MODEL`; `NAME` is looked up here without
/// regard to ASCII case. An unprefixed model first goes through the alias
/// table, then to the default provider. A provider with an allow-list
/// ([`Providers::allow_models`]) opens sessions for those models only.
///
/// # Example
///
/// ```
/// use tower_realtime::provider::OpenAi;
/// use tower_realtime::{Providers, Secret};
///
/// let providers = Providers::new()
///     .with("openai", OpenAi::new(Secret::new("sk-123")))
///     .default_provider("openai")
///     .alias("voice", "openai/gpt-realtime");
/// assert_eq!(providers.names().collect::<Vec<_>>(), ["openai"]);
/// ```
#[derive(Clone)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
    aliases: BTreeMap<String, Vec<Arc<DeploymentEntry>>>,
    /// The live sessions of each deployment, by selector, shared by the
    /// aliases that name it.
    live: BTreeMap<String, Arc<AtomicUsize>>,
    health: Arc<dyn DeploymentHealth>,
    balancing: Balancing,
    default: Option<String>,
    /// The models each provider may be asked for, by provider name.
    allowed: BTreeMap<String, BTreeSet<String>>,
}

impl Default for Providers {
    fn default() -> Self {
        Self {
            by_name: BTreeMap::new(),
            aliases: BTreeMap::new(),
            live: BTreeMap::new(),
            health: Arc::new(LocalHealth::new()),
            balancing: Balancing::default(),
            default: None,
            allowed: BTreeMap::new(),
        }
    }
}

impl Providers {
    /// No providers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `provider` under `name` (lower-cased), replacing any provider
    /// of that name.
    ///
    /// # Panics
    ///
    /// When `name` is empty or contains anything but ASCII letters, digits,
    /// `-` and `_`: a name with `/` could never be selected.
    #[must_use]
    pub fn with(self, name: &str, provider: impl Provider) -> Self {
        self.with_shared(name, Arc::new(provider))
    }

    /// Like [`Providers::with`], for a provider that is already shared (for
    /// example one registered under an alias name too).
    #[must_use]
    pub fn with_shared(mut self, name: &str, provider: Arc<dyn Provider>) -> Self {
        assert!(
            is_valid_name(name),
            "provider name `{name}` must be ASCII letters, digits, `-` or `_`"
        );
        self.by_name.insert(name.to_ascii_lowercase(), provider);
        self
    }

    /// Sends unprefixed models (`?model=gpt-realtime`) to the provider `name`.
    #[must_use]
    pub fn default_provider(mut self, name: &str) -> Self {
        self.default = Some(name.to_ascii_lowercase());
        self
    }

    /// Maps the public model name `model` to `selector` (`provider/model`), so
    /// `?model=MODEL` routes like `?model=SELECTOR`.
    #[must_use]
    pub fn alias(self, model: &str, selector: &str) -> Self {
        self.deployments(model, [Deployment::new(selector)])
    }

    /// Maps the public model name `model` to several deployments: a
    /// session tries them tier by tier, by weight within a tier, skipping
    /// those cooling down after a failure and those at their session cap,
    /// and fails over to the next when one cannot open the session (see
    /// [`crate::deployment`]). Replaces any alias of that name.
    ///
    /// ```
    /// use tower_realtime::deployment::Deployment;
    /// use tower_realtime::provider::OpenAi;
    /// use tower_realtime::{Providers, Secret};
    ///
    /// let providers = Providers::new()
    ///     .with("east", OpenAi::new(Secret::new("k1")))
    ///     .with("west", OpenAi::new(Secret::new("k2")))
    ///     .deployments(
    ///         "voice",
    ///         [
    ///             Deployment::new("east/gpt-realtime"),
    ///             Deployment::new("west/gpt-realtime").tier(1),
    ///         ],
    ///     );
    /// let voice: Vec<&str> = providers.deployments_of("voice").unwrap().collect();
    /// assert_eq!(voice, ["east/gpt-realtime", "west/gpt-realtime"]);
    /// ```
    #[must_use]
    pub fn deployments<I>(mut self, model: &str, deployments: I) -> Self
    where
        I: IntoIterator<Item = Deployment>,
    {
        let entries = deployments
            .into_iter()
            .map(|spec| {
                let live = self.live.entry(spec.selector().to_owned()).or_default();
                Arc::new(DeploymentEntry::new(spec, Arc::clone(live)))
            })
            .collect();
        self.aliases.insert(model.to_owned(), entries);
        self
    }

    /// The selectors of the deployments of the alias `model`, in the order
    /// they were given, or `None` when it is no alias.
    pub fn deployments_of(&self, model: &str) -> Option<impl Iterator<Item = &str>> {
        self.aliases
            .get(model)
            .map(|entries| entries.iter().map(|entry| entry.spec.selector()))
    }

    /// Where the health of deployments is kept (default: [`LocalHealth`],
    /// this process only; `RedisBudgetStore::deployment_health` shares it
    /// with every replica using the same Redis).
    #[must_use]
    pub fn deployment_health(mut self, health: impl DeploymentHealth) -> Self {
        self.health = Arc::new(health);
        self
    }

    pub(crate) fn health(&self) -> &dyn DeploymentHealth {
        &*self.health
    }

    /// How sessions are shared among the deployments of a tier, for every
    /// alias (default [`Balancing::Weighted`]).
    #[must_use]
    pub fn deployment_balancing(mut self, balancing: Balancing) -> Self {
        self.balancing = balancing;
        self
    }

    pub(crate) fn balancing(&self) -> Balancing {
        self.balancing
    }

    /// Lets clients ask the provider `name` for these models only (the
    /// upstream model, after aliases; compared exactly). Any other is
    /// refused with 400 `model_not_allowed` before anything is dialled.
    /// Calling it again for the same provider adds models.
    ///
    /// Without an allow-list a provider is asked for any model a client
    /// names: every name costs a dial with the provider's key, and the
    /// `metrics` feature then labels token counts with the provider only
    /// (`model="other"`), so that clients cannot grow the label set.
    ///
    /// ```
    /// use tower_realtime::provider::OpenAi;
    /// use tower_realtime::{Providers, Secret};
    ///
    /// let providers = Providers::new()
    ///     .with("openai", OpenAi::new(Secret::new("sk-123")))
    ///     .allow_models("openai", ["gpt-realtime", "gpt-realtime-mini"]);
    /// let allowed: Vec<&str> = providers.allowed_models("openai").unwrap().collect();
    /// assert_eq!(allowed, ["gpt-realtime", "gpt-realtime-mini"]);
    /// ```
    #[must_use]
    pub fn allow_models<I>(mut self, name: &str, models: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.allowed
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(models.into_iter().map(Into::into));
        self
    }

    /// The models the provider `name` is limited to (sorted), or `None`
    /// when it has no allow-list.
    pub fn allowed_models(&self, name: &str) -> Option<impl Iterator<Item = &str>> {
        self.allowed
            .get(&name.to_ascii_lowercase())
            .map(|models| models.iter().map(String::as_str))
    }

    /// Whether the provider `name` has an allow-list.
    pub(crate) fn has_allow_list(&self, name: &str) -> bool {
        self.allowed.contains_key(name)
    }

    /// Whether clients may ask the provider `name` (lower case) for `model`.
    pub(crate) fn allows(&self, name: &str, model: &str) -> bool {
        self.allowed
            .get(name)
            .is_none_or(|models| models.contains(model))
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Whether no provider is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The provider registered as `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(&name.to_ascii_lowercase())
    }

    /// The name of the default provider, if one is set.
    pub fn default_name(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// The deployments an alias stands for.
    pub(crate) fn alias_of(&self, model: &str) -> Option<&[Arc<DeploymentEntry>]> {
        self.aliases.get(model).map(Vec::as_slice)
    }
}

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Providers")
            .field("names", &self.by_name.keys().collect::<Vec<_>>())
            .field(
                "aliases",
                &self
                    .aliases
                    .iter()
                    .map(|(alias, entries)| (alias, entries.iter().map(|e| &e.spec).collect()))
                    .collect::<BTreeMap<_, Vec<_>>>(),
            )
            .field("balancing", &self.balancing)
            .field("default", &self.default)
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
