//! Which browser origins may open sessions (cross-site WebSocket hijacking).

use http::StatusCode;
use http::header::{HeaderMap, ORIGIN};

use crate::error::{ErrorType, Rejection};

/// The origins allowed to open sessions.
///
/// Browsers always send `Origin` on a WebSocket handshake and cannot forge
/// it; other clients usually send none. The default, [`OriginPolicy::any`],
/// checks nothing, which suits gateways whose clients authenticate with a
/// token. When browsers authenticate with ambient credentials (cookies), use
/// an allow-list. A refused origin gets `403` before anything is dialled.
///
/// Entries are `scheme://host[:port]`; `scheme://*.domain[:port]` allows every
/// subdomain of `domain` (not `domain` itself). Matching ignores ASCII case.
///
/// # Example
///
/// ```
/// use tower_realtime::OriginPolicy;
///
/// let policy = OriginPolicy::allow(["https://app.example.com", "https://*.example.org"])
///     .allow_missing(false);
/// assert!(policy.allows(Some("https://app.example.com")));
/// assert!(policy.allows(Some("https://eu.example.org")));
/// assert!(!policy.allows(Some("https://example.org")));
/// assert!(!policy.allows(Some("https://evil-example.org")));
/// assert!(!policy.allows(None));
/// ```
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    rule: Rule,
    allow_missing: bool,
}

#[derive(Debug, Clone)]
enum Rule {
    Any,
    List {
        exact: Vec<String>,
        wildcard: Vec<Wildcard>,
    },
}

/// `scheme://*.suffix[:port]`, kept as the prefix before `*` and the part after it.
#[derive(Debug, Clone)]
struct Wildcard {
    scheme: String,
    /// `.domain[:port]`, with the leading dot.
    suffix: String,
}

impl Default for OriginPolicy {
    fn default() -> Self {
        Self::any()
    }
}

impl OriginPolicy {
    /// Allows every origin, and requests without one.
    pub fn any() -> Self {
        Self {
            rule: Rule::Any,
            allow_missing: true,
        }
    }

    /// Allows only the listed origins, and requests without `Origin`
    /// (non-browser clients) unless [`OriginPolicy::allow_missing`] says otherwise.
    ///
    /// # Panics
    ///
    /// When an entry is not `scheme://host[:port]` or `scheme://*.domain[:port]`.
    pub fn allow<I, T>(origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut exact = Vec::new();
        let mut wildcard = Vec::new();
        for origin in origins {
            let origin = origin.as_ref().trim().to_ascii_lowercase();
            let (scheme, rest) = origin
                .split_once("://")
                .filter(|(scheme, rest)| {
                    !scheme.is_empty() && !rest.is_empty() && !rest.contains('/')
                })
                .unwrap_or_else(|| panic!("origin `{origin}` must be scheme://host[:port]"));
            match rest.strip_prefix('*') {
                Some(suffix) => {
                    assert!(
                        suffix.starts_with('.') && suffix.len() > 1 && !suffix.contains('*'),
                        "wildcard origin `{origin}` must be scheme://*.domain[:port]"
                    );
                    wildcard.push(Wildcard {
                        scheme: scheme.to_owned(),
                        suffix: suffix.to_owned(),
                    });
                }
                None => exact.push(origin),
            }
        }
        Self {
            rule: Rule::List { exact, wildcard },
            allow_missing: true,
        }
    }

    /// Whether requests without an `Origin` header are allowed (default: yes).
    #[must_use]
    pub fn allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// Whether a request with this `Origin` (or none) may open a session.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return self.allow_missing;
        };
        match &self.rule {
            Rule::Any => true,
            Rule::List { exact, wildcard } => {
                let origin = origin.trim().to_ascii_lowercase();
                exact.contains(&origin) || wildcard.iter().any(|w| w.matches(&origin))
            }
        }
    }

    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let mut values = headers.get_all(ORIGIN).iter();
        let origin = match (values.next(), values.next()) {
            (None, _) => None,
            (Some(value), None) => Some(value.to_str().unwrap_or("\u{fffd}")),
            (Some(_), Some(_)) => Some("\u{fffd}"),
        };
        if self.allows(origin) {
            return Ok(());
        }
        let message = match origin {
            None => "requests without an Origin header are not allowed".to_owned(),
            Some(_) => "this origin is not allowed to open realtime sessions".to_owned(),
        };
        Err(Rejection::new(
            StatusCode::FORBIDDEN,
            ErrorType::Permission,
            "origin_not_allowed",
            message,
        ))
    }
}

impl Wildcard {
    fn matches(&self, origin: &str) -> bool {
        let Some(rest) = origin
            .strip_prefix(self.scheme.as_str())
            .and_then(|rest| rest.strip_prefix("://"))
        else {
            return false;
        };
        // At least one non-empty label before the suffix, and no path.
        rest.len() > self.suffix.len()
            && rest.ends_with(self.suffix.as_str())
            && !rest.contains('/')
            && !rest[..rest.len() - self.suffix.len()].ends_with('.')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_wildcard_and_missing() {
        let policy = OriginPolicy::allow(["https://App.example.com", "http://*.local.test:8080"]);
        for (origin, allowed) in [
            (Some("https://app.example.com"), true),
            (Some("HTTPS://APP.EXAMPLE.COM"), true),
            (Some("http://app.example.com"), false),
            (Some("https://app.example.com:443"), false),
            (Some("http://a.local.test:8080"), true),
            (Some("http://a.b.local.test:8080"), true),
            (Some("http://local.test:8080"), false),
            (Some("http://.local.test:8080"), false),
            (Some("http://a.local.test"), false),
            (Some("http://a.local.test:80801"), false),
            (Some("https://a.local.test:8080"), false),
            (Some("null"), false),
            (None, true),
        ] {
            assert_eq!(policy.allows(origin), allowed, "{origin:?}");
        }
        assert!(!policy.clone().allow_missing(false).allows(None));
        assert!(OriginPolicy::any().allows(Some("null")));
    }

    #[test]
    #[should_panic(expected = "scheme://host")]
    fn malformed_entries_panic() {
        let _ = OriginPolicy::allow(["example.com"]);
    }
}
