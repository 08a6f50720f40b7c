//! Google service-account credentials: a signed JWT exchanged for an OAuth
//! access token, cached and refreshed before it expires.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use data_encoding::{BASE64, BASE64URL_NOPAD};
use rustls::SignatureScheme;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::SigningKey;
use serde_json::{Value, json};
use url::{Url, form_urlencoded};

use super::ConfigError;
use super::token_client::post_form;
use crate::secret::Secret;

/// Google's token endpoint, where keys that name none exchange their JWTs.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The scope Vertex AI needs.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How long the requested token lives (Google's maximum).
const LIFETIME: Duration = Duration::from_secs(3600);
/// How long a token request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why no access token could be had. The message names no secret (no key,
/// no assertion, no token).
///
/// # Example
///
/// ```
/// use tower_realtime::provider::ServiceAccount;
///
/// let error = ServiceAccount::from_json("{}").unwrap_err();
/// assert!(error.to_string().contains("service account"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError(String);

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TokenError {}

/// A Google service account (the JSON key file that
/// `GOOGLE_APPLICATION_CREDENTIALS` names), as a source of OAuth access
/// tokens for Vertex AI.
///
/// [`ServiceAccount::token`] signs a JWT (RS256) with the account's key,
/// exchanges it at the key's `token_uri` (JWT bearer grant), and caches the
/// token until shortly before it expires; concurrent callers share one
/// request. Clones share the cache. `Debug` shows the account's e-mail and
/// token URI, never the key or a token.
///
/// # Example
///
/// ```no_run
/// use tower_realtime::provider::ServiceAccount;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let account = ServiceAccount::from_file("/etc/gateway/service-account.json")?;
/// let token = account.token().await?;
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServiceAccount {
    inner: Arc<Inner>,
    refresh_before: Duration,
}

struct Inner {
    client_email: String,
    key_id: Option<String>,
    key: Arc<dyn SigningKey>,
    token_uri: Url,
    tls: Option<Arc<rustls::ClientConfig>>,
    cached: Mutex<Option<Token>>,
    /// Held while one caller fetches, so the others wait for its token.
    fetching: tokio::sync::Mutex<()>,
    /// Tokens fetched so far.
    fetches: AtomicU64,
}

#[derive(Clone)]
struct Token {
    value: Secret,
    expires_at: Instant,
}

impl ServiceAccount {
    /// Reads a service-account key file (`"type": "service_account"`).
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::new(format!("cannot read {}: {error}", path.display()))
        })?;
        Self::from_json(&json)
    }

    /// Reads the JSON of a service-account key. Errors name the missing or
    /// invalid field, never its value.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let invalid =
            |what: &str| ConfigError::new(format!("not a usable service account key: {what}"));
        let key: Value = serde_json::from_str(json).map_err(|_| invalid("not JSON"))?;
        match key.get("type").and_then(Value::as_str) {
            Some("service_account") => {}
            Some(other) => {
                return Err(invalid(&format!(
                    "credentials of type `{other}`; use a service account key or an API key"
                )));
            }
            None => return Err(invalid("no `type`")),
        }
        let text = |field: &str| {
            key.get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let client_email = text("client_email").ok_or_else(|| invalid("no `client_email`"))?;
        let pem = text("private_key").ok_or_else(|| invalid("no `private_key`"))?;
        let der = pem_body(pem).ok_or_else(|| invalid("`private_key` is not a PEM private key"))?;
        // Signed with the crypto provider TLS uses (ring or aws-lc-rs).
        let provider = crate::upstream::tls::provider().ok_or_else(|| {
            ConfigError::new(
                "no crypto provider to sign service account tokens: enable the `ring` or `aws-lc-rs` feature of tower-realtime, or install a rustls default provider",
            )
        })?;
        let private_key = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)))
            .ok()
            .filter(|key| {
                key.choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA256])
                    .is_some()
            })
            .ok_or_else(|| invalid("`private_key` is not an RSA PKCS#8 key"))?;
        let token_uri = Url::parse(text("token_uri").unwrap_or(DEFAULT_TOKEN_URI))
            .ok()
            .filter(|url| matches!(url.scheme(), "https" | "http") && url.host_str().is_some())
            .ok_or_else(|| invalid("`token_uri` is not an http(s) URL"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client_email: client_email.to_owned(),
                key_id: text("private_key_id").map(str::to_owned),
                key: private_key,
                token_uri,
                tls: crate::upstream::tls::default_config(),
                cached: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
                fetches: AtomicU64::new(0),
            }),
            refresh_before: Duration::from_secs(300),
        })
    }

    /// Fetches a new token once the cached one has less than `margin` left
    /// (default 5 minutes), so no session starts with a token about to expire.
    #[must_use]
    pub fn refresh_before(mut self, margin: Duration) -> Self {
        self.refresh_before = margin;
        self
    }

    /// The account's e-mail address.
    pub fn client_email(&self) -> &str {
        &self.inner.client_email
    }

    /// An access token: the cached one while it has more than the refresh
    /// margin left, else a new one from the token endpoint.
    pub async fn token(&self) -> Result<Secret, TokenError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let seen = self.inner.fetches.load(Ordering::SeqCst);
        let _fetching = self.inner.fetching.lock().await;
        // Another caller may have fetched one while this one waited: take it
        // (even within the margin: it is as new as tokens get).
        if self.inner.fetches.load(Ordering::SeqCst) != seen
            && let Some(token) = self.cached_token()
        {
            return Ok(token);
        }
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let token = self.fetch().await?;
        let value = token.value.clone();
        *self.inner.cached.lock().expect("token cache lock") = Some(token);
        self.inner.fetches.fetch_add(1, Ordering::SeqCst);
        Ok(value)
    }

    /// The cached token if it has not expired (it may be within the
    /// refresh margin), without any I/O.
    pub fn cached_token(&self) -> Option<Secret> {
        let cached = self.inner.cached.lock().expect("token cache lock");
        cached
            .as_ref()
            .filter(|token| token.expires_at > Instant::now())
            .map(|token| token.value.clone())
    }

    /// Whether the next [`token`](Self::token) call would fetch.
    pub fn needs_refresh(&self) -> bool {
        self.fresh().is_none()
    }

    fn fresh(&self) -> Option<Secret> {
        let cached = self.inner.cached.lock().expect("token cache lock");
        cached
            .as_ref()
            .filter(|token| token.expires_at > Instant::now() + self.refresh_before)
            .map(|token| token.value.clone())
    }

    async fn fetch(&self) -> Result<Token, TokenError> {
        let requested = Instant::now();
        let assertion = self.assertion()?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        let (status, body) = post_form(
            &self.inner.token_uri,
            form,
            self.inner.tls.as_ref(),
            TIMEOUT,
        )
        .await
        .map_err(|error| TokenError(format!("service account token: {}", error.0)))?;
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            // OAuth errors name their kind (`invalid_grant`): safe to show.
            let kind = answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let kind: String = kind
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(TokenError(format!(
                "service account token: the token endpoint answered {status} ({kind})"
            )));
        }
        let value = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                TokenError("service account token: no access_token in the answer".into())
            })?;
        let lifetime = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .map_or(LIFETIME, Duration::from_secs);
        Ok(Token {
            value: Secret::new(value),
            expires_at: requested + lifetime,
        })
    }

    /// The signed JWT for the bearer grant.
    fn assertion(&self) -> Result<String, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(id) = &self.inner.key_id {
            header["kid"] = id.clone().into();
        }
        let claims = json!({
            "iss": self.inner.client_email,
            "scope": SCOPE,
            "aud": self.inner.token_uri.as_str(),
            "iat": now,
            "exp": now + LIFETIME.as_secs(),
        });
        let signed = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
        );
        let signature = self
            .inner
            .key
            .choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA256])
            .and_then(|signer| signer.sign(signed.as_bytes()).ok())
            .ok_or_else(|| TokenError("service account token: signing failed".into()))?;
        Ok(format!("{signed}.{}", BASE64URL_NOPAD.encode(&signature)))
    }
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.inner.client_email)
            .field("token_uri", &self.inner.token_uri.as_str())
            .finish_non_exhaustive()
    }
}

/// The DER bytes inside a `-----BEGIN PRIVATE KEY-----` PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem[start..].find("-----END PRIVATE KEY-----")? + start;
    let base64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    BASE64.decode(base64.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};

    const KEY: &str = include_str!("../../tests/fixtures/service-account.json");

    #[test]
    fn signs_a_jwt_google_can_verify() {
        let account = ServiceAccount::from_json(KEY).unwrap();
        let jwt = account.assertion().unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&BASE64URL_NOPAD.decode(parts[0].as_bytes()).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": "test-key-1"})
        );
        let claims: Value =
            serde_json::from_slice(&BASE64URL_NOPAD.decode(parts[1].as_bytes()).unwrap()).unwrap();
        assert_eq!(
            claims["iss"],
            "gateway@test-project.iam.gserviceaccount.com"
        );
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
        let key: Value = serde_json::from_str(KEY).unwrap();
        let der = pem_body(key["private_key"].as_str().unwrap()).unwrap();
        let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public().as_ref());
        let signature = BASE64URL_NOPAD.decode(parts[2].as_bytes()).unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("a valid RS256 signature");
    }

    #[test]
    fn bad_keys_are_refused_without_showing_them() {
        let mut key: Value = serde_json::from_str(KEY).unwrap();
        key["private_key"] = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n".into();
        let error = ServiceAccount::from_json(&key.to_string())
            .unwrap_err()
            .to_string();
        assert!(error.contains("RSA PKCS#8"), "{error}");
        assert!(!error.contains("c2VjcmV0"), "{error}");
        let error =
            ServiceAccount::from_json(r#"{"type":"authorized_user","refresh_token":"rt-secret"}"#)
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("authorized_user") && !error.contains("rt-secret"),
            "{error}"
        );
        let account = ServiceAccount::from_json(KEY).unwrap();
        let shown = format!("{account:?}");
        assert!(
            !shown.contains("PRIVATE") && shown.contains("gateway@"),
            "{shown}"
        );
        assert!(account.needs_refresh() && account.cached_token().is_none());
    }
}
