//! The built-in providers, compatible endpoints, key rotation, aliases and
//! the default provider, configured from code and from environment variables.

mod common;

use common::*;
use tower_realtime::provider::{
    Azure, Bailian, Compatible, OpenAi, Provider, Target, TargetError, TargetRequest, Xai, Zai,
};
use tower_realtime::testing::{MockUpstream, RecordedRequest};
use tower_realtime::{Providers, RealtimeLayer, Secret};

/// Keys are recognisable, so any leak is found.
const KEY: &str = "sk-env-SECRET-1";
const KEY_2: &str = "sk-env-SECRET-2";
const KEY_3: &str = "sk-env-SECRET-3";
const CLIENT_SECRET: &str = "sk-client-SECRET-xyz";

/// Headers that carry credentials, other than the one a provider injects.
const CREDENTIAL_HEADERS: [&str; 9] = [
    "authorization",
    "api-key",
    "x-api-key",
    "proxy-authorization",
    "cookie",
    "openai-beta",
    "openai-organization",
    "openai-project",
    "sec-websocket-protocol",
];

fn target(
    provider: &dyn Provider,
    name: &str,
    model: &str,
    intent: Option<&str>,
) -> Result<Target, TargetError> {
    let (parts, ()) = http::Request::get("/v1/realtime")
        .header("authorization", format!("Bearer {CLIENT_SECRET}"))
        .body(())
        .unwrap()
        .into_parts();
    provider.target(&TargetRequest::new(name, model, intent, &parts))
}

/// The target `providers` builds for `name/model`.
fn target_of(
    providers: &Providers,
    name: &str,
    model: &str,
    intent: Option<&str>,
) -> Result<Target, TargetError> {
    let provider = providers
        .get(name)
        .unwrap_or_else(|| panic!("provider `{name}` is configured"));
    target(provider.as_ref(), name, model, intent)
}

/// Asserts that `target` carries exactly one credential, `header: value`
/// (or none), and that its `Debug` print hides the key.
fn assert_credential(target: &Target, expected: Option<(&str, &str)>, context: &str) {
    let headers = target.headers();
    for name in CREDENTIAL_HEADERS {
        let wanted = expected.filter(|(header, _)| *header == name);
        let got: Vec<_> = headers.get_all(name).iter().collect();
        match wanted {
            Some((_, value)) => assert_eq!(got, [value], "{context}: {name}"),
            None => assert!(got.is_empty(), "{context}: unexpected {name}"),
        }
    }
    assert_eq!(headers.len(), usize::from(expected.is_some()), "{context}");
    let printed = format!("{target:?}");
    for key in [KEY, KEY_2, KEY_3, CLIENT_SECRET] {
        assert!(!printed.contains(key), "{context}: {printed}");
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// Every base-URL variant of every provider, configured from variables: the
/// URL and the credential header a session gets.
#[test]
fn url_and_credential_derivation_from_variables() {
    struct Case {
        vars: &'static [(&'static str, &'static str)],
        provider: &'static str,
        model: &'static str,
        intent: Option<&'static str>,
        url: &'static str,
        header: &'static str,
        scheme: Scheme,
    }
    #[derive(Clone, Copy)]
    enum Scheme {
        Bearer,
        ApiKey,
        NoAuth,
    }
    use Scheme::*;
    let case = |vars, provider, model, url, header, scheme| Case {
        vars,
        provider,
        model,
        intent: None,
        url,
        header,
        scheme,
    };
    let transcription = |vars, provider, url, header, scheme| Case {
        intent: Some("transcription"),
        ..case(vars, provider, "gpt-4o-transcribe", url, header, scheme)
    };
    let cases = [
        // OpenAI
        case(
            &[("OPENAI_API_KEY", KEY)],
            "openai",
            "gpt-realtime",
            "wss://api.openai.com/v1/realtime?model=gpt-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("OPENAI_API_KEY", KEY),
                ("OPENAI_BASE_URL", "https://proxy.example.com/v1/"),
            ],
            "openai",
            "gpt-realtime",
            "wss://proxy.example.com/v1/realtime?model=gpt-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("OPENAI_API_KEY", KEY),
                ("OPENAI_BASE_URL", "http://127.0.0.1:9000/v1"),
            ],
            "openai",
            "gpt-realtime",
            "ws://127.0.0.1:9000/v1/realtime?model=gpt-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("OPENAI_API_KEY", KEY),
                ("OPENAI_BASE_URL", "wss://edge.example.com/openai"),
            ],
            "openai",
            "gpt-realtime",
            "wss://edge.example.com/openai/realtime?model=gpt-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[("OPENAI_API_KEY", KEY)],
            "openai",
            "a&b=c/../#x?y",
            "wss://api.openai.com/v1/realtime?model=a%26b%3Dc%2F..%2F%23x%3Fy",
            "authorization",
            Bearer,
        ),
        transcription(
            &[("OPENAI_API_KEY", KEY)],
            "openai",
            "wss://api.openai.com/v1/realtime?intent=transcription",
            "authorization",
            Bearer,
        ),
        // Azure: GA, every spelling of the resource root
        case(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.openai.azure.com"),
            ],
            "azure",
            "my-realtime",
            "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.openai.azure.com/"),
            ],
            "azure",
            "my-realtime",
            "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.openai.azure.com/openai"),
            ],
            "azure",
            "my-realtime",
            "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.openai.azure.com/openai/"),
            ],
            "azure",
            "my-realtime",
            "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.openai.azure.com/openai/v1"),
            ],
            "azure",
            "my-realtime",
            "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.openai.azure.com/openai/v1/"),
            ],
            "azure",
            "my-realtime",
            "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("AZURE_API_KEY", KEY),
                (
                    "AZURE_BASE_URL",
                    "https://res.openai.azure.com/openai/deployments/other",
                ),
            ],
            "azure",
            "my-realtime",
            "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("AZURE_API_KEY", KEY),
                (
                    "AZURE_BASE_URL",
                    "https://RES.OpenAI.Azure.com/OpenAI/Deployments/other/",
                ),
            ],
            "azure",
            "my-realtime",
            "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.cognitiveservices.azure.com/"),
            ],
            "azure",
            "my-realtime",
            "wss://res.cognitiveservices.azure.com/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("AZURE_API_KEY", KEY),
                (
                    "AZURE_BASE_URL",
                    "https://gateway.example.com/team-a/openai",
                ),
            ],
            "azure",
            "my-realtime",
            "wss://gateway.example.com/team-a/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        transcription(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.openai.azure.com"),
            ],
            "azure",
            "wss://res.openai.azure.com/openai/v1/realtime?intent=transcription",
            "api-key",
            ApiKey,
        ),
        // Azure: preview shape
        case(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.openai.azure.com/openai/v1/"),
                ("AZURE_API_VERSION", "2025-04-01-preview"),
            ],
            "azure",
            "my-realtime",
            "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=my-realtime",
            "api-key",
            ApiKey,
        ),
        transcription(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.openai.azure.com/openai"),
                ("AZURE_API_VERSION", "2025-04-01-preview"),
            ],
            "azure",
            "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&intent=transcription",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("AZURE_API_KEY", KEY),
                ("AZURE_BASE_URL", "https://res.openai.azure.com"),
                ("AZURE_API_VERSION", "  "),
            ],
            "azure",
            "my-realtime",
            "wss://res.openai.azure.com/openai/v1/realtime?model=my-realtime",
            "api-key",
            ApiKey,
        ),
        // xAI
        case(
            &[("XAI_API_KEY", KEY)],
            "xai",
            "grok-voice",
            "wss://api.x.ai/v1/realtime?model=grok-voice",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("XAI_API_KEY", KEY),
                ("XAI_BASE_URL", "https://api.x.ai/v1/"),
            ],
            "xai",
            "grok-voice",
            "wss://api.x.ai/v1/realtime?model=grok-voice",
            "authorization",
            Bearer,
        ),
        // Bailian / DashScope: the host picks the region, the path is pinned
        case(
            &[("BAILIAN_API_KEY", KEY)],
            "bailian",
            "qwen-omni-turbo-realtime",
            "wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=qwen-omni-turbo-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[("DASHSCOPE_API_KEY", KEY)],
            "dashscope",
            "qwen-omni-turbo-realtime",
            "wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=qwen-omni-turbo-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("DASHSCOPE_API_KEY", KEY),
                (
                    "BAILIAN_BASE_URL",
                    "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
                ),
            ],
            "bailian",
            "qwen3-omni-flash-realtime",
            "wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime?model=qwen3-omni-flash-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("BAILIAN_API_KEY", KEY),
                (
                    "BAILIAN_BASE_URL",
                    "https://ws-1a2b3c.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1/",
                ),
            ],
            "dashscope",
            "qwen3-omni-flash-realtime",
            "wss://ws-1a2b3c.ap-southeast-1.maas.aliyuncs.com/api-ws/v1/realtime?model=qwen3-omni-flash-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("BAILIAN_API_KEY", KEY),
                ("BAILIAN_BASE_URL", "https://dashscope.aliyuncs.com"),
            ],
            "bailian",
            "qwen-omni-turbo-realtime",
            "wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=qwen-omni-turbo-realtime",
            "authorization",
            Bearer,
        ),
        // Z.ai / Zhipu: the host picks the region, the path is pinned
        case(
            &[("ZAI_API_KEY", KEY)],
            "zai",
            "glm-realtime",
            "wss://api.z.ai/api/paas/v4/realtime?model=glm-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("ZAI_API_KEY", KEY),
                ("ZAI_BASE_URL", "https://api.z.ai/api/coding/paas/v4"),
            ],
            "zai",
            "glm-realtime",
            "wss://api.z.ai/api/paas/v4/realtime?model=glm-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("ZAI_API_KEY", KEY),
                ("ZAI_BASE_URL", "https://open.bigmodel.cn/api/paas/v4/"),
            ],
            "zhipu",
            "glm-realtime",
            "wss://open.bigmodel.cn/api/paas/v4/realtime?model=glm-realtime",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("ZAI_API_KEY", KEY),
                (
                    "ZAI_BASE_URL",
                    "https://open.bigmodel.cn/api/coding/paas/v4/",
                ),
            ],
            "zhipu",
            "glm-realtime",
            "wss://open.bigmodel.cn/api/paas/v4/realtime?model=glm-realtime",
            "authorization",
            Bearer,
        ),
        // Compatible endpoints
        case(
            &[
                ("REALTIME_PROVIDERS", "vllm"),
                ("VLLM_BASE_URL", "http://127.0.0.1:8000/v1"),
            ],
            "vllm",
            "Qwen/Qwen3-Omni",
            "ws://127.0.0.1:8000/v1/realtime?model=Qwen%2FQwen3-Omni",
            "",
            NoAuth,
        ),
        case(
            &[
                ("REALTIME_PROVIDERS", " vllm , local-gpu "),
                ("VLLM_BASE_URL", "http://127.0.0.1:8000/v1"),
                ("LOCAL_GPU_BASE_URL", "http://10.0.0.7:9000"),
                ("LOCAL_GPU_API_KEY", KEY),
            ],
            "local-gpu",
            "m",
            "ws://10.0.0.7:9000/realtime?model=m",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("REALTIME_PROVIDERS", "LAB"),
                ("LAB_BASE_URL", "https://lab.example.com/v1/"),
                ("LAB_API_KEY", KEY),
                ("LAB_AUTH", "API-Key"),
            ],
            "lab",
            "m",
            "wss://lab.example.com/v1/realtime?model=m",
            "api-key",
            ApiKey,
        ),
        case(
            &[
                ("REALTIME_PROVIDERS", "lab"),
                ("LAB_BASE_URL", "wss://lab.example.com/v1"),
                ("LAB_API_KEY", KEY),
                ("LAB_AUTH", "bearer"),
            ],
            "lab",
            "m",
            "wss://lab.example.com/v1/realtime?model=m",
            "authorization",
            Bearer,
        ),
        case(
            &[
                ("REALTIME_PROVIDERS", "lab"),
                ("LAB_BASE_URL", "http://[::1]:8000/v1"),
                ("LAB_AUTH", "NONE"),
            ],
            "lab",
            "m",
            "ws://[::1]:8000/v1/realtime?model=m",
            "",
            NoAuth,
        ),
    ];
    for case in cases {
        let context = format!("{:?} {}/{}", case.vars, case.provider, case.model);
        let providers = Providers::from_vars(case.vars.iter().copied())
            .unwrap_or_else(|error| panic!("{context}: {error}"));
        let target = target_of(&providers, case.provider, case.model, case.intent)
            .unwrap_or_else(|error| panic!("{context}: {error}"));
        assert_eq!(target.url().as_str(), case.url, "{context}");
        let bearer = bearer(KEY);
        let expected = match case.scheme {
            Bearer => Some((case.header, bearer.as_str())),
            ApiKey => Some((case.header, KEY)),
            NoAuth => None,
        };
        assert_credential(&target, expected, &context);
        assert!(target.subprotocols().is_empty(), "{context}");
    }
}

/// The same derivations through the builders, with the documented constants.
#[test]
fn url_and_credential_derivation_from_code() {
    let key = || Secret::new(KEY);
    let bearer = bearer(KEY);
    let cases: Vec<(Box<dyn Provider>, &str, Option<(&str, &str)>)> = vec![
        (
            Box::new(OpenAi::new(key())),
            "wss://api.openai.com/v1/realtime?model=m",
            Some(("authorization", &bearer)),
        ),
        (
            Box::new(Xai::new(key())),
            "wss://api.x.ai/v1/realtime?model=m",
            Some(("authorization", &bearer)),
        ),
        (
            Box::new(Bailian::new(key())),
            "wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=m",
            Some(("authorization", &bearer)),
        ),
        (
            Box::new(
                Bailian::new(key())
                    .base_url(Bailian::INTL_BASE_URL)
                    .unwrap(),
            ),
            "wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime?model=m",
            Some(("authorization", &bearer)),
        ),
        (
            Box::new(Zai::new(key())),
            "wss://api.z.ai/api/paas/v4/realtime?model=m",
            Some(("authorization", &bearer)),
        ),
        (
            Box::new(Zai::new(key()).base_url(Zai::CHINA_BASE_URL).unwrap()),
            "wss://open.bigmodel.cn/api/paas/v4/realtime?model=m",
            Some(("authorization", &bearer)),
        ),
        (
            Box::new(Azure::new("https://res.openai.azure.com", key()).unwrap()),
            "wss://res.openai.azure.com/openai/v1/realtime?model=m",
            Some(("api-key", KEY)),
        ),
        (
            Box::new(
                Azure::new("http://127.0.0.1:1/openai/deployments/d/", key())
                    .unwrap()
                    .api_version("2024-10-01-preview"),
            ),
            "ws://127.0.0.1:1/openai/realtime?api-version=2024-10-01-preview&deployment=m",
            Some(("api-key", KEY)),
        ),
        (
            Box::new(Compatible::new("http://127.0.0.1:8000").unwrap()),
            "ws://127.0.0.1:8000/realtime?model=m",
            None,
        ),
        (
            Box::new(
                Compatible::new("https://gw.example.com/v1")
                    .unwrap()
                    .api_key(key()),
            ),
            "wss://gw.example.com/v1/realtime?model=m",
            Some(("api-key", KEY)),
        ),
        (
            Box::new(
                Compatible::new("https://gw.example.com/v1")
                    .unwrap()
                    .bearer(key()),
            ),
            "wss://gw.example.com/v1/realtime?model=m",
            Some(("authorization", &bearer)),
        ),
    ];
    for (provider, url, credential) in cases {
        let target = target(provider.as_ref(), "p", "m", None).unwrap();
        assert_eq!(target.url().as_str(), url);
        assert_credential(&target, credential, url);
    }
}

#[test]
fn openai_beta_is_sent_only_when_asked_for() {
    let plain = target(&OpenAi::new(Secret::new(KEY)), "openai", "m", None).unwrap();
    assert!(plain.headers().get("openai-beta").is_none());
    let beta = target(
        &OpenAi::new(Secret::new(KEY)).openai_beta(),
        "openai",
        "m",
        None,
    )
    .unwrap();
    assert_eq!(beta.headers()["openai-beta"], "realtime=v1");
    let compatible = Compatible::new("http://127.0.0.1:1/v1")
        .unwrap()
        .openai_beta();
    let beta = target(&compatible, "lab", "m", None).unwrap();
    assert_eq!(beta.headers()["openai-beta"], "realtime=v1");
    assert_eq!(beta.headers().len(), 1);
}

/// Every provider from the variables, for the refusal tables.
fn all_providers(base: &str) -> Providers {
    let vllm_base = format!("{base}/v1");
    Providers::from_vars([
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_BASE_URL", &format!("{base}/v1")),
        ("AZURE_API_KEY", KEY),
        ("AZURE_BASE_URL", base),
        ("XAI_API_KEY", KEY),
        ("XAI_BASE_URL", &format!("{base}/v1")),
        ("BAILIAN_API_KEY", KEY),
        ("BAILIAN_BASE_URL", base),
        ("ZAI_API_KEY", KEY),
        ("ZAI_BASE_URL", base),
        ("REALTIME_PROVIDERS", "vllm"),
        ("VLLM_BASE_URL", &vllm_base),
    ])
    .unwrap()
}

const ALL: [&str; 8] = [
    "openai",
    "azure",
    "xai",
    "bailian",
    "dashscope",
    "zai",
    "zhipu",
    "vllm",
];
const WITHOUT_INTENTS: [&str; 6] = ["xai", "bailian", "dashscope", "zai", "zhipu", "vllm"];

#[test]
fn a_missing_model_is_a_bad_request_for_every_provider() {
    let providers = all_providers("https://example.com");
    for name in ALL {
        let error = target_of(&providers, name, "", None).unwrap_err();
        assert_eq!(error.status(), 400, "{name}");
        assert_eq!(error.code(), "missing_model", "{name}");
    }
    // Without a model, a transcription session still opens where intents pass.
    for name in ["openai", "azure"] {
        assert!(target_of(&providers, name, "", Some("transcription")).is_ok());
    }
}

#[test]
fn intents_pass_only_where_supported() {
    let providers = all_providers("https://example.com");
    for name in WITHOUT_INTENTS {
        let error = target_of(&providers, name, "m", Some("transcription")).unwrap_err();
        assert_eq!(error.status(), 400, "{name}");
        assert_eq!(error.code(), "unsupported_intent", "{name}");
        assert!(error.message().contains(name), "{}", error.message());
    }
    for name in ["openai", "azure"] {
        let error = target_of(&providers, name, "m", Some("translation")).unwrap_err();
        assert_eq!(error.code(), "unsupported_intent", "{name}");
        assert!(
            error.message().contains("translation"),
            "{}",
            error.message()
        );
    }
}

#[test]
fn keys_rotate_one_session_at_a_time_across_names_and_clones() {
    let providers = Providers::from_vars([
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_API_KEY_3", KEY_3),
        ("OPENAI_API_KEY_2", KEY_2),
        ("DASHSCOPE_API_KEY", KEY),
        ("DASHSCOPE_API_KEY_2", KEY_2),
    ])
    .unwrap();
    let authorization = |providers: &Providers, name: &str| {
        target_of(providers, name, "m", None).unwrap().headers()["authorization"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let clone = providers.clone();
    let seen: Vec<String> = [&providers, &clone, &providers, &clone]
        .into_iter()
        .map(|providers| authorization(providers, "openai"))
        .collect();
    assert_eq!(seen, [KEY, KEY_2, KEY_3, KEY].map(bearer));
    // `bailian` and `dashscope` are one provider with one rotation.
    assert_eq!(authorization(&providers, "bailian"), bearer(KEY));
    assert_eq!(authorization(&providers, "dashscope"), bearer(KEY_2));
    assert_eq!(authorization(&providers, "bailian"), bearer(KEY));
}

#[test]
fn numbered_keys_sort_numerically_and_empty_ones_are_skipped() {
    let providers = Providers::from_vars([
        ("XAI_API_KEY_10", KEY_3),
        ("XAI_API_KEY", KEY),
        ("XAI_API_KEY_2", KEY_2),
        ("XAI_API_KEY_3", ""),
        ("XAI_API_KEY_X", "not a key"),
        ("XAI_API_KEY_+4", "not a key"),
    ])
    .unwrap();
    let keys: Vec<String> = (0..4)
        .map(|_| {
            target_of(&providers, "xai", "m", None).unwrap().headers()["authorization"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys, [KEY, KEY_2, KEY_3, KEY].map(bearer));
}

#[test]
fn unset_or_empty_keys_enable_nothing() {
    for vars in [
        &[][..],
        &[("OPENAI_API_KEY", "")],
        &[("OPENAI_API_KEY", "   ")],
        &[("OPENAI_BASE_URL", "https://proxy.example.com/v1")],
        &[("AZURE_BASE_URL", "https://res.openai.azure.com")],
        &[("REALTIME_PROVIDERS", " , ")],
        &[("REALTIME_MODEL_ALIASES", "")],
        &[("REALTIME_DEFAULT_PROVIDER", "")],
    ] {
        let providers = Providers::from_vars(vars.iter().copied()).unwrap();
        assert!(providers.is_empty(), "{vars:?}");
    }
}

#[test]
fn keys_and_bases_are_trimmed_and_bailian_key_wins_over_dashscope() {
    let padded = format!("  {KEY}\n");
    let providers = Providers::from_vars([
        ("BAILIAN_API_KEY", padded.as_str()),
        ("DASHSCOPE_API_KEY", KEY_2),
        (
            "BAILIAN_BASE_URL",
            " https://dashscope-intl.aliyuncs.com/compatible-mode/v1 ",
        ),
    ])
    .unwrap();
    let target = target_of(&providers, "dashscope", "m", None).unwrap();
    assert_eq!(
        target.url().as_str(),
        "wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime?model=m"
    );
    assert_eq!(target.headers()["authorization"], bearer(KEY).as_str());
    let again = target_of(&providers, "bailian", "m", None).unwrap();
    assert_eq!(again.headers()["authorization"], bearer(KEY).as_str());
}

#[test]
fn configuration_errors_name_the_variable_and_never_the_key() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("OPENAI_API_KEY", KEY),
                ("OPENAI_BASE_URL", "ftp://x.example"),
            ],
            "OPENAI_BASE_URL: base URL `ftp://x.example` has scheme `ftp`",
        ),
        (
            &[("XAI_API_KEY", KEY), ("XAI_BASE_URL", "file:///tmp/x")],
            "XAI_BASE_URL: ",
        ),
        (
            &[
                ("BAILIAN_API_KEY", KEY),
                ("BAILIAN_BASE_URL", "dashscope.aliyuncs.com"),
            ],
            "BAILIAN_BASE_URL: invalid base URL",
        ),
        (
            &[
                ("ZAI_API_KEY", KEY),
                ("ZAI_BASE_URL", "https://api.z.ai/api/paas/v4?x=1"),
            ],
            "ZAI_BASE_URL: ",
        ),
        (
            &[
                ("OPENAI_API_KEY", KEY),
                ("OPENAI_BASE_URL", "https://u:pw-SECRET@x.example/v1"),
            ],
            "OPENAI_BASE_URL: a base URL must not contain a user name or password",
        ),
        (&[("AZURE_API_KEY", KEY)], "AZURE_BASE_URL is not"),
        (
            &[("AZURE_API_KEY", KEY), ("AZURE_BASE_URL", "gopher://res")],
            "AZURE_BASE_URL: ",
        ),
        (
            &[("OPENAI_API_KEY_2", KEY)],
            "OPENAI_API_KEY_2 is set but OPENAI_API_KEY is not",
        ),
        (
            &[("OPENAI_API_KEY", "sk-env-SECRET 1")],
            "OPENAI_API_KEY contains characters",
        ),
        (
            &[
                ("OPENAI_API_KEY", KEY),
                ("OPENAI_API_KEY_2", "sk-env-SECRET\u{e9}"),
            ],
            "OPENAI_API_KEY_2 contains characters",
        ),
        (
            &[("REALTIME_PROVIDERS", "vllm")],
            "VLLM_BASE_URL is required",
        ),
        (
            &[
                ("REALTIME_PROVIDERS", "vllm"),
                ("VLLM_BASE_URL", "ssh://gpu:22"),
            ],
            "VLLM_BASE_URL: ",
        ),
        (
            &[
                ("REALTIME_PROVIDERS", "vllm"),
                ("VLLM_BASE_URL", "http://127.0.0.1:8000/v1"),
                ("VLLM_AUTH", "basic"),
            ],
            "VLLM_AUTH: unknown auth style `basic`; use bearer, api-key or none",
        ),
        (
            &[
                ("REALTIME_PROVIDERS", "vllm"),
                ("VLLM_BASE_URL", "http://127.0.0.1:8000/v1"),
                ("VLLM_AUTH", "api-key"),
            ],
            "VLLM_AUTH asks for a key but VLLM_API_KEY is not set",
        ),
        (
            &[
                ("REALTIME_PROVIDERS", "vllm"),
                ("VLLM_BASE_URL", "http://127.0.0.1:8000/v1"),
                ("VLLM_API_KEY", KEY),
                ("VLLM_AUTH", "none"),
            ],
            "VLLM_API_KEY is set but VLLM_AUTH=none",
        ),
        (
            &[("REALTIME_PROVIDERS", "openai")],
            "`openai` is a built-in provider",
        ),
        (
            &[("REALTIME_PROVIDERS", "DashScope")],
            "`dashscope` is a built-in provider",
        ),
        (
            &[("REALTIME_PROVIDERS", "my lab")],
            "`my lab` is not a provider name",
        ),
        (
            &[("REALTIME_PROVIDERS", "a/b")],
            "`a/b` is not a provider name",
        ),
        (
            &[
                ("REALTIME_PROVIDERS", "my-lab,MY_LAB"),
                ("MY_LAB_BASE_URL", "http://127.0.0.1:1"),
            ],
            "`my_lab` is listed twice",
        ),
        (
            &[
                ("OPENAI_API_KEY", KEY),
                ("REALTIME_DEFAULT_PROVIDER", "xai"),
            ],
            "REALTIME_DEFAULT_PROVIDER: provider `xai` is not configured; configured providers: openai",
        ),
        (
            &[("REALTIME_DEFAULT_PROVIDER", "openai")],
            "configured providers: none",
        ),
        (
            &[("OPENAI_API_KEY", KEY), ("REALTIME_MODEL_ALIASES", "voice")],
            "REALTIME_MODEL_ALIASES: `voice` is not ALIAS=PROVIDER/MODEL",
        ),
        (
            &[
                ("OPENAI_API_KEY", KEY),
                ("REALTIME_MODEL_ALIASES", "=openai/m"),
            ],
            "is not ALIAS=PROVIDER/MODEL",
        ),
        (
            &[
                ("OPENAI_API_KEY", KEY),
                ("REALTIME_MODEL_ALIASES", "voice=xai/grok"),
            ],
            "REALTIME_MODEL_ALIASES: provider `xai` is not configured",
        ),
        (
            &[
                ("OPENAI_API_KEY", KEY),
                ("REALTIME_MODEL_ALIASES", "voice=openai/"),
            ],
            "`voice` names no model",
        ),
        (
            &[
                ("OPENAI_API_KEY", KEY),
                ("REALTIME_MODEL_ALIASES", "voice=gpt-realtime"),
            ],
            "has no provider prefix and REALTIME_DEFAULT_PROVIDER is not set",
        ),
        (
            &[
                ("OPENAI_API_KEY", KEY),
                ("REALTIME_MODEL_ALIASES", "voice=openai/a, voice=openai/b"),
            ],
            "`voice` is defined twice",
        ),
    ];
    for (vars, expected) in cases {
        let error = Providers::from_vars(vars.iter().copied())
            .map(|providers| format!("{providers:?}"))
            .expect_err(expected)
            .to_string();
        assert!(error.contains(expected), "{vars:?}: {error}");
        assert!(!error.contains("SECRET"), "{vars:?}: {error}");
    }
}

#[test]
fn debug_prints_of_providers_hide_every_key() {
    let providers = Providers::from_vars([
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_API_KEY_2", KEY_2),
        ("AZURE_API_KEY", KEY),
        ("AZURE_BASE_URL", "https://res.openai.azure.com"),
        ("REALTIME_PROVIDERS", "lab"),
        ("LAB_BASE_URL", "http://127.0.0.1:1"),
        ("LAB_API_KEY", KEY_3),
    ])
    .unwrap();
    let mut printed = format!("{providers:?}");
    for provider in [
        format!("{:?}", OpenAi::new(Secret::new(KEY))),
        format!(
            "{:?}",
            Azure::new("https://res.openai.azure.com", Secret::new(KEY)).unwrap()
        ),
        format!("{:?}", Xai::new(Secret::new(KEY))),
        format!("{:?}", Bailian::new(Secret::new(KEY))),
        format!("{:?}", Zai::new(Secret::new(KEY))),
        format!(
            "{:?}",
            Compatible::new("http://127.0.0.1:1")
                .unwrap()
                .bearer(Secret::new(KEY))
        ),
    ] {
        assert!(provider.contains("***"), "{provider}");
        printed.push_str(&provider);
    }
    for key in [KEY, KEY_2, KEY_3] {
        assert!(!printed.contains(key), "{printed}");
    }
}

// ---------------------------------------------------------------------------
// End to end: a client, the layer on axum, a mock upstream on loopback.
// ---------------------------------------------------------------------------

/// The upstream's `http://127.0.0.1:PORT` root.
fn root(upstream: &MockUpstream) -> String {
    format!("http://{}", upstream.addr())
}

/// Opens a session for `model` (a query string after `?model=`) with the
/// client's own credentials attached, checks that it relays, and returns the
/// handshake the upstream received.
async fn session(providers: Providers, upstream: &MockUpstream, query: &str) -> RecordedRequest {
    let gateway = serve_axum(RealtimeLayer::new(providers)).await;
    let before = upstream.requests().len();
    let bearer = bearer(CLIENT_SECRET);
    let (mut client, response) = connect(
        &gateway.url(&format!("?model={query}")),
        &[
            ("authorization", bearer.as_str()),
            ("api-key", CLIENT_SECRET),
            ("x-api-key", CLIENT_SECRET),
            ("cookie", "session=abc"),
            ("openai-beta", "realtime=v1"),
            ("openai-organization", "org-1"),
        ],
    )
    .await
    .expect("the session opens");
    assert_eq!(response.status(), 101);
    assert_eq!(next_event(&mut client).await["type"], "session.created");
    send_text(&mut client, r#"{"type":"response.create"}"#).await;
    assert_eq!(next_event(&mut client).await["type"], "response.create");
    let requests = upstream.requests();
    assert_eq!(requests.len(), before + 1);
    requests.last().cloned().unwrap()
}

/// Asserts the exact path, query and credential of an upstream handshake,
/// and that no other credential-like header arrived.
fn assert_arrived(
    received: &RecordedRequest,
    path: &str,
    query: &str,
    credential: Option<(&str, &str)>,
) {
    assert_eq!(received.path, path);
    assert_eq!(received.query.as_deref(), Some(query));
    for name in CREDENTIAL_HEADERS {
        let expected = credential
            .filter(|(header, _)| *header == name)
            .map(|(_, value)| value);
        let got: Vec<_> = received
            .headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect();
        assert_eq!(got, expected.into_iter().collect::<Vec<_>>(), "{name}");
    }
    let everything = format!("{:?}", received.headers);
    assert!(!everything.contains(CLIENT_SECRET), "{everything}");
    assert!(!everything.contains("org-1"), "{everything}");
    let other_keys = [KEY, KEY_2, KEY_3]
        .into_iter()
        .filter(|key| !credential.is_some_and(|(_, value)| value.ends_with(key)));
    for key in other_keys {
        assert!(!everything.contains(key), "{everything}");
    }
}

#[tokio::test]
async fn openai_end_to_end() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = format!("{}/v1", root(&upstream));
    let vars = [("OPENAI_API_KEY", KEY), ("OPENAI_BASE_URL", base.as_str())];
    let received = session(
        Providers::from_vars(vars).unwrap(),
        &upstream,
        "openai/gpt-realtime",
    )
    .await;
    let bearer = bearer(KEY);
    assert_arrived(
        &received,
        "/v1/realtime",
        "model=gpt-realtime",
        Some(("authorization", &bearer)),
    );
}

#[tokio::test]
async fn openai_transcription_end_to_end() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = format!("{}/v1", root(&upstream));
    let vars = [("OPENAI_API_KEY", KEY), ("OPENAI_BASE_URL", base.as_str())];
    let received = session(
        Providers::from_vars(vars).unwrap(),
        &upstream,
        "openai/gpt-4o-transcribe&intent=transcription",
    )
    .await;
    let bearer = bearer(KEY);
    assert_arrived(
        &received,
        "/v1/realtime",
        "intent=transcription",
        Some(("authorization", &bearer)),
    );
}

#[tokio::test]
async fn openai_beta_opt_in_end_to_end() {
    let upstream = MockUpstream::echo().await.unwrap();
    let openai = OpenAi::new(Secret::new(KEY))
        .base_url(&upstream.base_url())
        .unwrap()
        .openai_beta();
    let received = session(
        Providers::new().with("openai", openai),
        &upstream,
        "openai/m",
    )
    .await;
    assert_eq!(received.header("openai-beta"), Some("realtime=v1"));
    assert_eq!(received.headers.get_all("openai-beta").iter().count(), 1);
    assert_eq!(received.header("authorization"), Some(bearer(KEY).as_str()));
}

#[tokio::test]
async fn azure_end_to_end() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = format!("{}/openai/deployments/ignored/", root(&upstream));
    let vars = [("AZURE_API_KEY", KEY), ("AZURE_BASE_URL", base.as_str())];
    let received = session(
        Providers::from_vars(vars).unwrap(),
        &upstream,
        "azure/my-realtime",
    )
    .await;
    assert_arrived(
        &received,
        "/openai/v1/realtime",
        "model=my-realtime",
        Some(("api-key", KEY)),
    );
}

#[tokio::test]
async fn azure_preview_end_to_end() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = format!("{}/openai", root(&upstream));
    let vars = [
        ("AZURE_API_KEY", KEY),
        ("AZURE_BASE_URL", base.as_str()),
        ("AZURE_API_VERSION", "2025-04-01-preview"),
    ];
    let providers = Providers::from_vars(vars).unwrap();
    let received = session(providers.clone(), &upstream, "azure/my-realtime").await;
    assert_arrived(
        &received,
        "/openai/realtime",
        "api-version=2025-04-01-preview&deployment=my-realtime",
        Some(("api-key", KEY)),
    );
    let received = session(
        providers,
        &upstream,
        "azure/gpt-4o-transcribe&intent=transcription",
    )
    .await;
    assert_arrived(
        &received,
        "/openai/realtime",
        "api-version=2025-04-01-preview&intent=transcription",
        Some(("api-key", KEY)),
    );
}

#[tokio::test]
async fn azure_transcription_end_to_end() {
    let upstream = MockUpstream::echo().await.unwrap();
    let root = root(&upstream);
    let vars = [("AZURE_API_KEY", KEY), ("AZURE_BASE_URL", root.as_str())];
    let received = session(
        Providers::from_vars(vars).unwrap(),
        &upstream,
        "azure/gpt-4o-transcribe&intent=transcription",
    )
    .await;
    assert_arrived(
        &received,
        "/openai/v1/realtime",
        "intent=transcription",
        Some(("api-key", KEY)),
    );
}

#[tokio::test]
async fn xai_end_to_end() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = format!("{}/v1/", root(&upstream));
    let vars = [("XAI_API_KEY", KEY), ("XAI_BASE_URL", base.as_str())];
    let received = session(
        Providers::from_vars(vars).unwrap(),
        &upstream,
        "xai/grok-voice",
    )
    .await;
    let bearer = bearer(KEY);
    assert_arrived(
        &received,
        "/v1/realtime",
        "model=grok-voice",
        Some(("authorization", &bearer)),
    );
}

#[tokio::test]
async fn bailian_end_to_end_under_both_names() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = format!("{}/compatible-mode/v1", root(&upstream));
    let vars = [
        ("DASHSCOPE_API_KEY", KEY),
        ("BAILIAN_BASE_URL", base.as_str()),
    ];
    let providers = Providers::from_vars(vars).unwrap();
    let bearer = bearer(KEY);
    for prefix in ["bailian", "dashscope"] {
        let received = session(
            providers.clone(),
            &upstream,
            &format!("{prefix}/qwen-omni-turbo-realtime"),
        )
        .await;
        assert_arrived(
            &received,
            "/api-ws/v1/realtime",
            "model=qwen-omni-turbo-realtime",
            Some(("authorization", &bearer)),
        );
    }
}

#[tokio::test]
async fn zai_end_to_end_under_both_names_from_the_coding_plan_base() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = format!("{}/api/coding/paas/v4", root(&upstream));
    let vars = [("ZAI_API_KEY", KEY), ("ZAI_BASE_URL", base.as_str())];
    let providers = Providers::from_vars(vars).unwrap();
    let bearer = bearer(KEY);
    for prefix in ["zai", "zhipu"] {
        let received = session(
            providers.clone(),
            &upstream,
            &format!("{prefix}/glm-realtime"),
        )
        .await;
        assert_arrived(
            &received,
            "/api/paas/v4/realtime",
            "model=glm-realtime",
            Some(("authorization", &bearer)),
        );
    }
}

#[tokio::test]
async fn compatible_end_to_end_with_every_auth_style() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = format!("{}/v1", root(&upstream));
    let providers = Providers::from_vars([
        ("REALTIME_PROVIDERS", "vllm,lab,second-openai"),
        ("VLLM_BASE_URL", base.as_str()),
        ("LAB_BASE_URL", base.as_str()),
        ("LAB_API_KEY", KEY),
        ("LAB_AUTH", "api-key"),
        ("SECOND_OPENAI_BASE_URL", base.as_str()),
        ("SECOND_OPENAI_API_KEY", KEY_2),
    ])
    .unwrap();
    let received = session(providers.clone(), &upstream, "vllm/Qwen/Qwen3-Omni").await;
    assert_arrived(&received, "/v1/realtime", "model=Qwen%2FQwen3-Omni", None);
    let received = session(providers.clone(), &upstream, "lab/m").await;
    assert_arrived(&received, "/v1/realtime", "model=m", Some(("api-key", KEY)));
    let received = session(providers, &upstream, "second-openai/gpt-realtime").await;
    let bearer = bearer(KEY_2);
    assert_arrived(
        &received,
        "/v1/realtime",
        "model=gpt-realtime",
        Some(("authorization", &bearer)),
    );
}

#[tokio::test]
async fn each_session_keeps_the_key_it_was_given_in_turn() {
    let upstream = MockUpstream::echo().await.unwrap();
    let base = format!("{}/v1", root(&upstream));
    let providers = Providers::from_vars([
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_API_KEY_2", KEY_2),
        ("OPENAI_BASE_URL", base.as_str()),
    ])
    .unwrap();
    let gateway = serve_axum(RealtimeLayer::new(providers)).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = open(&gateway, "openai/gpt-realtime").await;
        assert_eq!(next_event(&mut client).await["type"], "session.created");
        clients.push(client);
    }
    let seen: Vec<String> = upstream
        .requests()
        .iter()
        .map(|request| request.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(seen, [KEY, KEY_2, KEY].map(bearer));
    // Sessions opened with different keys stay open side by side.
    for client in &mut clients {
        send_text(client, "ping").await;
        assert_eq!(next_data(client).await.into_text().unwrap(), "ping");
    }
    assert_eq!(upstream.requests().len(), 3);
}

#[tokio::test]
async fn aliases_and_the_default_provider_end_to_end() {
    let upstream = MockUpstream::echo().await.unwrap();
    let openai_base = format!("{}/openai/v1", root(&upstream));
    let xai_base = format!("{}/xai/v1", root(&upstream));
    let providers = Providers::from_vars([
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_BASE_URL", openai_base.as_str()),
        ("XAI_API_KEY", KEY_2),
        ("XAI_BASE_URL", xai_base.as_str()),
        ("REALTIME_DEFAULT_PROVIDER", "XAI"),
        (
            "REALTIME_MODEL_ALIASES",
            "voice=openai/gpt-realtime, fast = grok-voice-fast",
        ),
    ])
    .unwrap();
    let openai_bearer = bearer(KEY);
    let xai_bearer = bearer(KEY_2);
    let received = session(providers.clone(), &upstream, "grok-voice").await;
    assert_arrived(
        &received,
        "/xai/v1/realtime",
        "model=grok-voice",
        Some(("authorization", &xai_bearer)),
    );
    let received = session(providers.clone(), &upstream, "voice").await;
    assert_arrived(
        &received,
        "/openai/v1/realtime",
        "model=gpt-realtime",
        Some(("authorization", &openai_bearer)),
    );
    let received = session(providers, &upstream, "fast").await;
    assert_arrived(
        &received,
        "/xai/v1/realtime",
        "model=grok-voice-fast",
        Some(("authorization", &xai_bearer)),
    );
}

#[tokio::test]
async fn unsupported_intents_and_missing_models_are_refused_before_dialling() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(all_providers(&root(&upstream)))).await;
    for name in WITHOUT_INTENTS {
        let (status, _, body) = refused(
            &gateway.url(&format!("?model={name}/m&intent=transcription")),
            &[],
        )
        .await;
        assert_eq!(status, 400, "{name}");
        assert_eq!(body["error"]["code"], "unsupported_intent", "{name}");
    }
    for name in ["openai", "azure"] {
        let (status, _, body) =
            refused(&gateway.url(&format!("?model={name}/m&intent=other")), &[]).await;
        assert_eq!(status, 400, "{name}");
        assert_eq!(body["error"]["code"], "unsupported_intent", "{name}");
    }
    for name in ALL {
        let (status, _, body) = refused(&gateway.url(&format!("?model={name}/")), &[]).await;
        assert_eq!(status, 400, "{name}");
        assert_eq!(body["error"]["code"], "missing_model", "{name}");
    }
    assert_eq!(upstream.connections(), 0);
}
