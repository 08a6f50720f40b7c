//! [`Identity`]: who a session belongs to.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Who a session belongs to, as the [admission hook](super::Admission)
/// decided: a name for logs, records and budgets, and optionally a value of
/// your own type (a tenant, a user, a key's settings).
///
/// It is carried through the session as a cheap clone (one reference
/// count) and is on the session's span (field `identity`), on every
/// [`UsageRecord`](crate::usage::UsageRecord) and
/// [`TranscriptionRecord`](crate::usage::TranscriptionRecord), on the
/// [`SessionInfo`](crate::usage::SessionInfo) and on the
/// [`SessionSummary`](crate::usage::SessionSummary). Sessions of a layer
/// built with [`allow_unauthenticated`](crate::RealtimeLayer::allow_unauthenticated)
/// and no admission hook are [`anonymous`](Self::anonymous).
///
/// Two identities are equal when their names are; the value is not compared.
/// The name is written to logs: make it a key's or tenant's name, never a
/// secret.
///
/// # Example
///
/// ```
/// use tower_realtime::Identity;
///
/// #[derive(Debug)]
/// struct Tenant {
///     plan: &'static str,
/// }
///
/// let identity = Identity::new("acme").with_value(Tenant { plan: "pro" });
/// let copy = identity.clone(); // cheap: one reference count
/// assert_eq!(copy.name(), "acme");
/// assert_eq!(copy.value::<Tenant>().map(|tenant| tenant.plan), Some("pro"));
/// assert!(copy.value::<String>().is_none());
/// assert_eq!(copy.to_string(), "acme");
/// ```
#[derive(Clone)]
pub struct Identity(Option<Arc<Named>>);

struct Named {
    name: Box<str>,
    value: Option<Box<dyn Any + Send + Sync>>,
}

impl Identity {
    /// The name of [`Identity::anonymous`].
    pub const ANONYMOUS: &'static str = "anonymous";

    /// An identity called `name` (a tenant, a user, the name of a key).
    pub fn new(name: impl Into<String>) -> Self {
        Self(Some(Arc::new(Named {
            name: name.into().into_boxed_str(),
            value: None,
        })))
    }

    /// The identity of sessions nobody admitted by name: those of a layer
    /// that [allows unauthenticated sessions](crate::RealtimeLayer::allow_unauthenticated).
    /// Its name is `anonymous`.
    ///
    /// ```
    /// use tower_realtime::Identity;
    ///
    /// assert!(Identity::anonymous().is_anonymous());
    /// assert_eq!(Identity::anonymous().name(), "anonymous");
    /// ```
    pub const fn anonymous() -> Self {
        Self(None)
    }

    /// Attaches a value of your own type, for your observers, providers and
    /// hooks to read back with [`Identity::value`]. Replaces an earlier value.
    #[must_use]
    pub fn with_value<T: Send + Sync + 'static>(self, value: T) -> Self {
        Self(Some(Arc::new(Named {
            name: self.name().into(),
            value: Some(Box::new(value)),
        })))
    }

    /// The name, for logs, records and budgets.
    pub fn name(&self) -> &str {
        self.0.as_ref().map_or(Self::ANONYMOUS, |named| &named.name)
    }

    /// Whether this is [`Identity::anonymous`].
    pub fn is_anonymous(&self) -> bool {
        self.0.is_none()
    }

    /// The value attached with [`Identity::with_value`], if it is a `T`.
    pub fn value<T: 'static>(&self) -> Option<&T> {
        self.0.as_ref()?.value.as_ref()?.downcast_ref()
    }
}

impl Default for Identity {
    /// [`Identity::anonymous`].
    fn default() -> Self {
        Self::anonymous()
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Identity {}

impl Hash for Identity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let has_value = self.0.as_ref().is_some_and(|named| named.value.is_some());
        let mut tuple = f.debug_tuple("Identity");
        tuple.field(&self.name());
        if has_value {
            // The value's type need not be `Debug`, and may hold secrets.
            tuple.field(&format_args!(".."));
        }
        tuple.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_and_hash_follow_the_name() {
        use std::collections::HashSet;
        let plain = Identity::new("alice");
        let valued = Identity::new("alice").with_value(7_u32);
        assert_eq!(plain, valued);
        assert_ne!(plain, Identity::new("bob"));
        let set: HashSet<Identity> = [plain, valued].into_iter().collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn debug_shows_the_name_and_hides_the_value() {
        let identity = Identity::new("alice").with_value("secret-value");
        let shown = format!("{identity:?}");
        assert_eq!(shown, r#"Identity("alice", ..)"#);
        assert_eq!(
            format!("{:?}", Identity::anonymous()),
            r#"Identity("anonymous")"#
        );
    }

    #[test]
    fn with_value_keeps_the_name_and_replaces_the_value() {
        let identity = Identity::new("acme").with_value(1_u8).with_value("two");
        assert_eq!(identity.name(), "acme");
        assert_eq!(identity.value::<&str>(), Some(&"two"));
        assert_eq!(identity.value::<u8>(), None);
        assert!(!identity.is_anonymous());
    }
}
