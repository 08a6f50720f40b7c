//! Unguessable identifiers: gateway client secrets and call ids.

use data_encoding::BASE64URL_NOPAD;

/// The prefix of every gateway client secret.
pub(crate) const TOKEN_PREFIX: &str = "gw_ek_";
/// The prefix of every gateway call id.
pub(crate) const CALL_PREFIX: &str = "gw_call_";

/// `prefix` and 192 random bits from the operating system, URL-safe.
fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    format!("{prefix}{}", BASE64URL_NOPAD.encode(&bytes))
}

/// A new client secret: `gw_ek_` and 192 random bits.
pub(crate) fn new_token() -> String {
    random_id(TOKEN_PREFIX)
}

/// A new call id: `gw_call_` and 192 random bits.
pub(crate) fn new_call_id() -> String {
    random_id(CALL_PREFIX)
}

/// Whether `token` looks like a gateway client secret.
pub(crate) fn is_token(token: &str) -> bool {
    token.starts_with(TOKEN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_long_distinct_and_prefixed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(is_token(&a) && a.len() == TOKEN_PREFIX.len() + 32, "{a}");
        assert!(new_call_id().starts_with(CALL_PREFIX));
    }
}
