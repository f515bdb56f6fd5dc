//! A [`Link`] over any byte stream (TCP, TLS): the frame codec plus the
//! classification of how the stream ended.

use crate::codec::FrameCodec;
use crate::link::{Link, INBOX_LIMIT};
use async_trait::async_trait;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tether_core::codec::{CodecError, Frame};
use tether_core::DisconnectReason;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

/// How long an orderly close may take before the stream is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Most frames read in one wake-up while a write waits, so that a fast
/// peer cannot keep the task from yielding.
const READ_WHILE_WRITING: usize = 1024;

/// Frames over a byte stream.
pub struct StreamLink<S> {
    framed: Framed<S, FrameCodec>,
    peer: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> StreamLink<S> {
    /// Wraps `stream`, rejecting frames over `max_frame` bytes.
    pub fn new(stream: S, max_frame: usize, peer: String) -> Self {
        Self {
            framed: Framed::new(stream, FrameCodec::new(max_frame)),
            peer,
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        self.framed.get_ref()
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

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Link for StreamLink<S> {
    async fn send(&mut self, frame: Frame) -> Result<(), DisconnectReason> {
        self.framed.send(frame).await.map_err(|e| classify(&e))
    }

    async fn feed(&mut self, frame: Frame) -> Result<(), DisconnectReason> {
        self.framed.feed(frame).await.map_err(|e| classify(&e))
    }

    async fn flush(&mut self) -> Result<(), DisconnectReason> {
        SinkExt::<Frame>::flush(&mut self.framed)
            .await
            .map_err(|e| classify(&e))
    }

    async fn transmit(
        &mut self,
        frames: &mut VecDeque<Frame>,
        inbox: &mut VecDeque<Frame>,
    ) -> Result<(), DisconnectReason> {
        let framed = &mut self.framed;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = poll_write(framed, frames, cx) {
                return Poll::Ready(result);
            }
            // The peer is not taking bytes yet: keep reading, so that a
            // peer blocked writing to us gets unstuck too.
            for _ in 0..READ_WHILE_WRITING {
                if inbox.len() >= INBOX_LIMIT {
                    // Wait for the write alone, as without read-ahead.
                    return Poll::Pending;
                }
                match Pin::new(&mut *framed).poll_next(cx) {
                    Poll::Ready(Some(Ok(frame))) => inbox.push_back(frame),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(classify(&e))),
                    Poll::Ready(None) => return Poll::Ready(Err(DisconnectReason::PeerClosed)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    }

    async fn recv(&mut self) -> Result<Frame, DisconnectReason> {
        // `Framed::next` is cancel-safe: partial input stays in its buffer.
        match self.framed.next().await {
            Some(Ok(frame)) => Ok(frame),
            Some(Err(e)) => Err(classify(&e)),
            // A clean end of stream between frames is an orderly close (FIN);
            // an end inside a frame surfaces as an error from the codec.
            None => Err(DisconnectReason::PeerClosed),
        }
    }

    async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_GRACE, self.framed.close()).await;
    }

    fn peer(&self) -> String {
        self.peer.clone()
    }
}

/// Moves `frames` into the sink (each leaves `frames` only once the sink
/// took it) and flushes it, as far as it goes without waiting.
fn poll_write<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, FrameCodec>,
    frames: &mut VecDeque<Frame>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), DisconnectReason>> {
    let mut sink = Pin::new(framed);
    while !frames.is_empty() {
        match sink.as_mut().poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(classify(&e))),
            Poll::Pending => return Poll::Pending,
        }
        if let Some(frame) = frames.pop_front() {
            if let Err(e) = sink.as_mut().start_send(frame) {
                return Poll::Ready(Err(classify(&e)));
            }
        }
    }
    match Sink::<Frame>::poll_flush(sink, cx) {
        Poll::Ready(result) => Poll::Ready(result.map_err(|e| classify(&e))),
        Poll::Pending => Poll::Pending,
    }
}
