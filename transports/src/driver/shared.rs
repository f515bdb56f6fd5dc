//! One live connection shared by the application's handles and its driver
//! task, in quinn's `ConnectionInner { state: Mutex<State> }` shape.
//!
//! An application `send` takes the lock and queues the frame. A large
//! message (at least [`DIRECT_WRITE`] bytes) is written straight away from
//! the application's own task when no write is waiting for the socket: it
//! fills a segment by itself, and costs no wake-up of another task. Small
//! messages are corked: the first one queued wakes the driver task once,
//! and everything queued until its turn goes out in one write (a burst of
//! 64-byte sends is one system call, not one each). The driver task is
//! otherwise woken only when a write could not finish (the socket is full:
//! the driver then owns the write until it drains), failed or read frames
//! ahead, and by its own socket readiness and timer. Every rule about
//! frames, pings and liveness stays in the connection machine inside; this
//! only decides who polls the link when.

use super::clock::{now, Timer};
use super::wired::Wired;
use crate::link::Link;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tether_core::codec::Frame;
use tether_core::connection::ConnectionEvent;
use tether_core::Cause;

/// Most frames the driver reads per turn before it yields, so that sends,
/// timers and other connections get their turn.
const READ_BUDGET: usize = 64;

/// Messages at least this long are written from the sending task (when no
/// write waits); shorter ones wait for the driver's next turn, with the
/// other sends made before it.
pub(crate) const DIRECT_WRITE: usize = 8 * 1024;

/// Why [`Shared::try_send`] did not take a message (it is handed back).
pub(crate) enum Refused {
    /// `limit` frames are already waiting to be written.
    Full(Bytes),
    /// The connection has ended.
    Closed(Bytes),
}

/// A connection's state behind its lock.
pub(crate) struct Shared<L> {
    state: Mutex<Carrier<L>>,
}

/// What the lock guards.
pub(crate) struct Carrier<L> {
    /// The link and its machine; `None` once the driver took them back to
    /// close the connection (sends are refused from then on).
    wired: Option<Wired<L>>,
    /// A write is waiting for the socket: the driver owns it until it
    /// completes, and sends only queue meanwhile.
    flushing: bool,
    /// The driver task has been woken to write what is queued and has not
    /// had its turn yet: further sends only queue.
    scheduled: bool,
    /// The driver task, woken when it must take over.
    driver: Option<Waker>,
    /// Sends waiting for room in the queue.
    senders: Vec<Waker>,
    /// Most frames queued for writing.
    limit: usize,
}

impl<L: Link> Shared<L> {
    /// Shares `wired`, queueing at most `limit` frames for writing.
    pub(crate) fn new(wired: Wired<L>, limit: usize) -> Self {
        Self {
            state: Mutex::new(Carrier {
                wired: Some(wired),
                flushing: false,
                scheduled: false,
                driver: None,
                senders: Vec::new(),
                limit: limit.max(1),
            }),
        }
    }

    /// The state, for the driver's turn.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Carrier<L>> {
        // A panic while holding the lock ends the connection's task; the
        // state is still consistent enough to refuse and close.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `msg`; writes it now when it is large and no write waits,
    /// otherwise makes sure the driver's next turn writes it.
    pub(crate) fn try_send(&self, msg: Bytes) -> Result<(), Refused> {
        self.lock().queue(msg, None)
    }

    /// As [`Shared::try_send`], but a full queue registers `cx` to be woken
    /// when there is room (`msg` stays with the caller). `Err` hands the
    /// message back when the connection has ended.
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        msg: &mut Option<Bytes>,
    ) -> Poll<Result<(), Bytes>> {
        let Some(data) = msg.take() else {
            return Poll::Ready(Ok(()));
        };
        match self.lock().queue(data, Some(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(Refused::Full(data)) => {
                *msg = Some(data);
                Poll::Pending
            }
            Err(Refused::Closed(data)) => Poll::Ready(Err(data)),
        }
    }

    /// One wake-up of the connection's driver task, on client and server
    /// alike: under one lock, reads and writes what it can (see
    /// [`Carrier::drive`]), runs the machine's clock on `timer` (the
    /// connection's one timer), hands each message to `on_message` and
    /// stores the last round trip in `rtt` (microseconds plus one).
    /// `Ready` with the cause once the machine reports the connection
    /// closed; `Ready(None)` if the link was already taken back.
    pub(crate) fn poll_serve(
        &self,
        cx: &mut Context<'_>,
        timer: &mut Timer,
        rtt: &AtomicU64,
        mut on_message: impl FnMut(Bytes),
    ) -> Poll<Option<Cause>> {
        let mut state = self.lock();
        loop {
            let more = state.drive(cx);
            let Some(wired) = state.wired() else {
                return Poll::Ready(None);
            };
            while let Some(event) = wired.conn.poll_event() {
                match event {
                    ConnectionEvent::Message(msg) => on_message(msg),
                    ConnectionEvent::Closed(cause) => return Poll::Ready(Some(cause)),
                    ConnectionEvent::Connected { .. } => {}
                }
            }
            if let Some(measured) = wired.conn.rtt() {
                rtt.store(measured.as_micros() as u64 + 1, Ordering::Relaxed);
            }
            timer.arm(wired.conn.poll_timeout());
            if timer.poll_fired(cx).is_ready() {
                wired.handle_timeout();
                continue;
            }
            if more {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
    }

    /// Takes the link and machine back, for the close; every later send
    /// is refused and waiting senders are woken to learn it.
    pub(crate) fn take(&self) -> Option<Wired<L>> {
        let mut state = self.lock();
        for waker in state.senders.drain(..) {
            waker.wake();
        }
        state.wired.take()
    }
}

impl<L: Link> Carrier<L> {
    /// The link and machine, while the connection is being served.
    pub(crate) fn wired(&mut self) -> Option<&mut Wired<L>> {
        self.wired.as_mut()
    }

    fn queue(&mut self, msg: Bytes, waiter: Option<&mut Context<'_>>) -> Result<(), Refused> {
        let Some(wired) = self.wired.as_mut() else {
            return Err(Refused::Closed(msg));
        };
        if wired.conn.is_closed() {
            return Err(Refused::Closed(msg));
        }
        if wired.outgoing.len() >= self.limit {
            if let Some(cx) = waiter {
                if !self.senders.iter().any(|w| w.will_wake(cx.waker())) {
                    self.senders.push(cx.waker().clone());
                }
            }
            return Err(Refused::Full(msg));
        }
        let large = msg.len() >= DIRECT_WRITE;
        wired.outgoing.push_back(Frame::Data(msg));
        if self.flushing || self.scheduled {
            // The driver's coming turn (or the waiting write) takes it.
        } else if large {
            self.write_here();
        } else {
            self.scheduled = true;
            self.wake_driver();
        }
        Ok(())
    }

    /// Writes from the caller's task. The link is polled with a waker that
    /// does nothing, so the caller is never woken for the socket; whenever
    /// the write cannot finish here, the driver is woken to poll again
    /// with its own waker (which re-registers it for the socket).
    fn write_here(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        if self.write(&mut cx) {
            self.wake_driver();
        }
    }

    /// One write attempt; true when the driver must take over (the write
    /// waits, failed, or read frames ahead that the machine must see).
    fn write(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(wired) = self.wired.as_mut() else {
            return false;
        };
        wired.take_control();
        if wired.outgoing.is_empty() && !self.flushing {
            return false;
        }
        let at = now();
        let before = wired.outgoing.len();
        let (handoff, room) = match wired.poll_write(cx) {
            Poll::Ready(Ok(())) => {
                self.flushing = false;
                wired.conn.handle_written(at, before, 0);
                (false, true)
            }
            Poll::Ready(Err(reason)) => {
                self.flushing = false;
                wired.outgoing.clear();
                wired.conn.handle_closed(reason.into());
                (true, true)
            }
            Poll::Pending => {
                self.flushing = true;
                let left = wired.outgoing.len();
                wired.conn.handle_written(at, before - left, left.max(1));
                (true, left < self.limit)
            }
        };
        let read_ahead = wired.has_inbox();
        if room {
            for waker in self.senders.drain(..) {
                waker.wake();
            }
        }
        handoff || read_ahead
    }

    fn wake_driver(&self) {
        if let Some(driver) = &self.driver {
            driver.wake_by_ref();
        }
    }

    /// The driver's turn: reads what has arrived (a bounded batch) and
    /// writes what is queued, registering `cx` with the link for both.
    /// Returns true when the read budget ran out (more may be waiting: the
    /// caller yields and comes back).
    pub(crate) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self
            .driver
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            self.driver = Some(cx.waker().clone());
        }
        self.scheduled = false;
        let Some(wired) = self.wired.as_mut() else {
            return false;
        };
        wired.take_inbox();
        let mut more = false;
        let mut read = 0;
        while !wired.conn.is_closed() && wired.conn.wants_read() {
            match wired.link.poll_recv(cx) {
                Poll::Ready(frame) => {
                    wired.handle_recv(frame);
                    read += 1;
                    if read == READ_BUDGET {
                        more = true;
                        break;
                    }
                }
                Poll::Pending => break,
            }
        }
        self.write(cx);
        if let Some(wired) = self.wired.as_mut() {
            // Frames read while the write waited came after those above.
            wired.take_inbox();
        }
        more
    }
}
