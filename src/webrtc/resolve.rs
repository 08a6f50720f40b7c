//! From a model selector to the provider's WebRTC endpoints.

use http::request::Parts;

use super::provider_calls::ProviderCalls;
use crate::accept::provider_timeout;
use crate::admission::Identity;
use crate::error::Rejection;
use crate::layer::Config;
use crate::provider::TargetRequest;
use crate::route::{self, RouteTarget};

/// The target `selector` routes to (an alias's first deployment) and its
/// WebRTC endpoints, built by the provider for `identity`.
pub(crate) async fn provider_calls(
    config: &Config,
    selector: &str,
    parts: &Parts,
    identity: &Identity,
) -> Result<(RouteTarget, ProviderCalls), Rejection> {
    let route = route::resolve_model(selector, None, &config.providers)?;
    let chosen = route
        .targets
        .into_iter()
        .next()
        .expect("a route has a target");
    let request = TargetRequest::new(&chosen.provider_name, &chosen.model, None, parts)
        .with_identity(identity);
    let timeout = config.dialer.timeout;
    let target = tokio::time::timeout(timeout, chosen.provider.target(&request))
        .await
        .map_err(|_| provider_timeout(timeout))??;
    let calls = ProviderCalls::new(target, config.dialer.tls.clone(), timeout)?;
    Ok((chosen, calls))
}
