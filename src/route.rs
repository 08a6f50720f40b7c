//! From `?model=PROVIDER/MODEL` to a provider and an upstream model.

use std::sync::Arc;

use url::form_urlencoded;

use crate::deployment::DeploymentEntry;
use crate::error::Rejection;
use crate::provider::{Provider, Providers};

/// The longest model selector accepted, in bytes.
pub(crate) const MAX_MODEL_LEN: usize = 256;

/// Where one session may go: one target, or an alias's deployments.
#[derive(Clone)]
pub(crate) struct Route {
    /// At least one.
    pub(crate) targets: Vec<RouteTarget>,
    pub(crate) intent: Option<String>,
}

/// One provider and model a session may open on.
#[derive(Clone)]
pub(crate) struct RouteTarget {
    /// The name of the provider (lower case).
    pub(crate) provider_name: String,
    pub(crate) provider: Arc<dyn Provider>,
    /// The model without its provider prefix.
    pub(crate) model: String,
    /// The `model` label of metrics: the model when clients cannot choose
    /// it freely (an allow-list or an alias), else [`OTHER_MODEL`].
    pub(crate) model_label: String,
    /// The alias deployment it is, if it came from an alias.
    pub(crate) deployment: Option<Arc<DeploymentEntry>>,
}

/// The metrics label of models that clients may name freely.
pub(crate) const OTHER_MODEL: &str = "other";

/// The parameters a client may send, each at most once.
#[derive(Debug, Default, PartialEq, Eq)]
struct Query {
    model: Option<String>,
    intent: Option<String>,
}

fn parse_query(query: Option<&str>) -> Result<Query, Rejection> {
    let mut parsed = Query::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match name.as_ref() {
            "model" => &mut parsed.model,
            "intent" => &mut parsed.intent,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Rejection::bad_request(
                "duplicate_parameter",
                format!("the `{name}` query parameter must appear once"),
            ));
        }
        *slot = Some(value.into_owned());
    }
    Ok(parsed)
}

/// Checks what a client may name as a model: 1 to 256 bytes, valid UTF-8, no
/// control characters and no whitespace. Anything else it may contain is
/// percent-encoded by the provider.
fn validate_selector(selector: &str) -> Result<(), Rejection> {
    let invalid = |why: &str| {
        Err(
            Rejection::bad_request("invalid_model", format!("invalid model: {why}"))
                .with_param("model"),
        )
    };
    if selector.len() > MAX_MODEL_LEN {
        return invalid(&format!("longer than {MAX_MODEL_LEN} bytes"));
    }
    if selector
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == char::REPLACEMENT_CHARACTER)
    {
        return invalid("it contains control characters, whitespace or invalid UTF-8");
    }
    Ok(())
}

/// Resolves the request's query to a route, or says why not.
pub(crate) fn resolve(query: Option<&str>, providers: &Providers) -> Result<Route, Rejection> {
    let query = parse_query(query)?;
    let selector = query
        .model
        .filter(|model| !model.is_empty())
        .ok_or_else(|| {
            Rejection::bad_request(
                "missing_model",
                "the `model` query parameter is required, e.g. ?model=openai/gpt-realtime",
            )
            .with_param("model")
        })?;
    resolve_model(&selector, query.intent, providers)
}

/// Resolves a model selector (`provider/model`, or an alias) to a route.
pub(crate) fn resolve_model(
    selector: &str,
    intent: Option<String>,
    providers: &Providers,
) -> Result<Route, Rejection> {
    validate_selector(selector)?;
    let targets = match providers.alias_of(selector) {
        Some(deployments) => deployments
            .iter()
            .map(|entry| target(entry.spec.selector(), Some(Arc::clone(entry)), providers))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![target(selector, None, providers)?],
    };
    if targets.is_empty() {
        return Err(Rejection::bad_request(
            "unknown_provider",
            format!("model `{selector}` is an alias without deployments"),
        )
        .with_param("model"));
    }
    Ok(Route {
        targets,
        intent: intent.filter(|intent| !intent.is_empty()),
    })
}

/// Resolves one selector (the client's, or an alias deployment's).
fn target(
    selector: &str,
    deployment: Option<Arc<DeploymentEntry>>,
    providers: &Providers,
) -> Result<RouteTarget, Rejection> {
    let (name, model) = match selector.split_once('/') {
        Some((prefix, model)) => (prefix.to_ascii_lowercase(), model),
        None => match providers.default_name() {
            Some(default) => (default.to_owned(), selector),
            None => {
                return Err(Rejection::bad_request(
                    "unknown_provider",
                    format!(
                        "model `{selector}` has no provider prefix (PROVIDER/MODEL) and there is no default provider"
                    ),
                )
                .with_param("model"));
            }
        },
    };
    // The configured providers are not listed: who may ask is not known here.
    let provider = providers.get(&name).cloned().ok_or_else(|| {
        Rejection::bad_request(
            "unknown_provider",
            format!("provider `{name}` is not configured"),
        )
        .with_param("model")
    })?;
    if model.is_empty() {
        return Err(Rejection::bad_request(
            "missing_model",
            format!("no model after the `{name}/` prefix"),
        )
        .with_param("model"));
    }
    if !providers.allows(&name, model) {
        return Err(Rejection::bad_request(
            "model_not_allowed",
            format!("model `{model}` is not allowed for provider `{name}`"),
        )
        .with_param("model"));
    }
    let model_label = if deployment.is_some() || providers.has_allow_list(&name) {
        model.to_owned()
    } else {
        OTHER_MODEL.to_owned()
    };
    Ok(RouteTarget {
        provider_name: name,
        provider,
        model: model.to_owned(),
        model_label,
        deployment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::OpenAi;
    use crate::secret::Secret;

    fn providers() -> Providers {
        Providers::new()
            .with("openai", OpenAi::new(Secret::new("k")))
            .with("lab", OpenAi::new(Secret::new("k")))
            .alias("voice", "lab/voice-1")
    }

    fn route(query: &str, providers: &Providers) -> Result<(String, String), String> {
        resolve(Some(query), providers)
            .map(|r| {
                (
                    r.targets[0].provider_name.clone(),
                    r.targets[0].model.clone(),
                )
            })
            .map_err(|e| e.code.into_owned())
    }

    #[test]
    fn routes_by_prefix_alias_and_default() {
        let p = providers();
        assert_eq!(
            route("model=openai/gpt-realtime", &p),
            Ok(("openai".into(), "gpt-realtime".into()))
        );
        assert_eq!(
            route("model=OpenAI/x/y", &p),
            Ok(("openai".into(), "x/y".into()))
        );
        assert_eq!(
            route("model=openai%2Fa%20b", &p),
            Err("invalid_model".into())
        );
        assert_eq!(
            route("model=voice", &p),
            Ok(("lab".into(), "voice-1".into()))
        );
        assert_eq!(route("model=gpt", &p), Err("unknown_provider".into()));
        let empty_intent = resolve(Some("model=openai/m&intent="), &p).ok().unwrap();
        assert_eq!(empty_intent.intent, None);
        let with_default = providers().default_provider("openai");
        assert_eq!(
            route("model=gpt", &with_default),
            Ok(("openai".into(), "gpt".into()))
        );
    }

    #[test]
    fn refuses_what_is_missing_duplicated_or_unknown() {
        let p = providers();
        for (query, code) in [
            ("", "missing_model"),
            ("model=", "missing_model"),
            ("model=openai/", "missing_model"),
            ("model=a/b&model=a/b", "duplicate_parameter"),
            ("model=openai/a&intent=x&intent=y", "duplicate_parameter"),
            ("model=nope/x", "unknown_provider"),
            ("model=openai/a%0D%0Ab", "invalid_model"),
            ("model=openai/a%00", "invalid_model"),
            ("model=openai/%FF", "invalid_model"),
        ] {
            assert_eq!(route(query, &p), Err(code.into()), "{query}");
        }
        let long = format!("model=openai/{}", "a".repeat(MAX_MODEL_LEN));
        assert_eq!(route(&long, &p), Err("invalid_model".into()));
    }

    #[test]
    fn unknown_provider_message_does_not_list_the_configured_ones() {
        for query in ["model=x/y", "model=unprefixed"] {
            let message = resolve(Some(query), &providers()).err().unwrap().message;
            assert!(!message.contains("lab"), "{message}");
            assert!(!message.contains("openai"), "{message}");
        }
    }

    #[test]
    fn allow_lists_limit_models_and_bound_the_metrics_label() {
        let p = providers()
            .allow_models("OpenAI", ["gpt-realtime", "gpt-realtime-mini"])
            .alias("cheap", "openai/gpt-realtime-mini")
            .alias("banned", "openai/gpt-4o-realtime-preview");
        let label = |query: &str| {
            resolve(Some(query), &p)
                .map(|route| route.targets[0].model_label.clone())
                .map_err(|rejection| rejection.code.into_owned())
        };
        assert_eq!(
            label("model=openai/gpt-realtime"),
            Ok("gpt-realtime".into())
        );
        assert_eq!(label("model=cheap"), Ok("gpt-realtime-mini".into()));
        assert_eq!(
            label("model=openai/gpt-4o"),
            Err("model_not_allowed".to_owned())
        );
        assert_eq!(
            label("model=openai/GPT-REALTIME"),
            Err("model_not_allowed".to_owned())
        );
        assert_eq!(label("model=banned"), Err("model_not_allowed".to_owned()));
        // No allow-list: any model, labelled `other` unless it is an alias's.
        assert_eq!(label("model=lab/anything"), Ok(OTHER_MODEL.into()));
        assert_eq!(label("model=voice"), Ok("voice-1".into()));
        let refusal = resolve(Some("model=openai/gpt-4o"), &p).err().unwrap();
        assert_eq!(refusal.param, Some("model"));
        assert!(
            !refusal.message.contains("gpt-realtime-mini"),
            "{}",
            refusal.message
        );
    }

    mod properties {
        use proptest::prelude::*;
        use url::Url;

        use super::*;
        use crate::provider::TargetRequest;

        const LAB_BASE: &str = "https://lab.example:8443/api/v2";

        fn providers() -> Providers {
            Providers::new()
                .with("openai", OpenAi::new(Secret::new("k")))
                .with(
                    "lab",
                    OpenAi::new(Secret::new("k")).base_url(LAB_BASE).unwrap(),
                )
        }

        /// The provider and the upstream query a client query must lead to,
        /// by the rules the README states; `None` for a 400.
        fn expected(query: &str) -> Option<(&'static str, Vec<(String, String)>)> {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let values = |name: &str| -> Vec<String> {
                pairs
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            let (models, intents) = (values("model"), values("intent"));
            if models.len() != 1 || intents.len() > 1 {
                return None;
            }
            let selector = &models[0];
            let printable = !selector
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\u{fffd}');
            if selector.is_empty() || selector.len() > MAX_MODEL_LEN || !printable {
                return None;
            }
            let (prefix, model) = selector.split_once('/')?;
            let provider = match prefix.to_ascii_lowercase().as_str() {
                "openai" => "openai",
                "lab" => "lab",
                _ => return None,
            };
            if model.is_empty() {
                return None;
            }
            // An empty intent is no intent.
            let upstream_query = match intents.first().map(String::as_str) {
                None | Some("") => ("model".to_owned(), model.to_owned()),
                Some("transcription") => ("intent".to_owned(), "transcription".to_owned()),
                Some(_) => return None,
            };
            Some((provider, vec![upstream_query]))
        }

        /// Routes `query` and builds the upstream URL, as a session would.
        fn upstream_url(query: &str) -> Result<(String, Url), Rejection> {
            let providers = providers();
            let mut route = resolve(Some(query), &providers)?;
            let intent = route.intent.take();
            let route = route.targets.remove(0);
            let (parts, ()) = http::Request::get("/v1/realtime")
                .body(())
                .unwrap()
                .into_parts();
            let target =
                futures_util::FutureExt::now_or_never(route.provider.target(&TargetRequest::new(
                    &route.provider_name,
                    &route.model,
                    intent.as_deref(),
                    &parts,
                )))
                .expect("built-in providers answer at once")?;
            Ok((route.provider_name, target.url().clone()))
        }

        fn encoded(text: &str) -> String {
            form_urlencoded::byte_serialize(text.as_bytes()).collect()
        }

        /// Parameter values: selectors with odd models, anything
        /// percent-encoded, and raw characters that mean something in URLs.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                (
                    "(openai|OpenAI|lab|LAB|other|)",
                    "[a-z0-9./@#?&=%+ -]{0,12}"
                )
                    .prop_map(|(prefix, model)| format!("{prefix}/{model}")),
                ("(openai|lab)/", any::<String>())
                    .prop_map(|(prefix, model)| encoded(&format!("{prefix}{model}"))),
                any::<String>().prop_map(|text| encoded(&text)),
                "[a-zA-Z0-9/.%@#?&=+;: \\x00\\r\\n\u{e9}\u{1f600}]{0,16}",
            ]
        }

        fn query() -> impl Strategy<Value = String> {
            let name = prop_oneof![
                Just("model"),
                Just("intent"),
                Just("Model"),
                Just("x"),
                Just(""),
            ];
            prop_oneof![
                any::<String>(),
                prop::collection::vec((name, value()), 0..4).prop_map(|pairs| {
                    pairs
                        .iter()
                        .map(|(name, value)| format!("{name}={value}"))
                        .collect::<Vec<_>>()
                        .join("&")
                }),
                (
                    value(),
                    prop_oneof![Just(""), Just("&intent=transcription"), Just("&intent=x")]
                )
                    .prop_map(|(value, intent)| format!("model={value}{intent}")),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            /// Any query either is refused with 400, or reaches exactly the
            /// right provider's `/realtime` with only the model (or intent)
            /// in the query: no query can change the host, port, path, or
            /// add parameters.
            #[test]
            fn any_query_routes_as_specified_or_is_refused(query in query()) {
                match (expected(&query), upstream_url(&query)) {
                    (None, Err(rejection)) => prop_assert_eq!(rejection.status, 400),
                    (Some((provider, pairs)), Ok((name, url))) => {
                        prop_assert_eq!(name.as_str(), provider);
                        let (host, port, path) = match provider {
                            "openai" => ("api.openai.com", None, "/v1/realtime"),
                            _ => ("lab.example", Some(8443), "/api/v2/realtime"),
                        };
                        prop_assert_eq!(url.scheme(), "wss");
                        prop_assert_eq!(url.host_str(), Some(host));
                        prop_assert_eq!(url.port(), port);
                        prop_assert_eq!(url.path(), path);
                        prop_assert_eq!(url.username(), "");
                        prop_assert_eq!(url.fragment(), None);
                        let upstream_pairs: Vec<(String, String)> =
                            url.query_pairs().into_owned().collect();
                        prop_assert_eq!(upstream_pairs, pairs);
                    }
                    (expected, outcome) => prop_assert!(
                        false,
                        "{:?}: expected {:?}, got {:?}",
                        query,
                        expected,
                        outcome.map(|(name, url)| (name, url.to_string()))
                    ),
                }
            }
        }
    }
}
