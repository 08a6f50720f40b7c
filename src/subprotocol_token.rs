//! Browser tokens: `openai-insecure-api-key.TOKEN` as `Authorization: Bearer TOKEN`.

use std::task::{Context, Poll};

use http::Request;
use http::header::{AUTHORIZATION, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use tower_layer::Layer;
use tower_service::Service;

use crate::admission::subprotocol_token;
use crate::handshake::is_websocket_request;

/// Lets your auth layer see a browser's gateway token.
///
/// Browsers cannot set headers on a WebSocket, so the OpenAI SDKs send the
/// token as the subprotocol `openai-insecure-api-key.TOKEN`. This layer
/// copies it into `Authorization: Bearer TOKEN` (marked sensitive) when the
/// request has no `Authorization` header, so that an auth layer placed after
/// it (tower-http's `ValidateRequestHeaderLayer::custom`, or its deprecated
/// `::bearer`, or your own) works unchanged for browsers. Neither the header
/// nor the subprotocol token is ever forwarded upstream or echoed back by
/// [`RealtimeLayer`](crate::RealtimeLayer).
///
/// It acts on WebSocket upgrades only (HTTP/1.1 `Upgrade: websocket`, or an
/// HTTP/2 extended `CONNECT`); other requests pass untouched. On an upgrade
/// that carries a token, the `Sec-WebSocket-Protocol` values are marked
/// sensitive too, so that inner layers that log headers (tower-http's
/// `TraceLayer`, `SetSensitiveRequestHeadersLayer`) do not print the token.
/// An auth layer outside `RealtimeLayer` is what this is for (the realtime
/// layer then needs [`allow_unauthenticated`](crate::RealtimeLayer::allow_unauthenticated)).
/// An [admission hook](crate::admission) needs no such help:
/// [`client_token`](crate::admission::client_token) reads the subprotocol itself.
///
/// # Example
///
/// ```
/// use http::{Request, Response, StatusCode, header::AUTHORIZATION};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_http::validate_request::ValidateRequestHeaderLayer;
/// use tower_realtime::SubprotocolTokenLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(SubprotocolTokenLayer::new())
///     .layer(ValidateRequestHeaderLayer::custom(|request: &mut Request<String>| {
///         match request.headers().get(AUTHORIZATION) {
///             Some(value) if value == "Bearer gateway-token" => Ok(()),
///             _ => Err(Response::builder().status(StatusCode::UNAUTHORIZED).body(String::new()).unwrap()),
///         }
///     }))
///     .service(service_fn(|_request: Request<String>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(String::new()))
///     }));
/// let browser = Request::get("/v1/realtime")
///     .header("upgrade", "websocket")
///     .header("sec-websocket-protocol", "realtime, openai-insecure-api-key.gateway-token")
///     .body(String::new())
///     .unwrap();
/// assert_eq!(service.oneshot(browser).await.unwrap().status(), StatusCode::OK);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SubprotocolTokenLayer {
    _private: (),
}

impl SubprotocolTokenLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for SubprotocolTokenLayer {
    type Service = SubprotocolToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SubprotocolToken { inner }
    }
}

/// The service of [`SubprotocolTokenLayer`].
#[derive(Debug, Clone)]
pub struct SubprotocolToken<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for SubprotocolToken<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if is_websocket_request(&request)
            && let Some(bearer) = bearer_from_subprotocols(request.headers())
        {
            let headers = request.headers_mut();
            if let http::header::Entry::Occupied(mut protocols) =
                headers.entry(SEC_WEBSOCKET_PROTOCOL)
            {
                protocols
                    .iter_mut()
                    .for_each(|value| value.set_sensitive(true));
            }
            if !headers.contains_key(AUTHORIZATION) {
                headers.insert(AUTHORIZATION, bearer);
            }
        }
        self.inner.call(request)
    }
}

fn bearer_from_subprotocols(headers: &http::HeaderMap) -> Option<HeaderValue> {
    let token = subprotocol_token(headers)?;
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use std::future::{Ready, ready};

    use super::*;

    /// A service that answers with the request it got.
    struct Identity;

    impl Service<Request<()>> for Identity {
        type Response = Request<()>;
        type Error = ();
        type Future = Ready<Result<Request<()>, ()>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            ready(Ok(request))
        }
    }

    async fn lifted(protocols: &str, authorization: Option<&str>) -> Option<String> {
        let mut request = Request::new(());
        let headers = request.headers_mut();
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(protocols).unwrap(),
        );
        if let Some(existing) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(existing).unwrap());
        }
        let seen = SubprotocolTokenLayer::new()
            .layer(Identity)
            .call(request)
            .await
            .unwrap();
        let value = seen.headers().get(AUTHORIZATION)?;
        Some(value.to_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn lifts_the_token_unless_authorization_is_set() {
        let cases = [
            (
                "realtime, openai-insecure-api-key.tok-1",
                None,
                Some("Bearer tok-1"),
            ),
            (
                "realtime, OpenAI-Insecure-API-Key.tok-2",
                None,
                Some("Bearer tok-2"),
            ),
            (
                "openai-insecure-api-key.tok-1",
                Some("Bearer header"),
                Some("Bearer header"),
            ),
            ("realtime, openai-insecure-api-key.", None, None),
            ("realtime", None, None),
        ];
        for (protocols, authorization, expected) in cases {
            assert_eq!(
                lifted(protocols, authorization).await.as_deref(),
                expected,
                "{protocols}"
            );
        }
    }

    fn through_the_layer(request: Request<()>) -> Request<()> {
        let mut service = SubprotocolTokenLayer::new().layer(Identity);
        let seen = service.call(request);
        futures_util::FutureExt::now_or_never(seen)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn only_websocket_upgrades_are_touched() {
        let plain = Request::get("/anything")
            .header("sec-websocket-protocol", "openai-insecure-api-key.t")
            .body(())
            .unwrap();
        let seen = through_the_layer(plain);
        assert!(!seen.headers().contains_key(AUTHORIZATION));
        assert!(!seen.headers()["sec-websocket-protocol"].is_sensitive());

        let mut http2 = Request::connect("/v1/realtime")
            .version(http::Version::HTTP_2)
            .header("sec-websocket-protocol", "openai-insecure-api-key.t")
            .body(())
            .unwrap();
        http2
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        assert_eq!(
            through_the_layer(http2).headers()[AUTHORIZATION],
            "Bearer t"
        );
    }

    #[test]
    fn the_token_headers_are_sensitive() {
        let upgrade = Request::get("/v1/realtime")
            .header("upgrade", "websocket")
            .header("sec-websocket-protocol", "realtime")
            .header("sec-websocket-protocol", "openai-insecure-api-key.t")
            .body(())
            .unwrap();
        let seen = through_the_layer(upgrade);
        assert!(seen.headers()[AUTHORIZATION].is_sensitive());
        for value in seen.headers().get_all("sec-websocket-protocol") {
            assert!(value.is_sensitive());
        }
        // An upgrade without a token keeps its headers as they were.
        let upgrade = Request::get("/v1/realtime")
            .header("upgrade", "websocket")
            .header("sec-websocket-protocol", "realtime")
            .body(())
            .unwrap();
        assert!(!through_the_layer(upgrade).headers()["sec-websocket-protocol"].is_sensitive());
    }

    #[test]
    fn the_lifted_header_is_sensitive() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("openai-insecure-api-key.t"),
        );
        assert!(bearer_from_subprotocols(&headers).unwrap().is_sensitive());
    }
}
