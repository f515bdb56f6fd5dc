//! A [`Link`] over any byte stream (TCP, TLS): the core's frame functions
//! over the stream, plus the classification of how the stream ended.
//!
//! Buffers are held only while there is something in them. A read waits
//! on a buffer on the stack; bytes that arrive are copied into a heap
//! buffer sized for them, complete frames are split off it (sharing that
//! one allocation), and the buffer is given back as soon as no partial
//! frame is left. The write buffer is given back once a write has
//! flushed. An idle connection therefore holds no frame buffer at all.

use crate::link::{Link, INBOX_LIMIT};
use bytes::{Buf, BytesMut};
use futures_util::future::BoxFuture;
use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tether_core::codec::{decode, encode, CodecError, Frame, HEADER_LEN};
use tether_core::DisconnectReason;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long an orderly close may take before the stream is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Most frames read in one wake-up while a write waits, so that a fast
/// peer cannot keep the task from yielding.
const READ_WHILE_WRITING: usize = 1024;

/// Encoded bytes a write holds before it waits for the stream to take
/// some.
const WRITE_AHEAD: usize = 64 * 1024;

/// Bytes one read takes from the stream at most (on the stack).
const READ_CHUNK: usize = 16 * 1024;

/// Frames over a byte stream.
pub struct StreamLink<S> {
    stream: S,
    /// Received bytes not yet decoded: empty (unallocated) between frames.
    read: BytesMut,
    /// Encoded frames not yet written: empty (unallocated) when flushed.
    write: BytesMut,
    max_frame: usize,
    peer: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> StreamLink<S> {
    /// Wraps `stream`, rejecting frames over `max_frame` bytes.
    pub fn new(stream: S, max_frame: usize, peer: String) -> Self {
        Self {
            stream,
            read: BytesMut::new(),
            write: BytesMut::new(),
            max_frame: max_frame.min(u32::MAX as usize),
            peer,
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The next frame, reading as far as the stream goes without waiting.
    /// Cancel-safe: bytes read stay in `self.read`.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, DisconnectReason>> {
        loop {
            match decode(&mut self.read, self.max_frame) {
                Ok(Some(frame)) => {
                    if self.read.is_empty() {
                        // No partial frame left: give the buffer back (the
                        // frames split off it keep what they need).
                        self.read = BytesMut::new();
                    }
                    return Poll::Ready(Ok(frame));
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(classify(&e))),
            }
            let n = if self.read.is_empty() {
                // Between frames: wait on the stack, copy what came (left
                // uninitialised: a poll that finds nothing costs no fill).
                let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
                let mut buf = ReadBuf::uninit(&mut chunk);
                let result = ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf));
                result.map_err(|e| classify(&CodecError::Io(e)))?;
                let filled = buf.filled();
                // Room for the whole first frame at once, when it is longer
                // than what came (a large message arriving in pieces).
                self.read
                    .reserve(first_frame_len(filled, self.max_frame).max(filled.len()));
                self.read.extend_from_slice(filled);
                filled.len()
            } else {
                // Inside a frame: `decode` reserved room for the rest of it.
                if self.read.capacity() == self.read.len() {
                    self.read.reserve(READ_CHUNK);
                }
                ready!(tokio_util::io::poll_read_buf(
                    Pin::new(&mut self.stream),
                    cx,
                    &mut self.read
                ))
                .map_err(|e| classify(&CodecError::Io(e)))?
            };
            if n == 0 {
                // A clean end of stream between frames is an orderly close
                // (FIN); an end inside a frame is an error.
                return Poll::Ready(Err(if self.read.is_empty() {
                    DisconnectReason::PeerClosed
                } else {
                    classify(&CodecError::Io(io::Error::other(
                        "the stream ended inside a frame",
                    )))
                }));
            }
        }
    }

    /// Encodes `frames` into the write buffer (each leaves `frames` once
    /// encoded) and writes and flushes it, as far as it goes without
    /// waiting. Frames are encoded only while the buffer holds less than
    /// [`WRITE_AHEAD`], so a frame leaves `frames` only once the stream has
    /// taken most of what came before it: what stays in `frames` after
    /// `Pending` measures the peer's reading, and the buffer stays small.
    fn poll_write(
        &mut self,
        frames: &mut VecDeque<Frame>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), DisconnectReason>> {
        loop {
            while self.write.len() < WRITE_AHEAD {
                let Some(frame) = frames.pop_front() else {
                    break;
                };
                encode(&frame, self.max_frame, &mut self.write).map_err(|e| classify(&e))?;
            }
            if self.write.is_empty() {
                break;
            }
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.write))
                .map_err(|e| classify(&CodecError::Io(e)))?;
            if n == 0 {
                let zero = io::Error::from(io::ErrorKind::WriteZero);
                return Poll::Ready(Err(classify(&CodecError::Io(zero))));
            }
            self.write.advance(n);
        }
        self.write = BytesMut::new();
        Pin::new(&mut self.stream)
            .poll_flush(cx)
            .map_err(|e| classify(&CodecError::Io(e)))
    }
}

/// The length on the wire of the frame that `bytes` starts with, when its
/// header is there and its length acceptable; 0 otherwise.
fn first_frame_len(bytes: &[u8], max_frame: usize) -> usize {
    match bytes.get(..HEADER_LEN) {
        Some(h) => {
            let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
            if len <= max_frame {
                HEADER_LEN + len
            } else {
                0
            }
        }
        None => 0,
    }
}

/// Maps a codec failure to a disconnect reason.
pub fn classify(err: &CodecError) -> DisconnectReason {
    match err {
        CodecError::Io(io) => {
            // A TLS alert or a refused certificate after the handshake
            // (e.g. the server refusing our client certificate).
            #[cfg(feature = "tls")]
            if let Some(reason) = crate::tls_failure::from_io(io) {
                return reason;
            }
            DisconnectReason::from_io(io)
        }
        _ => DisconnectReason::ProtocolError,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Link for StreamLink<S> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, DisconnectReason>> {
        self.poll_frame(cx)
    }

    fn poll_transmit(
        &mut self,
        cx: &mut Context<'_>,
        frames: &mut VecDeque<Frame>,
        inbox: &mut VecDeque<Frame>,
    ) -> Poll<Result<(), DisconnectReason>> {
        if let Poll::Ready(result) = self.poll_write(frames, cx) {
            return Poll::Ready(result);
        }
        // The peer is not taking bytes yet: keep reading, so that a peer
        // blocked writing to us gets unstuck too.
        for _ in 0..READ_WHILE_WRITING {
            if inbox.len() >= INBOX_LIMIT {
                // Wait for the write alone, as without read-ahead.
                return Poll::Pending;
            }
            match self.poll_frame(cx) {
                Poll::Ready(Ok(frame)) => inbox.push_back(frame),
                Poll::Ready(Err(reason)) => return Poll::Ready(Err(reason)),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let close = async {
                let mut none = VecDeque::new();
                std::future::poll_fn(|cx| self.poll_write(&mut none, cx)).await?;
                std::future::poll_fn(|cx| Pin::new(&mut self.stream).poll_shutdown(cx))
                    .await
                    .map_err(|e| classify(&CodecError::Io(e)))
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, close).await;
        })
    }

    fn peer(&self) -> String {
        self.peer.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::LinkExt;
    use bytes::Bytes;
    use tokio::io::AsyncWriteExt;

    fn data(n: usize) -> Frame {
        Frame::Data(Bytes::from(vec![7u8; n]))
    }

    #[tokio::test]
    async fn frames_cross_in_any_chunking_and_buffers_are_given_back() {
        let (a, mut b) = tokio::io::duplex(64 * 1024);
        let mut link = StreamLink::new(a, 1 << 20, "test".into());
        let mut wire = BytesMut::new();
        let sent = [data(0), data(3), Frame::Ping(9), data(40_000), data(1)];
        for f in &sent {
            encode(f, 1 << 20, &mut wire).unwrap();
        }
        // Dribble the bytes in uneven pieces.
        let writer = tokio::spawn(async move {
            for piece in wire.chunks(997) {
                b.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            b
        });
        for want in &sent {
            assert_eq!(&link.recv().await.unwrap(), want);
        }
        assert_eq!(link.read.capacity(), 0, "no partial frame, no buffer");
        let b = writer.await.unwrap();
        drop(b);
        assert_eq!(link.recv().await, Err(DisconnectReason::PeerClosed));
    }

    #[tokio::test]
    async fn an_end_inside_a_frame_is_an_error_not_an_orderly_close() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut link = StreamLink::new(a, 1 << 20, "test".into());
        b.write_all(&[1, 0, 0, 0, 9, 1, 2]).await.unwrap();
        drop(b);
        assert_eq!(link.recv().await, Err(DisconnectReason::Io));
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_its_payload_is_buffered() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut link = StreamLink::new(a, 16, "test".into());
        b.write_all(&[1, 0, 0, 1, 0]).await.unwrap();
        assert_eq!(link.recv().await, Err(DisconnectReason::ProtocolError));
        assert!(link.read.capacity() < 1024);
    }

    #[tokio::test]
    async fn a_write_flushes_and_gives_its_buffer_back() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut link = StreamLink::new(a, 1 << 20, "test".into());
        let mut peer = StreamLink::new(b, 1 << 20, "peer".into());
        let mut frames: VecDeque<Frame> = (0..100).map(data).collect();
        let mut inbox = VecDeque::new();
        link.transmit(&mut frames, &mut inbox).await.unwrap();
        assert!(frames.is_empty() && inbox.is_empty());
        assert_eq!(link.write.capacity(), 0);
        for n in 0..100 {
            assert_eq!(peer.recv().await.unwrap(), data(n));
        }
    }
}
