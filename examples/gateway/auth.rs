//! The gateway's own API keys: the admission hook of `RealtimeLayer`.

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use http::request::Parts;
use tower_realtime::Identity;
use tower_realtime::admission::{Admission, AdmissionFuture, Refusal, client_token};

/// The identity of the key in `GATEWAY_API_KEY`.
pub const DEFAULT_IDENTITY: &str = "default";

/// Admits sessions that present one of the gateway's keys, as the identity
/// that key names; refuses the others with `401` (`invalid_api_key`).
///
/// Clients present a key the way OpenAI's SDKs do: `Authorization: Bearer
/// KEY`, or from a browser the subprotocol `openai-insecure-api-key.KEY`.
/// Every key is compared, each in time that depends only on the lengths,
/// so the answer's timing tells nothing about which key came close.
/// Only the realtime path is guarded: the console and `/healthz` are public.
/// Clones share the keys.
#[derive(Clone)]
pub struct GatewayKeys {
    /// `(identity, key)`.
    keys: Arc<[(Identity, Vec<u8>)]>,
}

impl GatewayKeys {
    /// `keys` as `(identity, key)` pairs.
    pub fn new(keys: &[(String, String)]) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|(name, key)| (Identity::new(name.as_str()), key.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// The identity of the key that `headers` present, or the refusal.
    pub fn check(&self, headers: &HeaderMap) -> Result<Identity, Refusal> {
        client_token(headers)
            .and_then(|token| self.identify(token.as_bytes()))
            .ok_or_else(|| {
                Refusal::unauthorized(
                    "Missing or incorrect gateway API key. Send it as `Authorization: Bearer KEY` \
                     or, from a browser, as the subprotocol `openai-insecure-api-key.KEY`.",
                )
            })
    }

    fn identify(&self, token: &[u8]) -> Option<Identity> {
        let mut found = None;
        for (identity, key) in self.keys.iter() {
            // No early exit: every key is compared.
            if same(token, key) && found.is_none() {
                found = Some(identity.clone());
            }
        }
        found
    }
}

impl Admission for GatewayKeys {
    fn admit<'a>(&'a self, request: &'a Parts) -> AdmissionFuture<'a> {
        Box::pin(std::future::ready(self.check(&request.headers)))
    }
}

impl fmt::Debug for GatewayKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let identities: Vec<&str> = self.keys.iter().map(|(id, _)| id.name()).collect();
        f.debug_struct("GatewayKeys")
            .field("identities", &identities)
            .field("keys", &"***")
            .finish()
    }
}

/// Compares two keys in time that depends on their lengths only.
fn same(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}
