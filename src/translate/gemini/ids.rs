//! Ids for what Gemini leaves unnamed: sessions, responses, items, events.

use std::hash::{BuildHasher, RandomState};

/// Makes ids unique across sessions (a random stem per session) and in
/// order within one (a counter).
#[derive(Debug)]
pub(super) struct Ids {
    stem: String,
    next: u64,
}

impl Ids {
    pub(super) fn new() -> Self {
        // `RandomState` is seeded from the OS once per process and varied
        // per instance, enough to keep ids of concurrent sessions apart.
        let mut seed = RandomState::new().hash_one(std::time::SystemTime::now());
        let mut stem = String::with_capacity(12);
        for _ in 0..12 {
            let digit = (seed % 36) as u32;
            stem.push(char::from_digit(digit, 36).unwrap_or('0'));
            seed /= 36;
        }
        Self { stem, next: 0 }
    }

    /// A new id with `prefix` (`resp`, `item`, `event`, …).
    pub(super) fn make(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_{}{:08}", self.stem, self.next)
    }
}
