//! Key and channel names: every key of one identity carries the identity as
//! its hash tag, so one script touches them all on one Redis Cluster slot.

use crate::budget::Period;

/// The names of one identity's keys.
#[derive(Debug)]
pub(super) struct Keys {
    /// `{prefix}:{identity}` with the identity escaped.
    base: String,
}

impl Keys {
    pub(super) fn new(prefix: &str, identity: &str) -> Self {
        Self {
            base: format!("{prefix}:{{{}}}", escape(identity)),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.base)
    }

    /// Open reservations: id -> "tokens audio money expires".
    pub(super) fn reservations(&self) -> String {
        self.key("resv")
    }

    /// The sum of open reservations per meter.
    pub(super) fn held(&self) -> String {
        self.key("held")
    }

    /// Expired reservations that were charged: id -> "tokens audio money at".
    pub(super) fn swept(&self) -> String {
        self.key("swept")
    }

    /// Settlement ids applied, scored by time.
    pub(super) fn settled(&self) -> String {
        self.key("settled")
    }

    /// Live sessions, scored by the end of their lease.
    pub(super) fn live(&self) -> String {
        self.key("live")
    }

    /// Sessions opened in the minute numbered `minute`.
    pub(super) fn new_sessions(&self, minute: u64) -> String {
        self.key(&format!("new:{minute}"))
    }

    /// Spent per meter in one window occurrence.
    pub(super) fn window(&self, period: &Period) -> String {
        self.key(&format!("w:{}:{}", period.window.tag(), period.number))
    }
}

/// The pub/sub channel announcing that `identity` is out of budget.
pub(super) fn exhausted_channel(prefix: &str, identity: &str) -> String {
    format!("{prefix}:exhausted:{{{}}}", escape(identity))
}

/// One key of the shared health of the deployment `selector`: `failures`
/// (failures in a row) or `cooldown` (present while it cools down); both
/// carry the selector as their hash tag.
pub(super) fn deployment(prefix: &str, selector: &str, name: &str) -> String {
    format!("{prefix}:deployment:{{{}}}:{name}", escape(selector))
}

/// The pattern matching every exhausted channel of `prefix`.
pub(super) fn exhausted_pattern(prefix: &str) -> String {
    format!("{prefix}:exhausted:*")
}

/// Escapes the characters that would end a hash tag early (`{`, `}`) or
/// make two identities' keys alike (`%`).
fn escape(identity: &str) -> String {
    let mut escaped = String::with_capacity(identity.len());
    for c in identity.chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '{' => escaped.push_str("%7B"),
            '}' => escaped.push_str("%7D"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Window;

    #[test]
    fn every_key_of_an_identity_shares_its_hash_tag() {
        let keys = Keys::new("rtb", "alice");
        let day = Window::Day.period(1_796_193_015_250);
        assert_eq!(keys.window(&day), "rtb:{alice}:w:d:20789");
        assert_eq!(keys.live(), "rtb:{alice}:live");
        assert_eq!(keys.new_sessions(7), "rtb:{alice}:new:7");
        assert_eq!(exhausted_channel("rtb", "alice"), "rtb:exhausted:{alice}");
    }

    #[test]
    fn braces_and_percent_signs_are_escaped() {
        assert_eq!(Keys::new("p", "a}b{%").held(), "p:{a%7Db%7B%25}:held");
        assert_ne!(Keys::new("p", "%7D").held(), Keys::new("p", "}").held());
    }
}
