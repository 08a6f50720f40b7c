//! Admission: who may open a session, and as whom.
//!
//! `RealtimeLayer` answers realtime upgrades itself, before the service it
//! wraps, so an auth layer placed *inside* it (with `Router::layer`,
//! `route_layer`, or a `ServiceBuilder` layer after it) never sees an
//! upgrade. The layer therefore asks its own admission hook, registered
//! with [`RealtimeLayer::admission`](crate::RealtimeLayer::admission): it
//! sees the request head of every upgrade before anything is dialled (after
//! the handshake and origin checks, before routing), and either refuses it
//! with a [`Refusal`] (any status, a JSON body) or admits it as an
//! [`Identity`], which the session carries to its span, its usage records,
//! its summary and its provider.
//!
//! A layer must be told either way: with neither an admission hook nor
//! [`RealtimeLayer::allow_unauthenticated`](crate::RealtimeLayer::allow_unauthenticated),
//! every upgrade is refused with `500` (`admission_not_configured`), and the
//! first refusal logs an `ERROR` that says what to do. A mis-ordered stack
//! thus fails closed instead of giving the provider keys to everyone.
//!
//! Closures `Fn(&Parts) -> Result<Identity, Refusal>` are admission hooks;
//! [`async_fn`] makes one of a closure that returns a future, for hooks
//! that look keys up in a database or call an identity provider. Implement
//! [`Admission`] yourself for anything else.
//!
//! # Example
//!
//! ```
//! use http::request::Parts;
//! use tower_realtime::admission::{Refusal, client_token};
//! use tower_realtime::{Identity, Providers, RealtimeLayer};
//!
//! let layer = RealtimeLayer::new(Providers::new()).admission(|request: &Parts| {
//!     // A bearer token, or a browser's `openai-insecure-api-key.TOKEN` subprotocol.
//!     match client_token(&request.headers) {
//!         Some("key-of-alice") => Ok(Identity::new("alice")),
//!         _ => Err(Refusal::unauthorized("Missing or incorrect API key.")),
//!     }
//! });
//! # drop(layer);
//! ```

mod identity;
mod refusal;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderMap, StatusCode};

use crate::error::{ErrorType, Rejection};
use crate::handshake::offered_subprotocols;
use crate::layer::Config;

pub use identity::Identity;
pub use refusal::Refusal;

/// What an [`Admission`] hook answers, possibly later.
pub type AdmissionFuture<'a> = Pin<Box<dyn Future<Output = Result<Identity, Refusal>> + Send + 'a>>;

/// Decides whether an upgrade may open a session, and as whom; registered
/// with [`RealtimeLayer::admission`](crate::RealtimeLayer::admission).
///
/// It runs once per upgrade on the realtime path, before anything is
/// dialled. Its time counts against the layer's
/// [`connect_timeout`](crate::RealtimeLayer::connect_timeout): a hook that
/// takes longer is answered with `504` (`admission_timeout`).
///
/// The trait is object-safe. Closures `Fn(&Parts) -> Result<Identity, Refusal>`
/// implement it, and [`async_fn`] wraps closures that return a future.
///
/// # Example
///
/// A hook of your own type, which may await:
///
/// ```
/// use std::collections::HashMap;
/// use http::request::Parts;
/// use tower_realtime::admission::{Admission, AdmissionFuture, Refusal, client_token};
/// use tower_realtime::{Identity, Providers, RealtimeLayer};
///
/// struct Keys(HashMap<String, String>);
///
/// impl Admission for Keys {
///     fn admit<'a>(&'a self, request: &'a Parts) -> AdmissionFuture<'a> {
///         Box::pin(async move {
///             // e.g. `database.lookup(token).await`
///             client_token(&request.headers)
///                 .and_then(|token| self.0.get(token))
///                 .map(|name| Identity::new(name.as_str()))
///                 .ok_or_else(|| Refusal::unauthorized("Missing or incorrect API key."))
///         })
///     }
/// }
///
/// let keys = Keys(HashMap::from([("key-1".to_owned(), "alice".to_owned())]));
/// let layer = RealtimeLayer::new(Providers::new()).admission(keys);
/// # drop(layer);
/// ```
pub trait Admission: Send + Sync + 'static {
    /// Admits the upgrade whose request head is `request` as an
    /// [`Identity`], or refuses it.
    fn admit<'a>(&'a self, request: &'a Parts) -> AdmissionFuture<'a>;
}

impl<F> Admission for F
where
    F: Fn(&Parts) -> Result<Identity, Refusal> + Send + Sync + 'static,
{
    fn admit<'a>(&'a self, request: &'a Parts) -> AdmissionFuture<'a> {
        Box::pin(std::future::ready(self(request)))
    }
}

/// An admission hook of a closure that returns a future: it reads what it
/// needs from the request head, then returns a future that owns it.
///
/// # Example
///
/// ```
/// use http::request::Parts;
/// use tower_realtime::admission::{self, Refusal, client_token};
/// use tower_realtime::{Identity, Providers, RealtimeLayer};
///
/// async fn lookup(token: &str) -> Option<String> {
///     (token == "key-1").then(|| "alice".to_owned())
/// }
///
/// let layer = RealtimeLayer::new(Providers::new()).admission(admission::async_fn(|request: &Parts| {
///     let token = client_token(&request.headers).map(str::to_owned);
///     async move {
///         match token {
///             Some(token) => lookup(&token).await.map(Identity::new),
///             None => None,
///         }
///         .ok_or_else(|| Refusal::unauthorized("Missing or incorrect API key."))
///     }
/// }));
/// # drop(layer);
/// ```
pub fn async_fn<F, Fut>(f: F) -> AsyncFn<F>
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Identity, Refusal>> + Send + 'static,
{
    AsyncFn(f)
}

/// The [`Admission`] hook made by [`async_fn`].
#[derive(Clone, Copy)]
pub struct AsyncFn<F>(F);

impl<F> fmt::Debug for AsyncFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsyncFn").finish_non_exhaustive()
    }
}

impl<F, Fut> Admission for AsyncFn<F>
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Identity, Refusal>> + Send + 'static,
{
    fn admit<'a>(&'a self, request: &'a Parts) -> AdmissionFuture<'a> {
        Box::pin((self.0)(request))
    }
}

/// The token a client presents the way OpenAI's SDKs do:
/// `Authorization: Bearer TOKEN` or, from a browser (which cannot set
/// headers on a WebSocket), the subprotocol `openai-insecure-api-key.TOKEN`.
/// The header wins when both are present. Neither ever reaches the upstream.
///
/// # Example
///
/// ```
/// use http::HeaderMap;
/// use tower_realtime::admission::client_token;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("sec-websocket-protocol", "realtime, openai-insecure-api-key.tok-1".parse().unwrap());
/// assert_eq!(client_token(&headers), Some("tok-1"));
/// headers.insert("authorization", "Bearer tok-2".parse().unwrap());
/// assert_eq!(client_token(&headers), Some("tok-2"));
/// ```
pub fn client_token(headers: &HeaderMap) -> Option<&str> {
    match headers.get(AUTHORIZATION) {
        Some(value) => {
            let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
        }
        None => subprotocol_token(headers),
    }
}

/// Runs the layer's admission decision for one upgrade: its hook, or the
/// anonymous identity when unauthenticated sessions are allowed, or a
/// refusal when the layer was never told.
pub(crate) async fn admit(config: &Config, request: &Parts) -> Result<Identity, Rejection> {
    let Some(admission) = &config.admission else {
        if config.unauthenticated {
            return Ok(Identity::anonymous());
        }
        if !config.undecided_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "RealtimeLayer refuses every session: it has no admission hook. Call \
                 `RealtimeLayer::admission(...)` to authenticate clients, or \
                 `RealtimeLayer::allow_unauthenticated()` if that is intended"
            );
        }
        return Err(Rejection::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::Server,
            "admission_not_configured",
            "this gateway is not configured to admit sessions",
        ));
    };
    match tokio::time::timeout(config.dialer.timeout, admission.admit(request)).await {
        Ok(decision) => decision.map_err(Rejection::from),
        Err(_elapsed) => Err(Rejection::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorType::Server,
            "admission_timeout",
            format!(
                "admission took longer than {} ms",
                config.dialer.timeout.as_millis()
            ),
        )),
    }
}

/// The subprotocol prefix the OpenAI SDKs use to carry a token from a browser.
const TOKEN_PREFIX: &str = "openai-insecure-api-key.";

/// The token of an `openai-insecure-api-key.TOKEN` subprotocol, if offered.
pub(crate) fn subprotocol_token(headers: &HeaderMap) -> Option<&str> {
    offered_subprotocols(headers).find_map(|offered| {
        let (prefix, token) = offered.split_at_checked(TOKEN_PREFIX.len())?;
        (prefix.eq_ignore_ascii_case(TOKEN_PREFIX) && !token.is_empty()).then_some(token)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn client_token_reads_the_header_or_the_subprotocol() {
        type Case = (
            &'static [(&'static str, &'static str)],
            Option<&'static str>,
        );
        let cases: [Case; 8] = [
            (&[("authorization", "Bearer k1")], Some("k1")),
            (&[("authorization", "bearer  k1 ")], Some("k1")),
            (&[("authorization", "Basic k1")], None),
            (&[("authorization", "Bearer ")], None),
            (
                &[(
                    "sec-websocket-protocol",
                    "realtime, OpenAI-Insecure-API-Key.k2",
                )],
                Some("k2"),
            ),
            (
                &[("sec-websocket-protocol", "openai-insecure-api-key.")],
                None,
            ),
            (
                &[
                    ("authorization", "Basic x"),
                    ("sec-websocket-protocol", "openai-insecure-api-key.k2"),
                ],
                None,
            ),
            (&[], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(client_token(&headers(pairs)), expected, "{pairs:?}");
        }
    }

    #[tokio::test]
    async fn closures_admit_at_once_and_async_fn_awaits() {
        let (parts, ()) = http::Request::get("/v1/realtime")
            .header("authorization", "Bearer k1")
            .body(())
            .unwrap()
            .into_parts();
        let sync = |request: &Parts| match client_token(&request.headers) {
            Some("k1") => Ok(Identity::new("alice")),
            _ => Err(Refusal::unauthorized("no")),
        };
        assert_eq!(sync.admit(&parts).await.unwrap().name(), "alice");
        let later = async_fn(|request: &Parts| {
            let token = client_token(&request.headers).map(str::to_owned);
            async move {
                tokio::task::yield_now().await;
                match token.as_deref() {
                    Some("k2") => Ok(Identity::new("bob")),
                    _ => Err(Refusal::forbidden("not_bob", "only bob")),
                }
            }
        });
        let refusal = later.admit(&parts).await.unwrap_err();
        assert_eq!(refusal.code(), "not_bob");
    }
}
