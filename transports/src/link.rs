//! `Link`: one established connection carrying frames, whatever the
//! transport. The drivers speak only to this trait, so that every transport
//! shares one supervision mechanism.
//!
//! The trait is poll-based and object-safe: a driver holds a
//! [`BoxLink`] and calls it through its vtable without boxing a future per
//! call, from whichever task is polling (the shared-state driver polls a
//! link from the application's task as well as from its own). [`LinkExt`]
//! adds the `async` forms for code that just wants to await a frame.

use futures_util::future::BoxFuture;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Context, Poll};
use tether_core::codec::Frame;
use tether_core::DisconnectReason;

/// Most frames [`Link::poll_transmit`] reads ahead while its write waits;
/// past it, reading stops until the write moves, as without read-ahead.
pub const INBOX_LIMIT: usize = 4096;

/// An established, framed connection.
pub trait Link: Send + 'static {
    /// The next frame, or why the connection ended. Frames already
    /// received are returned without waiting; `Pending` registers `cx` to
    /// be woken when more may have arrived. Nothing is lost when the
    /// caller stops polling between calls.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, DisconnectReason>>;

    /// Writes `frames` in order and flushes, taking each frame off the
    /// front of `frames` once the link has it: what is left in `frames`
    /// after `Pending` (or when the caller gives up) was not written and
    /// can be written later. While the write waits for the peer to take
    /// bytes, a link that can also keeps reading: frames that arrive
    /// meanwhile are appended to `inbox` (up to [`INBOX_LIMIT`]), so two
    /// peers that both write more than the network buffers hold never wait
    /// on each other. An end of the connection seen while reading is
    /// returned as the error (frames received before it are in `inbox`).
    /// `Ready(Ok(()))` with `frames` empty means everything is written.
    fn poll_transmit(
        &mut self,
        cx: &mut Context<'_>,
        frames: &mut VecDeque<Frame>,
        inbox: &mut VecDeque<Frame>,
    ) -> Poll<Result<(), DisconnectReason>>;

    /// Closes the connection in an orderly way (best effort, bounded time).
    /// Called once per connection, so the future may be boxed.
    fn close(&mut self) -> BoxFuture<'_, ()>;

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

impl Link for BoxLink {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, DisconnectReason>> {
        (**self).poll_recv(cx)
    }
    fn poll_transmit(
        &mut self,
        cx: &mut Context<'_>,
        frames: &mut VecDeque<Frame>,
        inbox: &mut VecDeque<Frame>,
    ) -> Poll<Result<(), DisconnectReason>> {
        (**self).poll_transmit(cx, frames, inbox)
    }
    fn close(&mut self) -> BoxFuture<'_, ()> {
        (**self).close()
    }
    fn peer(&self) -> String {
        (**self).peer()
    }
    fn datagrams(&self) -> bool {
        (**self).datagrams()
    }
}

/// The `async` forms of a [`Link`]'s calls.
#[allow(async_fn_in_trait)]
pub trait LinkExt: Link {
    /// Receives the next frame, or why the connection ended. Cancel-safe.
    async fn recv(&mut self) -> Result<Frame, DisconnectReason> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Writes `frames` with one flush (see [`Link::poll_transmit`]).
    /// Dropping the future leaves what was not written in `frames`.
    async fn transmit(
        &mut self,
        frames: &mut VecDeque<Frame>,
        inbox: &mut VecDeque<Frame>,
    ) -> Result<(), DisconnectReason> {
        poll_fn(|cx| self.poll_transmit(cx, frames, inbox)).await
    }

    /// Sends one frame and flushes. Returns the frames that arrived while
    /// the write waited (usually none), for the caller to handle first.
    async fn send(&mut self, frame: Frame) -> Result<VecDeque<Frame>, DisconnectReason> {
        let mut frames = VecDeque::from([frame]);
        let mut inbox = VecDeque::new();
        self.transmit(&mut frames, &mut inbox).await?;
        Ok(inbox)
    }
}

impl<L: Link + ?Sized> LinkExt for L {}
