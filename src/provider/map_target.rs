//! [`map_target`]: a provider that adjusts another provider's target.

use std::fmt;

use super::{Provider, Target, TargetError, TargetFuture, TargetRequest};

/// A provider that builds its target with `provider`, then passes it
/// through `f` (with the request): to add a header from the session's
/// identity, refuse some sessions, and so on, without writing a
/// [`Provider`] of your own. `f` runs after `provider` has answered.
///
/// # Example
///
/// `OpenAI-Safety-Identifier` from the admitted identity:
///
/// ```
/// use http::{HeaderName, HeaderValue};
/// use tower_realtime::provider::{self, OpenAi, Target, TargetError, TargetRequest};
/// use tower_realtime::{Providers, Secret};
///
/// let openai = provider::map_target(
///     OpenAi::new(Secret::new("sk-...")),
///     |target: Target, request: &TargetRequest<'_>| {
///         let user = HeaderValue::from_str(request.identity().name())
///             .map_err(|_| TargetError::misconfigured("an identity that is no header value"))?;
///         Ok(target.header(HeaderName::from_static("openai-safety-identifier"), user))
///     },
/// );
/// let providers = Providers::new().with("openai", openai);
/// # drop(providers);
/// ```
pub fn map_target<P, F>(provider: P, f: F) -> MapTarget<P, F>
where
    P: Provider,
    F: Fn(Target, &TargetRequest<'_>) -> Result<Target, TargetError> + Send + Sync + 'static,
{
    MapTarget { provider, f }
}

/// The [`Provider`] made by [`map_target`].
#[derive(Clone)]
pub struct MapTarget<P, F> {
    provider: P,
    f: F,
}

impl<P: fmt::Debug, F> fmt::Debug for MapTarget<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapTarget")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl<P, F> Provider for MapTarget<P, F>
where
    P: Provider,
    F: Fn(Target, &TargetRequest<'_>) -> Result<Target, TargetError> + Send + Sync + 'static,
{
    fn target<'a>(&'a self, request: &'a TargetRequest<'_>) -> TargetFuture<'a> {
        Box::pin(async move {
            let target = self.provider.target(request).await?;
            (self.f)(target, request)
        })
    }
}
