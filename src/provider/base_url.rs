//! Turning a configured HTTP(S) base URL into a WebSocket base URL.

use std::fmt;

use url::Url;

/// A provider configuration that cannot work, found at start-up.
///
/// # Example
///
/// ```
/// use tower_realtime::provider::websocket_base_url;
///
/// let error = websocket_base_url("ftp://example.com").unwrap_err();
/// assert!(error.to_string().contains("ftp"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// A configuration error with a message for the operator.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses a provider base URL and maps its scheme to WebSocket: `https` →
/// `wss`, `http` → `ws`; `ws` and `wss` are kept. Any other scheme, a URL
/// without a host, one with a user name or password (keys belong in a
/// [`Secret`](crate::Secret), where they cannot leak into a message), or one
/// with a query or fragment is a [`ConfigError`].
/// Trailing slashes are removed from the path.
///
/// # Example
///
/// ```
/// use tower_realtime::provider::websocket_base_url;
///
/// let url = websocket_base_url("https://api.openai.com/v1/").unwrap();
/// assert_eq!(url.as_str(), "wss://api.openai.com/v1");
/// let local = websocket_base_url("http://127.0.0.1:8000").unwrap();
/// assert_eq!(local.as_str(), "ws://127.0.0.1:8000/");
/// ```
pub fn websocket_base_url(base: &str) -> Result<Url, ConfigError> {
    let parsed = Url::parse(base.trim()).map_err(|error| {
        ConfigError::new(format!("invalid base URL `{}`: {error}", shown(base)))
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::new(
            "a base URL must not contain a user name or password; configure the key separately",
        ));
    }
    let scheme = match parsed.scheme() {
        "https" | "wss" => "wss",
        "http" | "ws" => "ws",
        other => {
            return Err(ConfigError::new(format!(
                "base URL `{}` has scheme `{other}`; use https, http, wss or ws",
                shown(base)
            )));
        }
    };
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(format!(
            "base URL `{}` has no host",
            shown(base)
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::new(format!(
            "base URL `{}` must not have a query or fragment (keys go in their own setting)",
            shown(base)
        )));
    }
    // `Url::set_scheme` refuses to switch between special and non-special
    // schemes only; http(s) and ws(s) are all special, so this cannot fail.
    let mut url = parsed;
    url.set_scheme(scheme).map_err(|()| {
        ConfigError::new(format!(
            "base URL `{}` cannot use scheme {scheme}",
            shown(base)
        ))
    })?;
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

/// What an error message may show of a configured base URL:
/// `scheme://host[:port]`, never a user name, password, path, query or
/// fragment, any of which may hold a key (`?key=…`). A string that does not
/// parse as a URL is cut the same way: its scheme and host, as far as they
/// can be told apart.
fn shown(base: &str) -> String {
    let base = base.trim();
    if let Ok(url) = Url::parse(base) {
        let host = url.host_str().unwrap_or_default();
        return match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
    }
    let (scheme, rest) = match base.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, base),
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    match scheme {
        Some(scheme) => format!("{scheme}://{host}"),
        None => host.to_owned(),
    }
}

/// Refuses a base URL that would carry a key in clear text: plain `ws` to a
/// host other than loopback (`localhost`, `127.0.0.0/8`, `::1`). `opt_in`
/// says how to allow it anyway, if it can be.
pub(crate) fn refuse_clear_text_key(url: &Url, opt_in: Option<&str>) -> Result<(), ConfigError> {
    if url.scheme() != "ws" || is_loopback(url) {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    let allow = opt_in
        .map(|opt_in| format!(", or allow it explicitly with {opt_in}"))
        .unwrap_or_default();
    Err(ConfigError::new(format!(
        "a key would travel in clear text to `{host}` (plain http/ws to a host other than \
         loopback); use https{allow}"
    )))
}

/// The WebSocket form of `base` for a provider that sends a key, refused
/// when the key would travel in clear text and `insecure_transport` was not
/// allowed (with `allow_insecure_transport()`).
pub(crate) fn keyed_base_url(base: &str, insecure_transport: bool) -> Result<Url, ConfigError> {
    let url = websocket_base_url(base)?;
    if !insecure_transport {
        refuse_clear_text_key(&url, Some("`allow_insecure_transport()`"))?;
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.to_canonical().is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_clear_text_only_to_loopback() {
        for allowed in [
            "https://api.openai.com/v1",
            "wss://10.0.0.5/v1",
            "http://127.0.0.1:8000/v1",
            "http://127.1.2.3/v1",
            "ws://localhost:9000",
            "http://[::1]:8000",
            "http://[::ffff:127.0.0.1]:8000",
        ] {
            let url = websocket_base_url(allowed).unwrap();
            assert!(refuse_clear_text_key(&url, None).is_ok(), "{allowed}");
        }
        for refused in [
            "http://10.0.0.5:8000/v1",
            "ws://gpu.internal/v1",
            "http://localhost.example.com",
            "http://[2001:db8::1]",
            "http://0.0.0.0:8000",
        ] {
            let url = websocket_base_url(refused).unwrap();
            let error = refuse_clear_text_key(&url, Some("`x`")).unwrap_err();
            assert!(
                error.to_string().contains("clear text"),
                "{refused}: {error}"
            );
            assert!(
                error
                    .to_string()
                    .ends_with("use https, or allow it explicitly with `x`")
            );
        }
    }

    #[test]
    fn maps_schemes_and_trims_slashes() {
        let cases = [
            ("https://api.openai.com/v1", "wss://api.openai.com/v1"),
            ("https://api.openai.com/v1///", "wss://api.openai.com/v1"),
            ("http://127.0.0.1:9000/v1", "ws://127.0.0.1:9000/v1"),
            ("wss://example.com/x/", "wss://example.com/x"),
            ("ws://[::1]:1/", "ws://[::1]:1/"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                websocket_base_url(input).unwrap().as_str(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_what_cannot_be_dialled() {
        for input in [
            "ftp://example.com",
            "file:///tmp/x",
            "example.com/v1",
            "https://example.com/v1?x=1",
            "https://example.com/v1#frag",
            "https://user:pass@example.com/v1",
            "",
        ] {
            assert!(websocket_base_url(input).is_err(), "{input}");
        }
    }

    #[test]
    fn credentials_in_a_base_url_are_refused_without_repeating_them() {
        let error = websocket_base_url("https://user:sk-in-url@example.com").unwrap_err();
        assert!(!error.to_string().contains("sk-in-url"), "{error}");
    }

    #[test]
    fn errors_show_scheme_host_and_port_only() {
        let cases = [
            (
                "https://host.example/?key=AIzaSECRET",
                "base URL `https://host.example` must not have a query or fragment",
            ),
            (
                "https://host.example:8443/v1beta?key=AIzaSECRET#frag",
                "base URL `https://host.example:8443` must not have a query",
            ),
            (
                "ftp://files.example:2121/AIzaSECRET?key=AIzaSECRET",
                "base URL `ftp://files.example:2121` has scheme `ftp`",
            ),
            (
                "https://user:pass-SECRET@host.example/?key=AIzaSECRET",
                "a base URL must not contain a user name or password",
            ),
            (
                "https://user:pass-SECRET@[::1/AIzaSECRET?key=AIzaSECRET",
                "invalid base URL `https://[::1`: ",
            ),
            (
                "host.example/AIzaSECRET?key=AIzaSECRET",
                "invalid base URL `host.example`: ",
            ),
            (
                "file:///AIzaSECRET?key=AIzaSECRET",
                "base URL `file://` has scheme `file`",
            ),
        ];
        for (base, expected) in cases {
            let error = websocket_base_url(base).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{base}: {error}");
            assert!(!error.contains("SECRET"), "{base}: {error}");
        }
        assert_eq!(
            shown("https://user:pass@host.example:444/p?key=AIzaSECRET"),
            "https://host.example:444"
        );
        // Behind a provider too.
        let error = crate::provider::Gemini::new(crate::Secret::new("k"))
            .base_url("https://host.example/?key=AIzaSECRET")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("SECRET"), "{error}");
    }
}
