//! Opening a session on the first of a route's targets that accepts it.

use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use http::HeaderMap;
use http::request::Parts;

use super::plan::{Candidate, order};
use super::random::unit_random;
use super::{Attempt, DeploymentSlot};
use crate::accept::provider_timeout;
use crate::admission::Identity;
use crate::error::{ErrorType, Rejection};
use crate::layer::Config;
use crate::provider::{Protocol, TargetRequest};
use crate::route::{Route, RouteTarget};
use crate::secret::Secret;
use crate::upstream::{UpstreamSocket, fails_over, retry_after};
use crate::usage::telemetry;

/// A session's upstream, connected, and what it took.
pub(crate) struct Connected {
    pub(crate) upstream: UpstreamSocket,
    /// The schema the upstream speaks (translated when not OpenAI's).
    pub(crate) protocol: Protocol,
    /// The target that accepted the session.
    pub(crate) target: RouteTarget,
    /// The client's intent, for dialling the same target again.
    pub(crate) intent: Option<String>,
    pub(crate) pcm_input_rate: u32,
    pub(crate) pcm_input_rates: Vec<u32>,
    pub(crate) secrets: Vec<Secret>,
    /// Every target tried, the one that accepted last.
    pub(crate) attempts: Vec<Attempt>,
    /// The session's place under its deployment's cap.
    pub(crate) slot: Option<DeploymentSlot>,
}

/// Dials the route's targets in the order of [`order`] until one accepts,
/// all within the connect timeout (each attempt gets an equal share of
/// what is left of it among the targets left to try). A target that fails for reasons of its
/// own is cooled down and the next is tried; a refusal that is the
/// request's fault (400, 404, 422) ends the attempt at once. When none
/// accepts, the client gets the last refusal (`503 too_many_sessions`
/// when every deployment was at its cap).
pub(crate) async fn connect(
    config: &Config,
    route: Route,
    parts: &Parts,
    identity: &Identity,
    forwarded: HeaderMap,
) -> Result<Connected, Rejection> {
    let health = config.providers.health();
    let budget = config.dialer.timeout;
    let started = Instant::now();
    let cooldowns = join_all(route.targets.iter().map(|target| async {
        match &target.deployment {
            Some(entry) => health.cooldown(entry.spec.selector()).await,
            None => None,
        }
    }))
    .await;
    let candidates: Vec<Candidate> = route
        .targets
        .iter()
        .zip(cooldowns)
        .map(|(target, cooldown)| match &target.deployment {
            Some(entry) => Candidate {
                tier: entry.spec.tier,
                weight: entry.spec.weight,
                live: entry.live(),
                cooldown,
            },
            None => Candidate {
                tier: 0,
                weight: 1,
                live: 0,
                cooldown: None,
            },
        })
        .collect();
    let mut attempts = Vec::new();
    let mut last_refusal = None;
    let mut full = 0;
    let order = order(&candidates, config.providers.balancing(), &mut unit_random);
    for (tried, &index) in order.iter().enumerate() {
        let target = &route.targets[index];
        let slot = match &target.deployment {
            Some(entry) => match entry.try_take() {
                Some(slot) => Some(slot),
                None => {
                    full += 1;
                    continue;
                }
            },
            None => None,
        };
        // The first attempt counts from the connect timeout itself, so that
        // a route of one target waits exactly that long.
        let elapsed = if tried == 0 {
            Duration::ZERO
        } else {
            started.elapsed()
        };
        let Some(remaining) = budget.checked_sub(elapsed).filter(|d| !d.is_zero()) else {
            break;
        };
        // An equal share of what is left for each target left to try, so
        // that one that never answers leaves time for the others.
        let share = remaining / u32::try_from(order.len() - tried).unwrap_or(u32::MAX);
        let name = selector(target);
        let attempt_started = Instant::now();
        let request = TargetRequest::new(
            &target.provider_name,
            &target.model,
            route.intent.as_deref(),
            parts,
        )
        .with_identity(identity);
        match dial(config, target, &request, &forwarded, share).await {
            Ok(opened) => {
                if target.deployment.is_some() {
                    health.succeeded(&name).await;
                    telemetry::deployment_attempt(&name, "opened");
                }
                attempts.push(Attempt::new(name, None, attempt_started.elapsed()));
                return Ok(Connected {
                    upstream: opened.0,
                    protocol: opened.1,
                    target: target.clone(),
                    intent: route.intent.clone(),
                    pcm_input_rate: opened.2,
                    pcm_input_rates: opened.3,
                    secrets: opened.4,
                    attempts,
                    slot,
                });
            }
            Err(failure) => {
                let (refusal, decided) = match failure {
                    Failure::Decided(refusal) => (refusal, true),
                    Failure::Dial(refusal) => (refusal, false),
                };
                attempts.push(Attempt::new(
                    name.clone(),
                    Some(refusal.code.clone().into_owned()),
                    attempt_started.elapsed(),
                ));
                if target.deployment.is_some() {
                    telemetry::deployment_attempt(&name, &refusal.code);
                }
                // A provider's own refusal of this request (a tenant's
                // quota, a forbidden intent) is not a broken deployment:
                // another deployment must not serve what it refused.
                let refused_the_request = decided && refusal.status.is_client_error();
                if refused_the_request || !fails_over(&refusal) {
                    return Err(refusal);
                }
                if target.deployment.is_some() {
                    health
                        .failed(&name, retry_after(&refusal, SystemTime::now()))
                        .await;
                    tracing::warn!(
                        deployment = name.as_str(),
                        code = refusal.code.as_ref(),
                        "deployment failed; trying the next"
                    );
                }
                last_refusal = Some(refusal);
            }
        }
    }
    Err(last_refusal.unwrap_or_else(|| {
        if full > 0 {
            all_full()
        } else {
            crate::upstream::timed_out(budget)
        }
    }))
}

/// The upstream socket, its protocol, the PCM input rates and the secrets of one target.
type Opened = (UpstreamSocket, Protocol, u32, Vec<u32>, Vec<Secret>);

/// Why an attempt failed.
enum Failure {
    /// The provider refused to build a target (`Provider::target`).
    Decided(Rejection),
    /// Dialling the target failed.
    Dial(Rejection),
}

async fn dial(
    config: &Config,
    route: &RouteTarget,
    request: &TargetRequest<'_>,
    forwarded: &HeaderMap,
    timeout: Duration,
) -> Result<Opened, Failure> {
    // Building the target and dialling get the attempt's time each, as a
    // single target always had.
    let target = match tokio::time::timeout(timeout, route.provider.target(request)).await {
        Ok(Ok(target)) => target,
        Ok(Err(error)) => return Err(Failure::Decided(error.into())),
        Err(_elapsed) => return Err(Failure::Dial(provider_timeout(timeout))),
    };
    let protocol = target.upstream_protocol().clone();
    let pcm_input_rate = target.default_pcm_input_rate();
    let pcm_input_rates = target.supported_pcm_input_rates();
    let secrets = target.secrets().to_vec();
    let upstream = config
        .dialer
        .dial(target, forwarded.clone(), timeout)
        .await
        .map_err(Failure::Dial)?;
    Ok((upstream, protocol, pcm_input_rate, pcm_input_rates, secrets))
}

/// The `provider/model` a target stands for.
fn selector(target: &RouteTarget) -> String {
    match &target.deployment {
        Some(entry) => entry.spec.selector().to_owned(),
        None => format!("{}/{}", target.provider_name, target.model),
    }
}

fn all_full() -> Rejection {
    Rejection::new(
        http::StatusCode::SERVICE_UNAVAILABLE,
        ErrorType::RateLimit,
        "too_many_sessions",
        "every deployment of this model is at its limit of concurrent sessions; retry shortly",
    )
    .retry_after(1)
}
