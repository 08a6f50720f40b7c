//! Keepalive pings, the idle timeout and the session deadline.

use std::time::Duration;

use tokio::time::Instant;

use super::ending::{Ending, Policy, Side};
use super::pump::Half;

/// How often the idle timeout is checked, as a fraction of it: a session is
/// closed between `idle` and `idle * 9 / 8` after its last message.
const IDLE_CHECKS_PER_TIMEOUT: u32 = 8;

/// The time-driven part of a relay.
#[derive(Debug)]
pub(crate) struct Timers {
    keepalive: Option<Duration>,
    /// Unanswered pings after which a peer is considered dead.
    allowed_misses: u32,
    next_ping: Option<Instant>,
    /// Per side (client, upstream): frames seen at the last keepalive tick,
    /// and pings sent since the side last sent anything.
    seen: [u64; 2],
    missed: [u32; 2],
    idle: Option<Duration>,
    next_idle_check: Option<Instant>,
    last_active: Instant,
    messages_seen: u64,
    deadline: Option<(Instant, Duration)>,
}

impl Timers {
    /// Timers from `start`. A duration too long to add to an instant (such
    /// as `Duration::MAX`) means never, like `None`.
    pub(crate) fn new(
        start: Instant,
        keepalive: Option<Duration>,
        allowed_misses: u32,
        idle: Option<Duration>,
        max_duration: Option<Duration>,
    ) -> Self {
        let keepalive = keepalive.filter(|d| !d.is_zero());
        let idle = idle.filter(|d| !d.is_zero());
        Self {
            keepalive,
            allowed_misses,
            next_ping: keepalive.and_then(|k| start.checked_add(k)),
            seen: [0; 2],
            missed: [0; 2],
            idle,
            next_idle_check: idle.and_then(|i| start.checked_add(idle_period(i))),
            last_active: start,
            messages_seen: 0,
            deadline: max_duration.and_then(|d| Some((start.checked_add(d)?, d))),
        }
    }

    /// When [`Timers::fire`] must run next, if ever.
    pub(crate) fn next(&self) -> Option<Instant> {
        [
            self.next_ping,
            self.next_idle_check,
            self.deadline.map(|(at, _)| at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs what is due at `now`: queues pings, or ends the session.
    pub(crate) fn fire(
        &mut self,
        now: Instant,
        to_upstream: &mut Half,
        to_client: &mut Half,
    ) -> Option<Ending> {
        if let Some((at, limit)) = self.deadline
            && now >= at
        {
            return Some(Ending::Policy(Policy::MaxDuration(limit)));
        }
        if let (Some(idle), Some(check)) = (self.idle, self.next_idle_check)
            && now >= check
        {
            let messages = to_upstream.messages + to_client.messages;
            if messages != self.messages_seen {
                self.messages_seen = messages;
                self.last_active = now;
            } else if now.duration_since(self.last_active) >= idle {
                return Some(Ending::Policy(Policy::Idle(idle)));
            }
            self.next_idle_check = now.checked_add(idle_period(idle));
        }
        if let (Some(keepalive), Some(at)) = (self.keepalive, self.next_ping)
            && now >= at
        {
            // Frames from the client arrive on the half that writes upstream.
            // A side is not judged while that half is not reading it (its
            // message waits for the other side to make room): it cannot be
            // heard. Nor while the half writing to it is held back: the ping
            // and the peer's pong wait behind queued output. A peer that is
            // dead rather than slow leaves its writes unacknowledged, which
            // the kernel notices (`TCP_USER_TIMEOUT`).
            let stuck = to_upstream.is_held_back() || to_client.is_held_back();
            let sides = [
                (Side::Client, to_upstream.frames_in, stuck),
                (Side::Upstream, to_client.frames_in, stuck),
            ];
            for (index, (side, frames, unheard)) in sides.into_iter().enumerate() {
                if frames != self.seen[index] || unheard {
                    self.seen[index] = frames;
                    self.missed[index] = 0;
                    continue;
                }
                if self.missed[index] >= self.allowed_misses {
                    return Some(Ending::Vanished {
                        side,
                        detail: format!("no answer to {} keepalive pings", self.missed[index]),
                    });
                }
                self.missed[index] += 1;
                match side {
                    Side::Client => to_client.ping(),
                    Side::Upstream => to_upstream.ping(),
                }
            }
            self.next_ping = now.checked_add(keepalive);
        }
        None
    }
}

fn idle_period(idle: Duration) -> Duration {
    (idle / IDLE_CHECKS_PER_TIMEOUT).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    #[test]
    fn silent_peer_is_pinged_twice_then_dead() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut timers = Timers::new(start, Some(second), 2, None, None);
        let (mut up, mut down) = (Half::default(), Half::default());
        // The upstream keeps talking; the client is silent.
        for tick in 1..=2 {
            down.frames_in += 1;
            assert!(
                timers
                    .fire(start + second * tick, &mut up, &mut down)
                    .is_none()
            );
        }
        down.frames_in += 1;
        match timers.fire(start + second * 3, &mut up, &mut down) {
            Some(Ending::Vanished {
                side: Side::Client, ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_peer_that_is_not_being_read_is_not_judged() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut timers = Timers::new(start, Some(second), 2, None, None);
        let (mut up, mut down) = (Half::default(), Half::default());
        // The upstream's message waits for the client: the upstream is not read.
        down.hold(Message::text("waiting"));
        for tick in 1..=10 {
            up.frames_in += 1;
            assert!(
                timers
                    .fire(start + second * tick, &mut up, &mut down)
                    .is_none(),
                "tick {tick}"
            );
        }
        // Once it is read again, silence counts from there.
        down.take_pending();
        for tick in 11..=12 {
            up.frames_in += 1;
            assert!(
                timers
                    .fire(start + second * tick, &mut up, &mut down)
                    .is_none()
            );
        }
        up.frames_in += 1;
        assert!(matches!(
            timers.fire(start + second * 13, &mut up, &mut down),
            Some(Ending::Vanished {
                side: Side::Upstream,
                ..
            })
        ));
    }

    #[test]
    fn idle_counts_only_messages_and_deadline_wins() {
        let start = Instant::now();
        let idle = Duration::from_secs(8);
        let mut timers = Timers::new(start, None, 2, Some(idle), Some(Duration::from_secs(100)));
        let (mut up, mut down) = (Half::default(), Half::default());
        up.messages = 1;
        assert!(
            timers
                .fire(start + Duration::from_secs(1), &mut up, &mut down)
                .is_none()
        );
        assert!(
            timers
                .fire(start + Duration::from_secs(8), &mut up, &mut down)
                .is_none()
        );
        assert!(matches!(
            timers.fire(start + Duration::from_secs(9), &mut up, &mut down),
            Some(Ending::Policy(Policy::Idle(_)))
        ));
        assert!(matches!(
            timers.fire(start + Duration::from_secs(100), &mut up, &mut down),
            Some(Ending::Policy(Policy::MaxDuration(_)))
        ));
    }

    #[test]
    fn a_listener_whose_output_is_queued_is_not_judged() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut timers = Timers::new(start, Some(second), 2, None, None);
        let (mut up, mut down) = (Half::default(), Half::default());
        // The upstream streams; the client only listens, and its pong would
        // wait behind the message the client's socket has no room for.
        down.hold(Message::text("queued for a slow client"));
        for tick in 1..=10 {
            down.frames_in += 1;
            assert!(
                timers
                    .fire(start + second * tick, &mut up, &mut down)
                    .is_none(),
                "tick {tick}"
            );
        }
    }

    #[test]
    fn allowed_misses_are_configurable() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut timers = Timers::new(start, Some(second), 5, None, None);
        let (mut up, mut down) = (Half::default(), Half::default());
        for tick in 1..=5 {
            assert!(
                timers
                    .fire(start + second * tick, &mut up, &mut down)
                    .is_none(),
                "tick {tick}"
            );
        }
        match timers.fire(start + second * 6, &mut up, &mut down) {
            Some(Ending::Vanished { detail, .. }) => {
                assert_eq!(detail, "no answer to 5 keepalive pings");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations_too_long_for_an_instant_mean_never() {
        let start = Instant::now();
        let forever = Some(Duration::MAX);
        let mut timers = Timers::new(start, forever, 2, forever, forever);
        let (mut up, mut down) = (Half::default(), Half::default());
        let later = start + Duration::from_secs(100 * 365 * 24 * 3600);
        assert!(timers.next().is_none_or(|at| at > later));
        assert!(timers.fire(later, &mut up, &mut down).is_none());
        // Even the checks that are due, far away, find nothing to do and
        // schedule nothing that overflows.
        if let Some(at) = timers.next() {
            assert!(timers.fire(at, &mut up, &mut down).is_none());
            assert!(timers.next().is_none_or(|next| next > at));
        }
    }
}
