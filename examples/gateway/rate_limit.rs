//! A limit on how often each client IP may open realtime sessions.
//!
//! A token bucket per IP: `per_minute` sessions at once, then one more every
//! `60 / per_minute` seconds. Only WebSocket upgrades on the realtime path
//! count, so the console, `/healthz` and everything else are never limited.
//! tower's `RateLimit` delays requests instead of refusing them and counts
//! every request; `tower_governor` also limits every request it wraps and
//! answers in its own format. This layer refuses with `429`, `Retry-After`
//! and an OpenAI-shaped body, like the gateway's own refusals.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use futures_util::future::Either;
use http::header::{HeaderValue, RETRY_AFTER, UPGRADE};
use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::refusal::refusal;

/// Clients tracked at most before full buckets are forgotten.
const TRACKED: usize = 10_000;

#[derive(Clone)]
pub struct SessionRateLimitLayer {
    path: Arc<str>,
    buckets: Arc<Buckets>,
}

impl SessionRateLimitLayer {
    /// At most `per_minute` new sessions per client IP and minute on `path`.
    pub fn per_minute(path: &str, per_minute: u32) -> Self {
        Self {
            path: path.into(),
            buckets: Arc::new(Buckets {
                capacity: f64::from(per_minute),
                per_second: f64::from(per_minute) / 60.0,
                by_ip: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl<S> Layer<S> for SessionRateLimitLayer {
    type Service = SessionRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionRateLimit {
            inner,
            limit: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct SessionRateLimit<S> {
    inner: S,
    limit: SessionRateLimitLayer,
}

impl<S, B> Service<Request<B>> for SessionRateLimit<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if request.uri().path() == &*self.limit.path && is_upgrade(&request) {
            let ip = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
            if let Err(wait) = self.limit.buckets.take(ip, Instant::now()) {
                return Either::Right(ready(Ok(too_many(wait))));
            }
        }
        Either::Left(self.inner.call(request))
    }
}

/// A WebSocket upgrade over HTTP/1.1, or an extended CONNECT over HTTP/2.
fn is_upgrade<B>(request: &Request<B>) -> bool {
    request.method() == Method::CONNECT
        || request
            .headers()
            .get(UPGRADE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

fn too_many(wait: Duration) -> Response<Body> {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = refusal(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "rate_limit_exceeded",
        &format!("Too many new realtime sessions from your address; retry in {seconds} s."),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

struct Buckets {
    capacity: f64,
    per_second: f64,
    by_ip: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refilled(self, buckets: &Buckets, now: Instant) -> f64 {
        let earned = now.duration_since(self.updated).as_secs_f64() * buckets.per_second;
        (self.tokens + earned).min(buckets.capacity)
    }
}

impl Buckets {
    /// Takes one session from `ip`'s bucket, or says how long until one is there.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut by_ip = self.by_ip.lock().expect("rate limit lock");
        if by_ip.len() >= TRACKED {
            by_ip.retain(|_, bucket| bucket.refilled(self, now) < self.capacity);
        }
        let bucket = by_ip.entry(ip).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        let tokens = bucket.refilled(self, now);
        *bucket = Bucket {
            tokens,
            updated: now,
        };
        if tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }
}
