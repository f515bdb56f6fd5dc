//! `Reconnect`: how a transport dials a fresh connection. The drivers call
//! it; the sans-IO core never does, so it lives here, with the runtime.

use async_trait::async_trait;
use tether_core::ConnectError;

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
        format!("no connection within {}", tether_core::cause::human(waited))
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
