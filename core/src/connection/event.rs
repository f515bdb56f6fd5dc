//! What a [`super::Connection`] reports, and why a send was refused.

use crate::Cause;
use bytes::Bytes;
use thiserror::Error;

/// One event of a connection, in order. Per connection: at most one
/// `Connected`, any `Message`s after it, and exactly one `Closed`, last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// The opening finished: the peer is a tether peer and answered (for
    /// [`super::Opening::Raw`], at once).
    Connected {
        /// The peer's protocol version (ours for a raw opening).
        version: u16,
        /// The capability bits both sides set.
        capabilities: u64,
        /// The extension bytes of the peer's hello or welcome (for the
        /// session layer); empty when it sent none.
        extra: Bytes,
    },
    /// An application message from the peer.
    Message(Bytes),
    /// The connection ended; nothing follows.
    Closed(Cause),
}

/// Why [`super::Connection::send`] refused a message. The connection is
/// unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ConnSendError {
    /// The send queue holds `send_queue` messages.
    #[error("the connection's send queue is full")]
    Full,
    /// The message is larger than `max_frame`.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The connection is closing or closed.
    #[error("the connection is closed")]
    Closed,
}
