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
    // Built-in providers need no I/O: their future is ready at once.
    futures_util::FutureExt::now_or_never(
        provider.target(&TargetRequest::new(name, model, intent, &parts)),
    )
    .expect("a built-in provider answers at once")
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

/// Parses `NAME=VALUE NAME=VALUE …`; a bare `NAME` stands for `NAME=KEY`,
/// and `{root}` in a value for `root`.
fn vars(spec: &str, root: &str) -> Vec<(String, String)> {
    spec.split_whitespace()
        .map(|entry| match entry.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.replace("{root}", root)),
            None => (entry.to_owned(), KEY.to_owned()),
        })
        .collect()
}

/// The credential a case expects: `Authorization: Bearer KEY`, `api-key: KEY`, or none.
#[derive(Debug, Clone, Copy)]
enum Cred {
    Bearer,
    ApiKey,
    NoAuth,
}

impl Cred {
    fn expected(self, bearer: &str) -> Option<(&'static str, &str)> {
        match self {
            Cred::Bearer => Some(("authorization", bearer)),
            Cred::ApiKey => Some(("api-key", KEY)),
            Cred::NoAuth => None,
        }
    }
}

/// Every base-URL variant of every provider, configured from variables: the
/// URL and the credential header a session gets.
#[test]
#[rustfmt::skip]
fn url_and_credential_derivation_from_variables() {
    use Cred::*;
    let t = Some("transcription");
    // variables, provider, model, intent, upstream URL, credential
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, &'a str, Cred);
    let cases: &[Case] = &[
        ("OPENAI_API_KEY", "openai", "gpt-realtime", None, "wss://api.openai.com/v1/realtime?model=gpt-realtime", Bearer),
        ("OPENAI_API_KEY OPENAI_BASE_URL=https://proxy.example.com/v1/", "openai", "m", None, "wss://proxy.example.com/v1/realtime?model=m", Bearer),
        ("OPENAI_API_KEY OPENAI_BASE_URL=http://127.0.0.1:9000/v1", "openai", "m", None, "ws://127.0.0.1:9000/v1/realtime?model=m", Bearer),
        ("OPENAI_API_KEY OPENAI_BASE_URL=wss://edge.example.com/openai", "openai", "m", None, "wss://edge.example.com/openai/realtime?model=m", Bearer),
        ("OPENAI_API_KEY OPENAI_BASE_URL=ws://[::1]:9000/", "openai", "m", None, "ws://[::1]:9000/realtime?model=m", Bearer),
        ("OPENAI_API_KEY", "openai", "a&b=c/../#x?y", None, "wss://api.openai.com/v1/realtime?model=a%26b%3Dc%2F..%2F%23x%3Fy", Bearer),
        ("OPENAI_API_KEY", "openai", "gpt-4o-transcribe", t, "wss://api.openai.com/v1/realtime?intent=transcription", Bearer),
        // Azure GA: every spelling of the resource root
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com", "azure", "dep", None, "wss://res.openai.azure.com/openai/v1/realtime?model=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com/", "azure", "dep", None, "wss://res.openai.azure.com/openai/v1/realtime?model=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com/openai", "azure", "dep", None, "wss://res.openai.azure.com/openai/v1/realtime?model=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com/openai/", "azure", "dep", None, "wss://res.openai.azure.com/openai/v1/realtime?model=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com/openai/v1", "azure", "dep", None, "wss://res.openai.azure.com/openai/v1/realtime?model=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com/openai/v1//", "azure", "dep", None, "wss://res.openai.azure.com/openai/v1/realtime?model=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com/openai/deployments/other", "azure", "dep", None, "wss://res.openai.azure.com/openai/v1/realtime?model=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://RES.OpenAI.Azure.com/OpenAI/Deployments/other/", "azure", "dep", None, "wss://res.openai.azure.com/openai/v1/realtime?model=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.cognitiveservices.azure.com/", "azure", "dep", None, "wss://res.cognitiveservices.azure.com/openai/v1/realtime?model=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://gw.example.com/team-a/openai", "azure", "dep", None, "wss://gw.example.com/team-a/openai/v1/realtime?model=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com", "azure", "gpt-4o-transcribe", t, "wss://res.openai.azure.com/openai/v1/realtime?intent=transcription", ApiKey),
        // Azure preview: chosen by AZURE_API_VERSION
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com/openai/v1/ AZURE_API_VERSION=2025-04-01-preview", "azure", "dep", None, "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com/openai/deployments/dep AZURE_API_VERSION=2025-04-01-preview", "azure", "dep", None, "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=dep", ApiKey),
        ("AZURE_API_KEY AZURE_BASE_URL=https://res.openai.azure.com/openai AZURE_API_VERSION=2025-04-01-preview", "azure", "x", t, "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&intent=transcription", ApiKey),
        // xAI
        ("XAI_API_KEY", "xai", "grok-voice", None, "wss://api.x.ai/v1/realtime?model=grok-voice", Bearer),
        ("XAI_API_KEY XAI_BASE_URL=https://api.x.ai/v1/", "xai", "grok-voice", None, "wss://api.x.ai/v1/realtime?model=grok-voice", Bearer),
        // Bailian / DashScope: the host picks the region or workspace, the path is pinned
        ("BAILIAN_API_KEY", "bailian", "qwen-omni", None, "wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=qwen-omni", Bearer),
        ("DASHSCOPE_API_KEY", "dashscope", "qwen-omni", None, "wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=qwen-omni", Bearer),
        ("DASHSCOPE_API_KEY BAILIAN_BASE_URL=https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "bailian", "qwen-omni", None, "wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime?model=qwen-omni", Bearer),
        ("BAILIAN_API_KEY BAILIAN_BASE_URL=https://ws-1a2b.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1/", "dashscope", "qwen-omni", None, "wss://ws-1a2b.ap-southeast-1.maas.aliyuncs.com/api-ws/v1/realtime?model=qwen-omni", Bearer),
        ("BAILIAN_API_KEY BAILIAN_BASE_URL=https://dashscope.aliyuncs.com", "bailian", "qwen-omni", None, "wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=qwen-omni", Bearer),
        // Z.ai / Zhipu: the host picks the region, the path is pinned
        ("ZAI_API_KEY", "zai", "glm-realtime", None, "wss://api.z.ai/api/paas/v4/realtime?model=glm-realtime", Bearer),
        ("ZAI_API_KEY ZAI_BASE_URL=https://api.z.ai/api/coding/paas/v4", "zai", "glm-realtime", None, "wss://api.z.ai/api/paas/v4/realtime?model=glm-realtime", Bearer),
        ("ZAI_API_KEY ZAI_BASE_URL=https://open.bigmodel.cn/api/paas/v4/", "zhipu", "glm-realtime", None, "wss://open.bigmodel.cn/api/paas/v4/realtime?model=glm-realtime", Bearer),
        ("ZAI_API_KEY ZAI_BASE_URL=https://open.bigmodel.cn/api/coding/paas/v4/", "zhipu", "glm-realtime", None, "wss://open.bigmodel.cn/api/paas/v4/realtime?model=glm-realtime", Bearer),
        // Compatible endpoints
        ("REALTIME_PROVIDERS=vllm VLLM_BASE_URL=http://127.0.0.1:8000/v1", "vllm", "Qwen/Qwen3-Omni", None, "ws://127.0.0.1:8000/v1/realtime?model=Qwen%2FQwen3-Omni", NoAuth),
        ("REALTIME_PROVIDERS=vllm,local-gpu VLLM_BASE_URL=http://x LOCAL_GPU_BASE_URL=http://10.0.0.7:9000 LOCAL_GPU_API_KEY LOCAL_GPU_ALLOW_INSECURE_TRANSPORT=true", "local-gpu", "m", None, "ws://10.0.0.7:9000/realtime?model=m", Bearer),
        ("REALTIME_PROVIDERS=LAB LAB_BASE_URL=https://lab.example.com/v1/ LAB_API_KEY LAB_AUTH=API-Key", "lab", "m", None, "wss://lab.example.com/v1/realtime?model=m", ApiKey),
        ("REALTIME_PROVIDERS=lab LAB_BASE_URL=wss://lab.example.com/v1 LAB_API_KEY LAB_AUTH=bearer", "lab", "m", None, "wss://lab.example.com/v1/realtime?model=m", Bearer),
        ("REALTIME_PROVIDERS=lab LAB_BASE_URL=http://[::1]:8000/v1 LAB_AUTH=NONE", "lab", "m", None, "ws://[::1]:8000/v1/realtime?model=m", NoAuth),
    ];
    let bearer = bearer(KEY);
    for &(spec, provider, model, intent, url, cred) in cases {
        let context = format!("{spec} {provider}/{model}");
        let providers = Providers::from_vars(vars(spec, ""))
            .unwrap_or_else(|error| panic!("{context}: {error}"));
        let target = target_of(&providers, provider, model, intent)
            .unwrap_or_else(|error| panic!("{context}: {error}"));
        assert_eq!(target.url().as_str(), url, "{context}");
        assert_credential(&target, cred.expected(&bearer), &context);
        assert!(target.subprotocols().is_empty(), "{context}");
    }
}

/// The same derivations through the builders, with the documented constants.
#[test]
#[rustfmt::skip]
fn url_and_credential_derivation_from_code() {
    use Cred::*;
    let key = || Secret::new(KEY);
    let azure = |base| Azure::new(base, key()).unwrap();
    let compatible = |base| Compatible::new(base).unwrap();
    let cases: Vec<(Box<dyn Provider>, &str, Cred)> = vec![
        (Box::new(OpenAi::new(key())), "wss://api.openai.com/v1/realtime?model=m", Bearer),
        (Box::new(Xai::new(key())), "wss://api.x.ai/v1/realtime?model=m", Bearer),
        (Box::new(Bailian::new(key())), "wss://dashscope.aliyuncs.com/api-ws/v1/realtime?model=m", Bearer),
        (Box::new(Bailian::new(key()).base_url(Bailian::INTL_BASE_URL).unwrap()), "wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime?model=m", Bearer),
        (Box::new(Zai::new(key())), "wss://api.z.ai/api/paas/v4/realtime?model=m", Bearer),
        (Box::new(Zai::new(key()).base_url(Zai::CHINA_BASE_URL).unwrap()), "wss://open.bigmodel.cn/api/paas/v4/realtime?model=m", Bearer),
        (Box::new(azure("https://res.openai.azure.com")), "wss://res.openai.azure.com/openai/v1/realtime?model=m", ApiKey),
        (Box::new(azure("http://127.0.0.1:1/openai/deployments/d/").api_version("2024-10-01-preview")), "ws://127.0.0.1:1/openai/realtime?api-version=2024-10-01-preview&deployment=m", ApiKey),
        (Box::new(compatible("http://127.0.0.1:8000")), "ws://127.0.0.1:8000/realtime?model=m", NoAuth),
        (Box::new(compatible("https://gw.example.com/v1").api_key(key()).unwrap()), "wss://gw.example.com/v1/realtime?model=m", ApiKey),
        (Box::new(compatible("https://gw.example.com/v1").bearer(key()).unwrap()), "wss://gw.example.com/v1/realtime?model=m", Bearer),
    ];
    let bearer = bearer(KEY);
    for (provider, url, cred) in cases {
        let target = target(provider.as_ref(), "p", "m", None).unwrap();
        assert_eq!(target.url().as_str(), url);
        assert_credential(&target, cred.expected(&bearer), url);
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

/// Every provider, configured from variables with `root` as base URL.
fn all_providers(root: &str) -> Providers {
    Providers::from_vars(vars(
        "OPENAI_API_KEY OPENAI_BASE_URL={root}/v1 AZURE_API_KEY AZURE_BASE_URL={root} \
         XAI_API_KEY XAI_BASE_URL={root}/v1 BAILIAN_API_KEY BAILIAN_BASE_URL={root} \
         ZAI_API_KEY ZAI_BASE_URL={root} REALTIME_PROVIDERS=vllm VLLM_BASE_URL={root}/v1",
        root,
    ))
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
#[rustfmt::skip]
fn configuration_errors_name_the_variable_and_never_the_key() {
    let cases: &[(&str, &str)] = &[
        // variables (a bare NAME is NAME=KEY), what the error says
        ("OPENAI_API_KEY OPENAI_BASE_URL=ftp://x.example", "OPENAI_BASE_URL: base URL `ftp://x.example` has scheme `ftp`"),
        ("XAI_API_KEY XAI_BASE_URL=file:///tmp/x", "XAI_BASE_URL: "),
        ("BAILIAN_API_KEY BAILIAN_BASE_URL=dashscope.aliyuncs.com", "BAILIAN_BASE_URL: invalid base URL"),
        ("ZAI_API_KEY ZAI_BASE_URL=https://api.z.ai/api/paas/v4?x=1", "ZAI_BASE_URL: "),
        ("OPENAI_API_KEY OPENAI_BASE_URL=https://u:pw-SECRET@x.example/v1", "OPENAI_BASE_URL: a base URL must not contain a user name or password"),
        ("AZURE_API_KEY", "AZURE_API_KEY is set but AZURE_BASE_URL is not"),
        ("AZURE_API_KEY AZURE_BASE_URL=gopher://res", "AZURE_BASE_URL: "),
        ("OPENAI_API_KEY_2", "OPENAI_API_KEY_2 is set but OPENAI_API_KEY is not"),
        ("OPENAI_API_KEY OPENAI_API_KEY_2=sk-env-SECRET\u{e9}", "OPENAI_API_KEY_2 contains characters"),
        ("REALTIME_PROVIDERS=vllm", "VLLM_BASE_URL is required"),
        ("REALTIME_PROVIDERS=vllm VLLM_BASE_URL=ssh://gpu:22", "VLLM_BASE_URL: "),
        ("REALTIME_PROVIDERS=vllm VLLM_BASE_URL=http://x VLLM_AUTH=basic", "VLLM_AUTH: unknown auth style `basic`; use bearer, api-key or none"),
        ("REALTIME_PROVIDERS=vllm VLLM_BASE_URL=http://x VLLM_AUTH=api-key", "VLLM_AUTH asks for a key but VLLM_API_KEY is not set"),
        ("REALTIME_PROVIDERS=vllm VLLM_BASE_URL=http://x VLLM_API_KEY VLLM_AUTH=none", "VLLM_API_KEY is set but VLLM_AUTH=none"),
        ("REALTIME_PROVIDERS=openai", "`openai` is a built-in provider"),
        ("REALTIME_PROVIDERS=DashScope", "`dashscope` is a built-in provider"),
        ("REALTIME_PROVIDERS=a/b", "`a/b` is not a provider name"),
        ("REALTIME_PROVIDERS=my-lab,MY_LAB MY_LAB_BASE_URL=http://x", "`my_lab` is listed twice"),
        ("OPENAI_API_KEY REALTIME_DEFAULT_PROVIDER=xai", "REALTIME_DEFAULT_PROVIDER: provider `xai` is not configured; configured providers: openai"),
        ("REALTIME_DEFAULT_PROVIDER=openai", "configured providers: none"),
        ("OPENAI_API_KEY REALTIME_MODEL_ALIASES=voice", "REALTIME_MODEL_ALIASES: `voice` is not ALIAS=PROVIDER/MODEL"),
        ("OPENAI_API_KEY REALTIME_MODEL_ALIASES==openai/m", "is not ALIAS=PROVIDER/MODEL"),
        ("OPENAI_API_KEY REALTIME_MODEL_ALIASES=voice=xai/grok", "REALTIME_MODEL_ALIASES: provider `xai` is not configured"),
        ("OPENAI_API_KEY REALTIME_MODEL_ALIASES=voice=openai/", "`voice` names no model"),
        ("OPENAI_API_KEY REALTIME_MODEL_ALIASES=voice=gpt-realtime", "has no provider prefix and REALTIME_DEFAULT_PROVIDER is not set"),
        ("OPENAI_API_KEY REALTIME_MODEL_ALIASES=voice=openai/a,voice=openai/b", "`voice` is defined twice"),
        // A key in clear text to a host other than loopback, unless allowed.
        ("OPENAI_API_KEY OPENAI_BASE_URL=http://10.0.0.5:8000/v1", "OPENAI_BASE_URL: a key would travel in clear text to `10.0.0.5` (plain http/ws to a host other than loopback); use https, or allow it explicitly with OPENAI_ALLOW_INSECURE_TRANSPORT=true"),
        ("XAI_API_KEY XAI_BASE_URL=ws://grok.internal", "XAI_BASE_URL: a key would travel in clear text to `grok.internal`"),
        ("DASHSCOPE_API_KEY BAILIAN_BASE_URL=http://dashscope.aliyuncs.com", "BAILIAN_BASE_URL: a key would travel in clear text"),
        ("ZAI_API_KEY ZAI_BASE_URL=http://api.z.ai/api/paas/v4", "ZAI_ALLOW_INSECURE_TRANSPORT=true"),
        ("AZURE_API_KEY AZURE_BASE_URL=http://res.openai.azure.com", "AZURE_BASE_URL: a key would travel in clear text to `res.openai.azure.com` (plain http/ws to a host other than loopback); use https"),
        ("REALTIME_PROVIDERS=lab LAB_BASE_URL=http://gpu.lan:8000/v1 LAB_API_KEY", "LAB_BASE_URL: a key would travel in clear text to `gpu.lan`"),
        ("REALTIME_PROVIDERS=lab LAB_BASE_URL=http://gpu.lan:8000/v1 LAB_API_KEY LAB_AUTH=api-key LAB_ALLOW_INSECURE_TRANSPORT=no", "LAB_ALLOW_INSECURE_TRANSPORT=true"),
        ("OPENAI_API_KEY OPENAI_ALLOW_INSECURE_TRANSPORT=maybe", "OPENAI_ALLOW_INSECURE_TRANSPORT must be true or false"),
    ];
    // Values with white space do not fit the `vars` notation.
    let spaced = |name: &str, value: &str| vec![(name.to_owned(), value.to_owned())];
    let cases = cases
        .iter()
        .map(|&(spec, expected)| (vars(spec, ""), expected))
        .chain([
            (spaced("OPENAI_API_KEY", "sk-env-SECRET 1"), "OPENAI_API_KEY contains characters"),
            (spaced("OPENAI_API_KEY", "sk-env-SECRET\n1"), "OPENAI_API_KEY contains characters"),
            (spaced("REALTIME_PROVIDERS", "my lab"), "`my lab` is not a provider name"),
        ]);
    for (vars, expected) in cases {
        let error = Providers::from_vars(vars.clone())
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

/// Opens a session for `query` (what follows `?model=`) with the client's
/// own credentials attached, checks that it relays, and returns the
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
        let expected: Vec<&str> = credential
            .filter(|(header, _)| *header == name)
            .map(|(_, value)| value)
            .into_iter()
            .collect();
        let got: Vec<&str> = received
            .headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect();
        assert_eq!(got, expected, "{name}");
    }
    let everything = format!("{:?}", received.headers);
    assert!(!everything.contains(CLIENT_SECRET), "{everything}");
    assert!(!everything.contains("org-1"), "{everything}");
    for key in [KEY, KEY_2, KEY_3] {
        let sent = credential.is_some_and(|(_, value)| value.ends_with(key));
        assert!(sent || !everything.contains(key), "{everything}");
    }
}

/// Sessions through the layer to one mock upstream, with providers from
/// `spec` (see [`vars`]; `{root}` is the upstream's `http://127.0.0.1:PORT`).
/// Each case is what follows `?model=`, then the path, query and credential
/// the upstream must receive.
async fn end_to_end(spec: &str, cases: &[(&str, &str, &str, Cred)]) {
    let upstream = MockUpstream::echo().await.unwrap();
    let providers = Providers::from_vars(vars(spec, &root(&upstream))).unwrap();
    let bearer = bearer(KEY);
    for &(query, path, upstream_query, cred) in cases {
        let received = session(providers.clone(), &upstream, query).await;
        assert_arrived(&received, path, upstream_query, cred.expected(&bearer));
    }
}

#[tokio::test]
#[rustfmt::skip]
async fn openai_end_to_end() {
    end_to_end("OPENAI_API_KEY OPENAI_BASE_URL={root}/v1", &[
        ("openai/gpt-realtime", "/v1/realtime", "model=gpt-realtime", Cred::Bearer),
        ("openai/gpt-4o-transcribe&intent=transcription", "/v1/realtime", "intent=transcription", Cred::Bearer),
    ]).await;
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
#[rustfmt::skip]
async fn azure_end_to_end() {
    end_to_end("AZURE_API_KEY AZURE_BASE_URL={root}/openai/deployments/ignored/", &[
        ("azure/my-realtime", "/openai/v1/realtime", "model=my-realtime", Cred::ApiKey),
        ("azure/gpt-4o-transcribe&intent=transcription", "/openai/v1/realtime", "intent=transcription", Cred::ApiKey),
    ]).await;
    end_to_end("AZURE_API_KEY AZURE_BASE_URL={root}/openai AZURE_API_VERSION=2025-04-01-preview", &[
        ("azure/my-realtime", "/openai/realtime", "api-version=2025-04-01-preview&deployment=my-realtime", Cred::ApiKey),
        ("azure/gpt-4o-transcribe&intent=transcription", "/openai/realtime", "api-version=2025-04-01-preview&intent=transcription", Cred::ApiKey),
    ]).await;
}

#[tokio::test]
#[rustfmt::skip]
async fn xai_end_to_end() {
    end_to_end("XAI_API_KEY XAI_BASE_URL={root}/v1/", &[
        ("xai/grok-voice", "/v1/realtime", "model=grok-voice", Cred::Bearer),
    ]).await;
}

#[tokio::test]
#[rustfmt::skip]
async fn bailian_end_to_end_under_both_names() {
    end_to_end("DASHSCOPE_API_KEY BAILIAN_BASE_URL={root}/compatible-mode/v1", &[
        ("bailian/qwen-omni-turbo-realtime", "/api-ws/v1/realtime", "model=qwen-omni-turbo-realtime", Cred::Bearer),
        ("dashscope/qwen-omni-turbo-realtime", "/api-ws/v1/realtime", "model=qwen-omni-turbo-realtime", Cred::Bearer),
    ]).await;
}

#[tokio::test]
#[rustfmt::skip]
async fn zai_end_to_end_under_both_names_from_the_coding_plan_base() {
    end_to_end("ZAI_API_KEY ZAI_BASE_URL={root}/api/coding/paas/v4", &[
        ("zai/glm-realtime", "/api/paas/v4/realtime", "model=glm-realtime", Cred::Bearer),
        ("zhipu/glm-realtime", "/api/paas/v4/realtime", "model=glm-realtime", Cred::Bearer),
    ]).await;
}

#[tokio::test]
#[rustfmt::skip]
async fn compatible_end_to_end_with_every_auth_style() {
    let spec = "REALTIME_PROVIDERS=vllm,lab,second-openai VLLM_BASE_URL={root}/v1 \
                LAB_BASE_URL={root}/v1 LAB_API_KEY LAB_AUTH=api-key \
                SECOND_OPENAI_BASE_URL={root}/v1 SECOND_OPENAI_API_KEY";
    end_to_end(spec, &[
        ("vllm/Qwen/Qwen3-Omni", "/v1/realtime", "model=Qwen%2FQwen3-Omni", Cred::NoAuth),
        ("lab/m", "/v1/realtime", "model=m", Cred::ApiKey),
        ("second-openai/m", "/v1/realtime", "model=m", Cred::Bearer),
    ]).await;
}

#[tokio::test]
async fn each_session_keeps_the_key_it_was_given_in_turn() {
    let upstream = MockUpstream::echo().await.unwrap();
    let providers = Providers::from_vars([
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_API_KEY_2", KEY_2),
        ("OPENAI_BASE_URL", &upstream.base_url()),
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
    let root = root(&upstream);
    let providers = Providers::from_vars([
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_BASE_URL", &format!("{root}/openai/v1")),
        ("XAI_API_KEY", KEY_2),
        ("XAI_BASE_URL", &format!("{root}/xai/v1")),
        ("REALTIME_DEFAULT_PROVIDER", "XAI"),
        (
            "REALTIME_MODEL_ALIASES",
            "voice=openai/gpt-realtime, fast = grok-voice-fast",
        ),
    ])
    .unwrap();
    let (openai, xai) = (bearer(KEY), bearer(KEY_2));
    let cases = [
        ("grok-voice", "/xai/v1/realtime", "model=grok-voice", &xai),
        (
            "voice",
            "/openai/v1/realtime",
            "model=gpt-realtime",
            &openai,
        ),
        ("fast", "/xai/v1/realtime", "model=grok-voice-fast", &xai),
    ];
    for (model, path, query, credential) in cases {
        let received = session(providers.clone(), &upstream, model).await;
        assert_arrived(&received, path, query, Some(("authorization", credential)));
    }
}

#[tokio::test]
async fn unsupported_intents_and_missing_models_are_refused_before_dialling() {
    let upstream = MockUpstream::echo().await.unwrap();
    let gateway = serve_axum(RealtimeLayer::new(all_providers(&root(&upstream)))).await;
    let queries = WITHOUT_INTENTS
        .map(|name| {
            (
                format!("{name}/m&intent=transcription"),
                "unsupported_intent",
            )
        })
        .into_iter()
        .chain(
            ["openai", "azure"]
                .map(|name| (format!("{name}/m&intent=other"), "unsupported_intent")),
        )
        .chain(ALL.map(|name| (format!("{name}/"), "missing_model")));
    for (query, code) in queries {
        let (status, _, body) = refused(&gateway.url(&format!("?model={query}")), &[]).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["code"], code, "{query}");
    }
    assert_eq!(upstream.connections(), 0);
}

/// `PREFIX_MODELS` limits every provider the environment configures, under
/// every name it is registered by; unset, a provider has no allow-list.
#[test]
fn model_allow_lists_from_variables() {
    let providers = Providers::from_vars([
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_MODELS", "gpt-realtime, gpt-realtime-mini,,"),
        ("DASHSCOPE_API_KEY", KEY),
        ("DASHSCOPE_MODELS", "qwen-omni-turbo-realtime"),
        ("AZURE_API_KEY", KEY),
        ("AZURE_BASE_URL", "https://res.openai.azure.com"),
        ("AZURE_MODELS", "my-deployment"),
        ("XAI_API_KEY", KEY),
        ("ZAI_API_KEY", KEY),
        ("ZAI_MODELS", "glm-realtime"),
        ("REALTIME_PROVIDERS", "local-gpu,open"),
        ("LOCAL_GPU_BASE_URL", "http://127.0.0.1:8000/v1"),
        ("LOCAL_GPU_MODELS", "Qwen/Qwen3-Omni"),
        ("OPEN_BASE_URL", "http://127.0.0.1:8001/v1"),
        ("GEMINI_API_KEY", KEY),
        ("GEMINI_MODELS", "gemini-live-2.5-flash-preview"),
        ("VERTEX_API_KEY", KEY),
        (
            "VERTEX_MODELS",
            "gemini-live-2.5-flash, gemini-2.0-flash-live-preview-04-09",
        ),
    ])
    .unwrap();
    let allowed = |name: &str| {
        providers
            .allowed_models(name)
            .map(|models| models.collect::<Vec<_>>())
    };
    assert_eq!(
        allowed("openai"),
        Some(vec!["gpt-realtime", "gpt-realtime-mini"])
    );
    assert_eq!(allowed("bailian"), Some(vec!["qwen-omni-turbo-realtime"]));
    assert_eq!(allowed("dashscope"), Some(vec!["qwen-omni-turbo-realtime"]));
    assert_eq!(allowed("azure"), Some(vec!["my-deployment"]));
    assert_eq!(allowed("zai"), Some(vec!["glm-realtime"]));
    assert_eq!(allowed("zhipu"), Some(vec!["glm-realtime"]));
    assert_eq!(allowed("local-gpu"), Some(vec!["Qwen/Qwen3-Omni"]));
    assert_eq!(
        allowed("gemini"),
        Some(vec!["gemini-live-2.5-flash-preview"])
    );
    assert_eq!(
        allowed("vertex"),
        Some(vec![
            "gemini-2.0-flash-live-preview-04-09",
            "gemini-live-2.5-flash"
        ])
    );
    assert_eq!(allowed("xai"), None);
    assert_eq!(allowed("open"), None);
    let vertex = Providers::from_vars([("VERTEX_API_KEY", KEY)]).unwrap();
    assert!(vertex.allowed_models("vertex").is_none());
}

/// In code, `allow_insecure_transport()` opts in to a key over plain
/// http/ws to a host other than loopback; without it the builder refuses.
#[test]
fn keys_in_clear_text_need_an_explicit_opt_in() {
    let lan = "http://10.0.0.5:8000/v1";
    let key = || Secret::new(KEY);
    let errors = [
        OpenAi::new(key()).base_url(lan).unwrap_err(),
        Xai::new(key()).base_url(lan).unwrap_err(),
        Bailian::new(key()).base_url(lan).unwrap_err(),
        Zai::new(key()).base_url(lan).unwrap_err(),
        Azure::new(lan, key()).unwrap_err(),
        Compatible::new(lan).unwrap().bearer(key()).unwrap_err(),
        Compatible::new(lan).unwrap().api_key(key()).unwrap_err(),
    ];
    for error in errors {
        let error = error.to_string();
        assert!(error.contains("clear text to `10.0.0.5`"), "{error}");
        assert!(!error.contains(KEY), "{error}");
    }
    let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    let request = TargetRequest::new("lan", "m", None, &parts);
    let allowed: [Box<dyn Provider>; 5] = [
        Box::new(
            OpenAi::new(key())
                .allow_insecure_transport()
                .base_url(lan)
                .unwrap(),
        ),
        Box::new(
            Xai::new(key())
                .allow_insecure_transport()
                .base_url(lan)
                .unwrap(),
        ),
        Box::new(
            Zai::new(key())
                .allow_insecure_transport()
                .base_url(lan)
                .unwrap(),
        ),
        Box::new(
            Compatible::new(lan)
                .unwrap()
                .allow_insecure_transport()
                .bearer(key())
                .unwrap(),
        ),
        // No key, nothing to protect.
        Box::new(Compatible::new(lan).unwrap()),
    ];
    for provider in allowed {
        let target = futures_util::FutureExt::now_or_never(provider.target(&request))
            .expect("built-in providers answer at once")
            .unwrap();
        assert_eq!(target.url().scheme(), "ws");
        assert_eq!(target.url().host_str(), Some("10.0.0.5"));
    }
}
