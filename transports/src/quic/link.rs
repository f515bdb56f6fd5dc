//! [`QuicLink`]: tether frames over QUIC datagrams (RFC 9221), one frame
//! per datagram, and the classification of how a QUIC connection ended.

use crate::codec::FrameCodec;
use crate::link::Link;
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tether_core::codec::{Frame, HEADER_LEN};
use tether_core::DisconnectReason;
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::ReusableBoxFuture;

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
pub struct QuicLink {
    conn: quinn::Connection,
    codec: FrameCodec,
    oversized: Arc<AtomicU64>,
    /// The wait for the next datagram, kept between polls.
    reading: ReusableBoxFuture<'static, Result<Bytes, quinn::ConnectionError>>,
    /// A send waiting for room in quinn's datagram buffer...
    sending: ReusableBoxFuture<'static, Result<(), quinn::SendDatagramError>>,
    /// ...and its length while it waits.
    waiting: Option<usize>,
}

impl std::fmt::Debug for QuicLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicLink")
            .field("peer", &self.conn.remote_address())
            .finish_non_exhaustive()
    }
}

impl QuicLink {
    pub(crate) fn new(conn: quinn::Connection, oversized: Arc<AtomicU64>) -> Self {
        Self {
            reading: ReusableBoxFuture::new(read_datagram(conn.clone())),
            sending: ReusableBoxFuture::new(async { Ok(()) }),
            waiting: None,
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

/// One datagram from `conn`, owning its handle so that the wait can be
/// kept between polls (cancel-safe: a datagram leaves quinn's queue only
/// when this completes with it).
async fn read_datagram(conn: quinn::Connection) -> Result<Bytes, quinn::ConnectionError> {
    conn.read_datagram().await
}

/// Sends `datagram` once quinn's datagram buffer has room.
async fn send_datagram_wait(
    conn: quinn::Connection,
    datagram: Bytes,
) -> Result<(), quinn::SendDatagramError> {
    conn.send_datagram_wait(datagram).await
}

impl QuicLink {
    /// Encodes `frame` as one datagram: `None` when it does not fit (it is
    /// dropped and counted, the connection stays up).
    fn encode(&self, frame: Frame) -> Result<Option<Bytes>, DisconnectReason> {
        let mut buf = BytesMut::new();
        if self.codec.clone().encode(frame, &mut buf).is_err() {
            self.dropped(buf.len(), self.max_payload());
            return Ok(None);
        }
        let Some(max) = self.conn.max_datagram_size() else {
            return Err(self.ended());
        };
        if buf.len() > max {
            self.dropped(buf.len() - HEADER_LEN, Some(max.saturating_sub(HEADER_LEN)));
            return Ok(None);
        }
        Ok(Some(buf.freeze()))
    }

    fn ended(&self) -> DisconnectReason {
        match self.conn.close_reason() {
            Some(e) => classify(&e),
            None => DisconnectReason::ProtocolError,
        }
    }

    /// What a finished send means for the link.
    fn sent(
        &self,
        result: Result<(), quinn::SendDatagramError>,
        len: usize,
    ) -> Result<(), DisconnectReason> {
        match result {
            Ok(()) => Ok(()),
            Err(quinn::SendDatagramError::ConnectionLost(e)) => Err(classify(&e)),
            // The path MTU shrank between the check and the send.
            Err(quinn::SendDatagramError::TooLarge) => {
                self.dropped(len.saturating_sub(HEADER_LEN), self.max_payload());
                Ok(())
            }
            Err(quinn::SendDatagramError::UnsupportedByPeer)
            | Err(quinn::SendDatagramError::Disabled) => Err(DisconnectReason::ProtocolError),
        }
    }
}

impl Link for QuicLink {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, DisconnectReason>> {
        let received = ready!(self.reading.poll(cx));
        // The next wait reuses this one's allocation.
        self.reading.set(read_datagram(self.conn.clone()));
        let datagram = received.map_err(|e| classify(&e))?;
        let mut buf = BytesMut::from(&datagram[..]);
        Poll::Ready(match self.codec.decode(&mut buf) {
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
        })
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context<'_>,
        frames: &mut VecDeque<Frame>,
        _inbox: &mut VecDeque<Frame>,
    ) -> Poll<Result<(), DisconnectReason>> {
        loop {
            if let Some(len) = self.waiting {
                let result = ready!(self.sending.poll(cx));
                self.waiting = None;
                self.sent(result, len)?;
            }
            let Some(frame) = frames.pop_front() else {
                return Poll::Ready(Ok(()));
            };
            let Some(datagram) = self.encode(frame)? else {
                continue;
            };
            let len = datagram.len();
            if self.conn.datagram_send_buffer_space() >= len {
                // Room now: sending displaces no older datagram.
                self.sent(self.conn.send_datagram(datagram), len)?;
            } else {
                // Congested: wait for room rather than drop older ones.
                self.sending
                    .set(send_datagram_wait(self.conn.clone(), datagram));
                self.waiting = Some(len);
            }
        }
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        // The CONNECTION_CLOSE leaves with quinn's driver, which outlives
        // this handle; nothing to wait for.
        self.conn.close(CLOSE_CODE.into(), b"closed");
        Box::pin(std::future::ready(()))
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
