//! The `Reconnect` trait: how a transport dials a fresh connection.
//!
//! This is the one piece of the core that is async: it is implemented by
//! transports and called by drivers, never by the sans-IO state machines.

use crate::DisconnectReason;
use async_trait::async_trait;
use std::fmt;

/// A failed connection attempt: a classified reason plus detail for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    /// Refused, timed out, unreachable, protocol error (failed handshake), ...
    pub reason: DisconnectReason,
    /// What went wrong, e.g. the OS error text.
    pub detail: String,
}

impl ConnectError {
    /// An error with `reason` and `detail`.
    pub fn new(reason: DisconnectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    /// The reason and detail as a [`crate::Cause`].
    pub fn cause(&self) -> crate::Cause {
        crate::Cause::new(self.reason, self.detail.as_str())
    }

    /// Classifies an I/O error from a connect call.
    pub fn from_io(err: &std::io::Error) -> Self {
        Self::new(DisconnectReason::from_connect_io(err), err.to_string())
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for ConnectError {}

/// Dials new connections of type `Conn` to one configured peer.
///
/// Implementations must be cancel-safe: the driver drops the future when
/// the attempt times out or the client closes.
#[async_trait]
pub trait Reconnect: Send + Sync + 'static {
    /// The established connection.
    type Conn: Send + 'static;

    /// Makes one connection attempt (including any handshake).
    async fn connect(&self) -> Result<Self::Conn, ConnectError>;

    /// A human-readable name of the peer, e.g. `tcp://127.0.0.1:7000`.
    fn peer(&self) -> String;

    /// The largest application message this transport carries, in bytes;
    /// larger messages are refused when queued instead of failing the
    /// connection over and over. `None`: no limit of its own.
    fn max_message(&self) -> Option<usize> {
        None
    }

    /// The detail of an attempt that did not finish within `waited` (the
    /// connect timeout). Transports whose silent failures have a likelier
    /// cause than a slow network say so (UDP: a wrong key looks exactly
    /// like no server).
    fn timeout_detail(&self, waited: std::time::Duration) -> String {
        format!("no connection within {}", crate::cause::human(waited))
    }
}

#[async_trait]
impl<C: Send + 'static> Reconnect for Box<dyn Reconnect<Conn = C>> {
    type Conn = C;

    async fn connect(&self) -> Result<C, ConnectError> {
        (**self).connect().await
    }

    fn peer(&self) -> String {
        (**self).peer()
    }

    fn max_message(&self) -> Option<usize> {
        (**self).max_message()
    }

    fn timeout_detail(&self, waited: std::time::Duration) -> String {
        (**self).timeout_detail(waited)
    }
}
