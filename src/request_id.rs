//! The request id of a session: the client's `X-Request-Id`, or a new one.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;
use http::header::HeaderValue;

use crate::upstream::headers::X_REQUEST_ID;

/// The longest client request id that is kept.
const MAX_LEN: usize = 128;

/// The client's `X-Request-Id` when it is 1 to 128 visible ASCII characters,
/// otherwise a fresh `req_` followed by 32 hex digits.
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(X_REQUEST_ID)
        .filter(|id| {
            let bytes = id.as_bytes();
            !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(generate)
}

fn generate() -> HeaderValue {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Randomly keyed SipHash of a counter: unique and unpredictable enough
    // for correlation ids (not for anything secret).
    let random = RandomState::new();
    let (high, low) = (random.hash_one(n), random.hash_one(!n));
    HeaderValue::from_str(&format!("req_{high:016x}{low:016x}"))
        .expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("has space"));
        let generated = request_id(&headers);
        assert!(generated.to_str().unwrap().starts_with("req_"));
        assert_eq!(generated.len(), 36);
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }
}
