//! How a provider's key travels upstream.

use http::HeaderName;

use super::{Keys, Target};

/// The credential header of an upstream handshake.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// No credential at all (a local or otherwise trusted endpoint).
    None,
    /// `Authorization: Bearer KEY`.
    Bearer(Keys),
    /// The bare key as the value of a header, e.g. Azure's `api-key`.
    Header(HeaderName, Keys),
}

impl Auth {
    /// The `api-key` header Azure OpenAI reads.
    pub(crate) const API_KEY: HeaderName = HeaderName::from_static("api-key");

    /// Adds this session's credential (the next key in rotation) to `target`.
    pub(crate) fn apply(&self, target: Target) -> Target {
        match self {
            Self::None => target,
            Self::Bearer(keys) => target.bearer(keys.pick()),
            Self::Header(name, keys) => target.api_key(name.clone(), keys.pick()),
        }
    }
}
