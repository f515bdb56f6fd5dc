//! A [`Link`] over any byte stream (TCP, TLS): the frame codec plus the
//! classification of how the stream ended.

use crate::link::Link;
use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tether_core::codec::{CodecError, Frame, FrameCodec};
use tether_core::DisconnectReason;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

/// How long an orderly close may take before the stream is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

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
        CodecError::Io(io) => DisconnectReason::from_io(io),
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
