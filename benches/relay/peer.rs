//! What the bench's own client and upstream share: socket settings and events.

use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The client and upstream settings, the same on the direct path and
/// through the gateway. The 16 KiB read buffer keeps thousands of idle
/// sessions affordable in those processes.
pub(crate) fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 << 10)
}

/// A text message asking the upstream to flood: `bench.flood COUNT SIZE`.
pub(crate) const FLOOD: &str = "bench.flood";

/// The first event of every upstream session.
pub(crate) fn greeting() -> Utf8Bytes {
    event("session.created", 400)
}

/// A JSON event of `kind` padded to exactly `size` bytes, shaped like an
/// audio delta (`{"type":KIND,"delta":"AAAA..."}`).
pub(crate) fn event(kind: &str, size: usize) -> Utf8Bytes {
    let head = format!(r#"{{"type":"{kind}","delta":""#);
    let tail = r#""}"#;
    let padding = size.saturating_sub(head.len() + tail.len());
    let mut event = String::with_capacity(size);
    event.push_str(&head);
    event.extend(std::iter::repeat_n('A', padding));
    event.push_str(tail);
    event.into()
}
