//! One live link and its connection machine: what the client and the
//! server driver both do with a frame that arrived, with the frames the
//! machine wants sent, and with a write that stalls. Everything about the
//! wire (pings, pongs, round trips, the liveness verdict) is the machine's;
//! this only carries frames between it and the link.

use super::clock::{now, Timer};
use crate::link::{Link, LinkExt};
use std::collections::VecDeque;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Instant;
use tether_core::codec::Frame;
use tether_core::connection::{Connection, ConnectionConfig, ConnectionEvent, Side};
use tether_core::release::ReleaseIfEmpty;
use tether_core::{Cause, DisconnectReason};

/// How a write ended.
pub(crate) enum Written {
    /// Every frame went out.
    Done,
    /// The link failed, or the write stalled: the machine was told
    /// (its `Closed` event says why).
    Failed,
    /// The caller's abort fired first: what is left is in `outgoing`.
    Aborted,
}

pub(crate) struct Wired<L> {
    pub(crate) link: L,
    pub(crate) conn: Connection,
    /// Frames read while a write waited (see `Link::transmit`).
    inbox: VecDeque<Frame>,
    /// The batch being written; what a cut-short write left unwritten.
    pub(crate) outgoing: VecDeque<Frame>,
}

impl<L: Link> Wired<L> {
    pub(crate) fn new(link: L, conn: Connection) -> Self {
        Self {
            link,
            conn,
            inbox: VecDeque::new(),
            outgoing: VecDeque::new(),
        }
    }

    /// Runs the opening exchange on a link that just connected (client) or
    /// was accepted (server): the hello and its welcome, version and
    /// capability bits. Returns once the machine reports `Connected` (a
    /// server's welcome is written first), or the machine's cause when the
    /// peer answered wrongly, closed, or did not answer within the
    /// config's `opening_timeout` (`ConnectTimeout`: not a tether peer, or
    /// a server that never accepted). Messages that came with the answer
    /// stay queued in the machine, for the driver.
    pub(crate) async fn open(link: L, side: Side, config: ConnectionConfig) -> Result<Self, Cause> {
        let at = now();
        let conn = if link.datagrams() {
            Connection::new_datagram(side, config, at)
        } else {
            Connection::new(side, config, at)
        };
        let conn = conn.map_err(|e| Cause::new(DisconnectReason::Internal, e.to_string()))?;
        let mut wired = Self::new(link, conn);
        let mut timer = Timer::new();
        loop {
            if wired.take_control(now()) {
                wired.write(std::future::pending()).await;
            }
            while let Some(event) = wired.conn.poll_event() {
                match event {
                    ConnectionEvent::Connected { .. } => return Ok(wired),
                    ConnectionEvent::Closed(cause) => return Err(cause),
                    // Only after `Connected`, which is returned first.
                    ConnectionEvent::Message(_) => {}
                }
            }
            timer.arm(wired.conn.poll_timeout());
            tokio::select! {
                frame = wired.link.recv() => wired.handle_recv(frame, now()),
                () = timer.fired() => wired.handle_timeout(),
            }
        }
    }

    /// Gives back the memory of the empty frame queues.
    pub(crate) fn release_idle(&mut self) {
        self.inbox.release_if_empty();
        self.outgoing.release_if_empty();
    }

    /// Hands what `Link::recv` returned at `at` to the machine.
    pub(crate) fn handle_recv(&mut self, frame: Result<Frame, DisconnectReason>, at: Instant) {
        match frame {
            Ok(frame) => self.conn.handle_frame(at, frame),
            Err(reason) => self.conn.handle_closed(reason.into()),
        }
    }

    /// Lets the machine's clock run: liveness, pings.
    pub(crate) fn handle_timeout(&mut self) {
        self.conn.handle_timeout(now());
    }

    /// Moves the frames the machine wants sent at `at` (pongs, a ping) to
    /// the front of the next write; true if there were any.
    pub(crate) fn take_control(&mut self, at: Instant) -> bool {
        let mut any = false;
        let mut control = Vec::new();
        while let Some(frame) = self.conn.poll_frame(at) {
            control.push(frame);
            any = true;
        }
        for frame in control.into_iter().rev() {
            self.outgoing.push_front(frame);
        }
        any
    }

    /// One poll of the write of `outgoing` (see `Link::poll_transmit`);
    /// frames read meanwhile wait in the inbox for [`Wired::take_inbox`].
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), DisconnectReason>> {
        self.link
            .poll_transmit(cx, &mut self.outgoing, &mut self.inbox)
    }

    /// True when a write read frames ahead that the machine has not seen.
    pub(crate) fn has_inbox(&self) -> bool {
        !self.inbox.is_empty()
    }

    /// Hands frames read ahead by a write to the machine.
    pub(crate) fn take_inbox(&mut self) {
        if self.inbox.is_empty() {
            return;
        }
        let at = now();
        while let Some(frame) = self.inbox.pop_front() {
            self.conn.handle_frame(at, frame);
        }
    }

    /// Writes `outgoing` with one flush, reading meanwhile; frames read go
    /// to the machine. A write that makes no progress for the machine's
    /// stall bound means the peer stopped reading: the machine is told, as
    /// of a failed link.
    pub(crate) async fn write(&mut self, abort: impl Future<Output = ()>) -> Written {
        let stall = self.conn.config().stall_bound();
        if self.outgoing.is_empty() {
            return Written::Done;
        }
        let io = self.link.transmit(&mut self.outgoing, &mut self.inbox);
        let outcome = tokio::select! {
            written = tokio::time::timeout(stall, io) => Some(match written {
                Ok(result) => result.map_err(Cause::from),
                Err(_) => Err(Cause::write_stall(stall)),
            }),
            () = abort => None,
        };
        // What arrived while writing came before whatever ended the write.
        self.take_inbox();
        match outcome {
            Some(Ok(())) => Written::Done,
            Some(Err(cause)) => {
                self.outgoing.clear();
                self.conn.handle_closed(cause);
                Written::Failed
            }
            None => Written::Aborted,
        }
    }
}
