//! Gemini's close codes as an OpenAI `error` event and a close code.

/// How an upstream close reaches the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mapped {
    pub(super) error_type: &'static str,
    pub(super) code: &'static str,
    pub(super) close: u16,
}

/// The longest close reason RFC 6455 allows (125-byte payload minus the code).
pub(super) const MAX_REASON: usize = 123;

/// Maps an upstream close (`None`: the connection dropped without one).
/// `during_setup`: before `setupComplete`.
pub(super) fn map(code: Option<u16>, reason: &str, during_setup: bool) -> Option<Mapped> {
    let mapped = |error_type, code, close| Mapped {
        error_type,
        code,
        close,
    };
    Some(match code {
        Some(1000) => return None,
        Some(1007) if during_setup => {
            mapped("invalid_request_error", "invalid_session_config", 1008)
        }
        Some(1007) => mapped("invalid_request_error", "invalid_request", 1008),
        Some(1008) if reason.contains("not found") || reason.contains("not supported") => {
            mapped("invalid_request_error", "model_not_found", 1008)
        }
        Some(1008) => mapped("invalid_request_error", "policy_violation", 1008),
        _ => mapped("server_error", "upstream_error", 1011),
    })
}

/// `reason` without anything that looks like a credential in a URL
/// (`key=…`, `access_token=…`), cut to [`MAX_REASON`] bytes on a character
/// boundary.
pub(super) fn scrub(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason;
    while let Some(at) = find_credential(rest) {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        let equals = tail.find('=').map_or(tail.len(), |i| i + 1);
        out.push_str(&tail[..equals]);
        out.push_str("***");
        let end = tail[equals..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | '\'' | ')' | ','))
            .map_or(tail.len(), |i| equals + i);
        rest = &tail[end..];
    }
    out.push_str(rest);
    if out.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn find_credential(text: &str) -> Option<usize> {
    ["key=", "access_token=", "token="]
        .iter()
        .filter_map(|needle| {
            text.match_indices(needle)
                .find(|(at, _)| {
                    *at == 0
                        || !text.as_bytes()[at - 1].is_ascii_alphanumeric()
                        || text.as_bytes()[at - 1] == b'_'
                })
                .map(|(at, _)| at)
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_close_table() {
        let row =
            |code, reason, setup| map(code, reason, setup).map(|m| (m.error_type, m.code, m.close));
        assert_eq!(
            row(Some(1007), "Request contains an invalid argument.", true),
            Some(("invalid_request_error", "invalid_session_config", 1008))
        );
        assert_eq!(
            row(Some(1007), "Request contains an invalid argument.", false),
            Some(("invalid_request_error", "invalid_request", 1008))
        );
        assert_eq!(
            row(
                Some(1008),
                "models/x is not found for API version v1beta, or is not supported for bidiGenerateContent",
                true
            ),
            Some(("invalid_request_error", "model_not_found", 1008))
        );
        assert_eq!(
            row(Some(1008), "Quota policy", false),
            Some(("invalid_request_error", "policy_violation", 1008))
        );
        assert_eq!(
            row(Some(1011), "Internal error occurred.", false),
            Some(("server_error", "upstream_error", 1011))
        );
        assert_eq!(
            row(Some(1011), "The service is currently unavailable.", false),
            Some(("server_error", "upstream_error", 1011))
        );
        assert_eq!(
            row(None, "", false),
            Some(("server_error", "upstream_error", 1011))
        );
        assert_eq!(row(Some(1000), "", false), None);
    }

    #[test]
    fn scrubs_keys_and_caps_length() {
        assert_eq!(
            scrub("failed wss://h/ws?key=AIzaSECRET&alt=1 (retry)"),
            "failed wss://h/ws?key=***&alt=1 (retry)"
        );
        assert_eq!(
            scrub("access_token=ya29.abc, then"),
            "access_token=***, then"
        );
        assert_eq!(scrub("monkey=banana"), "monkey=banana");
        let long = "é".repeat(100);
        let cut = scrub(&long);
        assert!(cut.len() <= MAX_REASON && long.starts_with(&cut));
    }
}
