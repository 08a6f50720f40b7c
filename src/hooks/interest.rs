//! [`Interest`]: which events a hook is called for.

use super::event::Direction;

/// The event types a hook wants to see, per direction.
///
/// A hook is called only for the events it names; events no hook of a
/// session wants (audio appends and deltas, usually) are never classified.
/// Types are compared exactly, after escapes are decoded.
///
/// # Example
///
/// ```
/// use tower_realtime::hooks::{Direction, Interest};
///
/// let interest = Interest::new()
///     .client_events(["session.update", "response.create"])
///     .upstream_events(["response.done"]);
/// assert!(interest.wants(Direction::ClientToUpstream, Some("session.update")));
/// assert!(!interest.wants(Direction::UpstreamToClient, Some("session.update")));
/// assert!(!interest.wants(Direction::UpstreamToClient, None));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Interest {
    client: Types,
    upstream: Types,
}

#[derive(Debug, Clone, Default)]
enum Types {
    #[default]
    None,
    Listed(Vec<Box<str>>),
    All,
}

impl Types {
    fn add<T: Into<String>>(&mut self, types: impl IntoIterator<Item = T>) {
        let listed = types.into_iter().map(|t| t.into().into_boxed_str());
        match self {
            Types::All => {}
            Types::Listed(list) => list.extend(listed),
            Types::None => *self = Types::Listed(listed.collect()),
        }
    }

    fn wants(&self, event_type: Option<&str>) -> bool {
        match self {
            Types::None => false,
            Types::All => true,
            Types::Listed(list) => event_type.is_some_and(|t| list.iter().any(|l| **l == *t)),
        }
    }

    fn any(&self) -> bool {
        match self {
            Types::None => false,
            Types::All => true,
            Types::Listed(list) => !list.is_empty(),
        }
    }
}

impl Interest {
    /// No events at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also the client events of these types.
    pub fn client_events<T: Into<String>>(mut self, types: impl IntoIterator<Item = T>) -> Self {
        self.client.add(types);
        self
    }

    /// Also the upstream events of these types.
    pub fn upstream_events<T: Into<String>>(mut self, types: impl IntoIterator<Item = T>) -> Self {
        self.upstream.add(types);
        self
    }

    /// Every client event, binary and untyped ones included.
    pub fn every_client_event(mut self) -> Self {
        self.client = Types::All;
        self
    }

    /// Every upstream event, binary and untyped ones included.
    pub fn every_upstream_event(mut self) -> Self {
        self.upstream = Types::All;
        self
    }

    /// Whether an event of `event_type` (`None`: untyped) travelling in
    /// `direction` is wanted.
    pub fn wants(&self, direction: Direction, event_type: Option<&str>) -> bool {
        self.types(direction).wants(event_type)
    }

    /// Whether any event travelling in `direction` is wanted.
    pub(crate) fn any(&self, direction: Direction) -> bool {
        self.types(direction).any()
    }

    fn types(&self, direction: Direction) -> &Types {
        match direction {
            Direction::ClientToUpstream => &self.client,
            Direction::UpstreamToClient => &self.upstream,
        }
    }
}
