//! [`QuicLink`]: tether frames over QUIC datagrams (RFC 9221), one frame
//! per datagram, and the classification of how a QUIC connection ended.

use crate::codec::FrameCodec;
use crate::link::Link;
use async_trait::async_trait;
use bytes::BytesMut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tether_core::codec::{Frame, HEADER_LEN};
use tether_core::DisconnectReason;
use tokio_util::codec::{Decoder, Encoder};

/// Application close code tether sends on an orderly close.
const CLOSE_CODE: u32 = 0;

/// Maps the end of a QUIC connection to a disconnect reason.
pub fn classify(err: &quinn::ConnectionError) -> DisconnectReason {
    use quinn::ConnectionError as E;
    match err {
        E::ApplicationClosed(_) | E::ConnectionClosed(_) => DisconnectReason::PeerClosed,
        E::Reset => DisconnectReason::Reset,
        E::TimedOut => DisconnectReason::Timeout,
        E::LocallyClosed => DisconnectReason::ClosedLocally,
        E::TransportError(_) | E::VersionMismatch => DisconnectReason::ProtocolError,
        E::CidsExhausted => DisconnectReason::Io,
    }
}

/// An established QUIC connection carrying tether frames as datagrams.
///
/// Datagrams are unreliable: a lost `Data` frame is lost (the resumption
/// layer replays), a lost ping counts as a missed heartbeat. A `Data` frame
/// that does not fit in one datagram
/// ([`QuicLink::max_payload`]) is not sent: it is logged and counted in
/// [`super::QuicStats::oversized_dropped`], and the connection stays up.
#[derive(Debug)]
pub struct QuicLink {
    conn: quinn::Connection,
    codec: FrameCodec,
    oversized: Arc<AtomicU64>,
}

impl QuicLink {
    pub(crate) fn new(conn: quinn::Connection, oversized: Arc<AtomicU64>) -> Self {
        Self {
            conn,
            codec: FrameCodec::default(),
            oversized,
        }
    }

    /// The quinn connection (statistics, RTT, remote address).
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// The largest `Data` payload that fits in one datagram now (path MTU
    /// and the peer's limit minus tether's 5-byte frame header); `None` if
    /// the peer does not accept datagrams.
    pub fn max_payload(&self) -> Option<usize> {
        self.conn
            .max_datagram_size()
            .map(|n| n.saturating_sub(HEADER_LEN))
    }

    fn dropped(&self, len: usize, max: Option<usize>) {
        self.oversized.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            peer = %self.conn.remote_address(),
            len,
            ?max,
            "message does not fit in one QUIC datagram; dropped"
        );
    }
}

#[async_trait]
impl Link for QuicLink {
    async fn send(&mut self, frame: Frame) -> Result<(), DisconnectReason> {
        let mut buf = BytesMut::new();
        if self.codec.encode(frame, &mut buf).is_err() {
            self.dropped(buf.len(), self.max_payload());
            return Ok(());
        }
        let Some(max) = self.conn.max_datagram_size() else {
            return Err(match self.conn.close_reason() {
                Some(e) => classify(&e),
                None => DisconnectReason::ProtocolError,
            });
        };
        if buf.len() > max {
            self.dropped(buf.len() - HEADER_LEN, Some(max.saturating_sub(HEADER_LEN)));
            return Ok(());
        }
        let len = buf.len();
        match self.conn.send_datagram_wait(buf.freeze()).await {
            Ok(()) => Ok(()),
            Err(quinn::SendDatagramError::ConnectionLost(e)) => Err(classify(&e)),
            // The path MTU shrank between the check and the send.
            Err(quinn::SendDatagramError::TooLarge) => {
                self.dropped(len - HEADER_LEN, self.max_payload());
                Ok(())
            }
            Err(quinn::SendDatagramError::UnsupportedByPeer)
            | Err(quinn::SendDatagramError::Disabled) => Err(DisconnectReason::ProtocolError),
        }
    }

    async fn recv(&mut self) -> Result<Frame, DisconnectReason> {
        // `read_datagram` is cancel-safe: a datagram leaves quinn's queue
        // only when the future completes with it.
        let datagram = self.conn.read_datagram().await.map_err(|e| classify(&e))?;
        let mut buf = BytesMut::from(&datagram[..]);
        match self.codec.decode(&mut buf) {
            // Exactly one whole frame per datagram.
            Ok(Some(frame)) if buf.is_empty() => Ok(frame),
            _ => {
                tracing::debug!(
                    peer = %self.conn.remote_address(),
                    len = datagram.len(),
                    "datagram is not one tether frame"
                );
                Err(DisconnectReason::ProtocolError)
            }
        }
    }

    async fn close(&mut self) {
        // The CONNECTION_CLOSE leaves with quinn's driver, which outlives
        // this handle; nothing to wait for.
        self.conn.close(CLOSE_CODE.into(), b"closed");
    }

    fn datagrams(&self) -> bool {
        true
    }

    fn peer(&self) -> String {
        format!("quic://{}", self.conn.remote_address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ends_are_classified() {
        use quinn::ConnectionError as E;
        assert_eq!(classify(&E::Reset), DisconnectReason::Reset);
        assert_eq!(classify(&E::TimedOut), DisconnectReason::Timeout);
        assert_eq!(classify(&E::LocallyClosed), DisconnectReason::ClosedLocally);
        assert_eq!(
            classify(&E::VersionMismatch),
            DisconnectReason::ProtocolError
        );
    }
}
