//! A credential that never prints itself.

use std::fmt;
use std::sync::Arc;

/// An upstream credential, such as a provider API key.
///
/// `Debug` and `Display` print `***`, so a `Secret` can sit inside any
/// configuration struct that is logged or traced without leaking. The only
/// way to read the value is [`Secret::expose`], which the dial code calls when
/// it builds the upstream request.
///
/// # Example
///
/// ```
/// use tower_realtime::Secret;
///
/// let key = Secret::new("sk-live-123");
/// assert_eq!(format!("{key:?} {key}"), "*** ***");
/// assert_eq!(key.expose(), "sk-live-123");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// Returns the credential itself. Call it only to hand the value to the
    /// upstream; never log or return what it gives.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Replaces every occurrence of any of `secrets` in `text` with `***`.
pub(crate) fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        let value = secret.expose();
        if !value.is_empty() && out.contains(value) {
            out = out.replace(value, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_occurrence() {
        let secrets = [Secret::new("sk-abc"), Secret::new("")];
        assert_eq!(
            redact("bad key sk-abc (sk-abc)", &secrets),
            "bad key *** (***)"
        );
    }
}
