//! What the registry reports to its driver.

use super::id::ConnId;
use std::time::Duration;

/// An event from [`Registry::poll_event`](super::Registry::poll_event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistryEvent {
    /// The connection has been silent for the policy's interval: send it a
    /// ping now. It stays registered; any later
    /// [`touch`](super::Registry::touch) answers the ping.
    PingDue {
        /// The connection.
        id: ConnId,
        /// The value attached at insert.
        tag: u64,
    },
    /// The connection is dead and has been removed: `id` is now stale.
    /// Close the connection. Exactly one of this event or a successful
    /// [`remove`](super::Registry::remove) happens per connection.
    Expired {
        /// The connection (no longer registered).
        id: ConnId,
        /// The value attached at insert.
        tag: u64,
        /// How long nothing had been received when the verdict fell.
        silent_for: Duration,
    },
}

impl RegistryEvent {
    /// The connection the event is about.
    pub fn id(&self) -> ConnId {
        match *self {
            Self::PingDue { id, .. } | Self::Expired { id, .. } => id,
        }
    }

    /// The value attached to the connection at insert.
    pub fn tag(&self) -> u64 {
        match *self {
            Self::PingDue { tag, .. } | Self::Expired { tag, .. } => tag,
        }
    }
}
