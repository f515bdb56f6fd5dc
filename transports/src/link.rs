//! `Link`: one established connection carrying frames, whatever the
//! transport. The drivers speak only to this trait, so that every transport
//! shares one supervision mechanism.

use async_trait::async_trait;
use std::collections::VecDeque;
use tether_core::codec::Frame;
use tether_core::DisconnectReason;

/// Most frames [`Link::transmit`] reads ahead while its write waits; past
/// it, reading stops until the write moves, as without read-ahead.
pub const INBOX_LIMIT: usize = 4096;

/// An established, framed connection.
#[async_trait]
pub trait Link: Send + 'static {
    /// Sends one frame. On failure the link is dead and the error says why.
    async fn send(&mut self, frame: Frame) -> Result<(), DisconnectReason>;

    /// Queues one frame for sending without flushing.
    async fn feed(&mut self, frame: Frame) -> Result<(), DisconnectReason> {
        self.send(frame).await
    }

    /// Flushes frames queued by `feed`.
    async fn flush(&mut self) -> Result<(), DisconnectReason> {
        Ok(())
    }

    /// Writes `frames` in order with one flush, taking each frame off the
    /// front of `frames` once the link has it: if the future is dropped
    /// (a close, a timeout), what is left in `frames` was not written and
    /// can be written later. While the write waits for the peer to take
    /// bytes, a link that can also keeps reading: frames that arrive
    /// meanwhile are appended to `inbox` (up to [`INBOX_LIMIT`]), so two
    /// peers that both write more than the network buffers hold never wait
    /// on each other. An end of the connection seen while reading is
    /// returned as the error (frames received before it are in `inbox`).
    ///
    /// The default feeds each frame and flushes, without reading; links
    /// whose writes cannot wait on the peer's reading need nothing more.
    async fn transmit(
        &mut self,
        frames: &mut VecDeque<Frame>,
        inbox: &mut VecDeque<Frame>,
    ) -> Result<(), DisconnectReason> {
        let _ = inbox;
        while let Some(frame) = frames.front().cloned() {
            self.feed(frame).await?;
            frames.pop_front();
        }
        self.flush().await
    }

    /// Receives the next frame, or why the connection ended.
    ///
    /// Must be cancel-safe: the driver calls it inside `select!` and may drop
    /// the future at any await point without losing a frame.
    async fn recv(&mut self) -> Result<Frame, DisconnectReason>;

    /// Closes the connection in an orderly way (best effort, bounded time).
    async fn close(&mut self);

    /// A description of the peer for logs and events.
    fn peer(&self) -> String;

    /// True when frames may be lost or reordered (one frame per datagram:
    /// QUIC datagrams, UDP): the connection machine then repeats its hello
    /// until answered.
    fn datagrams(&self) -> bool {
        false
    }
}

/// A boxed link, for transports chosen at run time.
pub type BoxLink = Box<dyn Link>;

#[async_trait]
impl Link for BoxLink {
    async fn send(&mut self, frame: Frame) -> Result<(), DisconnectReason> {
        (**self).send(frame).await
    }
    async fn feed(&mut self, frame: Frame) -> Result<(), DisconnectReason> {
        (**self).feed(frame).await
    }
    async fn flush(&mut self) -> Result<(), DisconnectReason> {
        (**self).flush().await
    }
    async fn transmit(
        &mut self,
        frames: &mut VecDeque<Frame>,
        inbox: &mut VecDeque<Frame>,
    ) -> Result<(), DisconnectReason> {
        (**self).transmit(frames, inbox).await
    }
    async fn recv(&mut self) -> Result<Frame, DisconnectReason> {
        (**self).recv().await
    }
    async fn close(&mut self) {
        (**self).close().await
    }
    fn peer(&self) -> String {
        (**self).peer()
    }
    fn datagrams(&self) -> bool {
        (**self).datagrams()
    }
}
