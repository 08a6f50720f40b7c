//! Several keys for one provider, taken in turn.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ConfigError;
use crate::secret::Secret;

/// One or more API keys of one provider, used round-robin: each session
/// takes the next key and keeps it for its whole life.
///
/// Clones share their position, so every clone of a provider rotates through
/// the same sequence. A single [`Secret`] converts into `Keys`, so providers
/// take either.
///
/// # Example
///
/// ```
/// use tower_realtime::provider::Keys;
/// use tower_realtime::Secret;
///
/// let keys = Keys::new([Secret::new("sk-1"), Secret::new("sk-2")]).unwrap();
/// let picked: Vec<&str> = (0..3).map(|_| keys.pick().expose()).collect();
/// assert_eq!(picked, ["sk-1", "sk-2", "sk-1"]);
/// assert_eq!(format!("{keys:?}"), "Keys(2 × ***)");
/// assert!(Keys::new([]).is_err());
/// ```
#[derive(Clone)]
pub struct Keys {
    keys: Arc<[Secret]>,
    next: Arc<AtomicUsize>,
}

impl Keys {
    /// The keys in rotation order; at least one.
    pub fn new(keys: impl IntoIterator<Item = Secret>) -> Result<Self, ConfigError> {
        let keys: Arc<[Secret]> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(ConfigError::new("a provider needs at least one API key"));
        }
        Ok(Self {
            keys,
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The key for the next session.
    pub fn pick(&self) -> &Secret {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        &self.keys[turn % self.keys.len()]
    }
}

impl From<Secret> for Keys {
    fn from(key: Secret) -> Self {
        Self {
            keys: Arc::from([key]),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({} × ***)", self.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_rotation() {
        let keys = Keys::new(["a", "b", "c"].map(Secret::new)).unwrap();
        let clone = keys.clone();
        assert_eq!(keys.pick().expose(), "a");
        assert_eq!(clone.pick().expose(), "b");
        assert_eq!(keys.pick().expose(), "c");
        assert_eq!(clone.pick().expose(), "a");
    }

    #[test]
    fn one_key_is_always_the_same() {
        let keys = Keys::from(Secret::new("only"));
        for _ in 0..3 {
            assert_eq!(keys.pick().expose(), "only");
        }
    }
}
