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

/// A text message asking the upstream for paced events:
/// `bench.paced COUNT SIZE INTERVAL_MS`, each stamped with its send time.
pub(crate) const PACED: &str = "bench.paced";

/// The time on the machine's monotonic clock, in nanoseconds: comparable
/// between the bench's processes.
pub(crate) fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is valid and writable for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// An audio delta of `size` bytes stamped with the time it is sent:
/// `{"type":"response.output_audio.delta","sent":NS,"delta":"AAAA..."}`.
pub(crate) fn stamped_delta(size: usize) -> Utf8Bytes {
    let head = format!(
        r#"{{"type":"response.output_audio.delta","sent":{},"delta":""#,
        monotonic_ns()
    );
    let tail = r#""}"#;
    let padding = size.saturating_sub(head.len() + tail.len());
    let mut event = String::with_capacity(size);
    event.push_str(&head);
    event.extend(std::iter::repeat_n('A', padding));
    event.push_str(tail);
    event.into()
}

/// The send time of a [`stamped_delta`].
pub(crate) fn sent_at(event: &str) -> Option<u64> {
    let rest = &event[event.find(r#""sent":"#)? + 7..];
    rest[..rest.find(',')?].parse().ok()
}

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
