//! One live connection shared by the application's handles and its driver
//! task, in quinn's `ConnectionInner { state: Mutex<State> }` shape.
//!
//! Sending: an application `send` takes the lock and queues the frame. A
//! large message (at least [`DIRECT_WRITE`] bytes) is written straight
//! away from the application's own task when no write is waiting for the
//! socket: it fills a segment by itself, and costs no wake-up of another
//! task. Small messages are corked: the first one queued wakes the driver
//! task once, and everything queued until its turn goes out in one write
//! (a burst of 64-byte sends is one system call, not one each).
//!
//! Receiving (a connection whose messages are `queued` for the
//! application, as on the client): an application waiting for a message
//! reads the link itself, under the lock, and the link's readiness wakes
//! it directly (see `dispatch`); the driver task reads only when nobody
//! waits, into a bounded queue. When that queue is full, nobody reads the
//! socket: the peer is held back instead of tether growing.
//!
//! The driver task is otherwise woken only when a write could not finish
//! (the socket is full: the driver then owns the write until it drains),
//! failed or read frames ahead, when the connection ended under the
//! application's read, and by its own timer. Every rule about frames,
//! pings and liveness stays in the connection machine inside; this only
//! decides who polls the link when.

use super::clock::{now, Timer};
use super::dispatch::Dispatch;
use super::handover::{Handover, Work};
use super::wired::Wired;
use crate::link::Link;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tether_core::codec::Frame;
use tether_core::connection::ConnectionEvent;
use tether_core::release::ReleaseIfEmpty;
use tether_core::Cause;

/// Most frames read per turn before the reader yields, so that sends,
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

/// How a queued message reaches the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// Without the caller doing more: a large message is written at once,
    /// small ones on the driver's coming turn, together.
    Send,
    /// On the caller's next [`Shared::flush`] (or any write before it:
    /// another `Send`, a pong, the driver's timer turn, a full queue). The
    /// caller batches as with a buffered writer and no other task is woken.
    Feed,
}

/// What a connection does with the messages it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Hands each to the driver's callback (see [`Shared::poll_serve`]).
    Callback,
    /// Keeps them for [`Shared::poll_receive`], at most `limit`.
    Queued,
    /// Drops them: nobody receives any more.
    Discard,
}

/// A connection's state behind its lock.
pub(crate) struct Shared<L: Link> {
    state: Mutex<Carrier<L>>,
    /// Sends and flushes that found the state locked (see `handover`).
    handover: Handover,
}

/// The locked state. Before the lock is let go, what others left in the
/// handover meanwhile is done (see [`Shared::lock`]).
pub(crate) struct Locked<'a, L: Link> {
    shared: &'a Shared<L>,
    guard: Option<MutexGuard<'a, Carrier<L>>>,
}

impl<L: Link> std::ops::Deref for Locked<'_, L> {
    type Target = Carrier<L>;
    fn deref(&self) -> &Carrier<L> {
        self.guard.as_deref().expect("held until dropped")
    }
}

impl<L: Link> std::ops::DerefMut for Locked<'_, L> {
    fn deref_mut(&mut self) -> &mut Carrier<L> {
        self.guard.as_deref_mut().expect("held until dropped")
    }
}

impl<L: Link> Drop for Locked<'_, L> {
    fn drop(&mut self) {
        while let Some(mut guard) = self.guard.take() {
            self.shared.take_handover(&mut guard);
            drop(guard);
            // Left after the last look: done by whoever holds the lock
            // now, or by us if nobody does.
            if !self.shared.handover.pending() {
                return;
            }
            self.guard = self.shared.try_lock_raw();
        }
    }
}

/// What the lock guards.
pub(crate) struct Carrier<L> {
    /// The link and its machine; `None` once the driver took them back to
    /// close the connection (sends are refused from then on).
    wired: Option<Wired<L>>,
    /// The machine reported the connection closed; the driver reports it.
    closed: Option<Cause>,
    /// Nothing more will be received (see [`Shared::take`]).
    finished: bool,
    /// A write is waiting for the socket: the driver owns it until it
    /// completes, and sends only queue meanwhile.
    flushing: bool,
    /// The driver task has been woken to write what is queued and has not
    /// had its turn yet: further sends only queue.
    scheduled: bool,
    /// Who is woken when.
    dispatch: Arc<Dispatch>,
    /// The waker every read of the link registers (`dispatch`'s).
    link_waker: Waker,
    /// Sends waiting for room in the queue.
    senders: Vec<Waker>,
    /// Most frames queued for writing.
    limit: usize,
    /// Most messages kept received (`Delivery::Queued`).
    receive_limit: usize,
    delivery: Delivery,
    /// Messages received and not yet taken (`Delivery::Queued`).
    received: VecDeque<Bytes>,
    /// The driver's timer is armed for this (so that a reader that moved
    /// the machine's deadline earlier can wake the driver).
    armed: Option<Instant>,
    /// A message was queued or received since the timer last fired.
    busy: bool,
    /// Messages were fed and not yet flushed: the driver's timer turn
    /// writes them if the caller never does.
    fed: bool,
}

impl<L: Link> Shared<L> {
    /// Shares `wired`, queueing at most `limit` frames for writing (and,
    /// when `delivery` is `Queued`, keeping at most `limit` received unless
    /// [`Carrier::set_receive_limit`] says otherwise).
    pub(crate) fn new(wired: Wired<L>, limit: usize, delivery: Delivery) -> Self {
        let (dispatch, link_waker) = Dispatch::new();
        Self {
            state: Mutex::new(Carrier {
                wired: Some(wired),
                closed: None,
                finished: false,
                flushing: false,
                scheduled: false,
                dispatch,
                link_waker,
                senders: Vec::new(),
                limit: limit.max(1),
                receive_limit: limit.max(1),
                delivery,
                received: VecDeque::new(),
                armed: None,
                busy: false,
                fed: false,
            }),
            handover: Handover::default(),
        }
    }

    /// The state, for the driver's turn. What others left in the handover
    /// is taken first (it came before whatever the caller does now).
    pub(crate) fn lock(&self) -> Locked<'_, L> {
        // A panic while holding the lock ends the connection's task; the
        // state is still consistent enough to refuse and close.
        self.locked(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The state if nobody holds it.
    fn try_lock(&self) -> Option<Locked<'_, L>> {
        self.try_lock_raw().map(|guard| self.locked(guard))
    }

    /// Wraps a fresh guard, doing first what was left in the handover.
    fn locked<'a>(&'a self, mut guard: MutexGuard<'a, Carrier<L>>) -> Locked<'a, L> {
        self.take_handover(&mut guard);
        Locked {
            shared: self,
            guard: Some(guard),
        }
    }

    fn try_lock_raw(&self) -> Option<MutexGuard<'_, Carrier<L>>> {
        match self.state.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Does what was left in the handover, in order.
    fn take_handover(&self, state: &mut Carrier<L>) {
        self.handover.take(false, |work| state.take_work(work));
    }

    /// Queues `msg` like [`Carrier::queue`], but when the state is locked
    /// leaves it to the holder instead of waiting (see `handover`).
    fn push(
        &self,
        msg: Bytes,
        waiter: Option<&mut Context<'_>>,
        push: Push,
    ) -> Result<(), Refused> {
        if let Some(mut state) = self.try_lock() {
            return state.queue(msg, waiter, push);
        }
        match self.handover.leave(msg, push) {
            Ok(()) => {
                // The holder may have let go before it was left.
                drop(self.try_lock());
                Ok(())
            }
            Err(msg) => self.lock().queue(msg, waiter, push),
        }
    }

    /// Queues `msg`; with `Push::Send`, writes it now when it is large and
    /// no write waits, otherwise makes sure the driver's next turn writes
    /// it; with `Push::Feed`, leaves it for the caller's next flush.
    pub(crate) fn try_send(&self, msg: Bytes, push: Push) -> Result<(), Refused> {
        self.push(msg, None, push)
    }

    /// As [`Shared::try_send`], but a full queue registers `cx` to be woken
    /// when there is room (`msg` stays with the caller). `Err` hands the
    /// message back when the connection has ended.
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        msg: &mut Option<Bytes>,
        push: Push,
    ) -> Poll<Result<(), Bytes>> {
        let Some(data) = msg.take() else {
            return Poll::Ready(Ok(()));
        };
        match self.push(data, Some(cx), push) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(Refused::Full(data)) => {
                *msg = Some(data);
                Poll::Pending
            }
            Err(Refused::Closed(data)) => Poll::Ready(Err(data)),
        }
    }

    /// Writes what was fed, from the caller's task (see [`Push::Feed`]);
    /// the driver takes over when the socket is full. Nothing to do when a
    /// write already waits or the driver's turn is coming: either writes
    /// everything queued.
    pub(crate) fn flush(&self) {
        if let Some(mut state) = self.try_lock() {
            state.flush();
            return;
        }
        self.handover.leave_flush();
        drop(self.try_lock());
    }

    /// Moves received messages, at most `limit` in all in `out`, wrapped by
    /// `wrap`. With `cx`, and nothing received yet, reads the link from the
    /// caller's task and, if still nothing came, registers `cx` to be woken
    /// by the link or by the driver. `Ready(0)` once the connection has
    /// ended and every message it received has been taken.
    pub(crate) fn poll_receive<T>(
        &self,
        cx: Option<&mut Context<'_>>,
        out: &mut Vec<T>,
        limit: usize,
        mut wrap: impl FnMut(Bytes) -> T,
    ) -> Poll<usize> {
        let mut state = match &cx {
            Some(cx) => match self.try_lock() {
                Some(state) => state,
                // A write holds the state: rather than block this thread
                // behind its system call, come back once it let go.
                None if self.handover.leave_read(cx.waker()) => {
                    drop(self.try_lock());
                    return Poll::Pending;
                }
                None => self.lock(),
            },
            None => self.lock(),
        };
        let taken = state.take_received(out, limit, &mut wrap);
        if taken > 0 {
            return Poll::Ready(taken);
        }
        if state.ended() {
            return Poll::Ready(0);
        }
        let Some(cx) = cx else {
            return Poll::Pending;
        };
        state.dispatch.wait_reader(cx.waker());
        let more = state.read(&mut |_| {}, true);
        state.after_read();
        let taken = state.take_received(out, limit, &mut wrap);
        if taken > 0 || state.ended() {
            // What the read budget left in the socket is read by the
            // caller's next receive, or by the driver once more arrives
            // (the socket's next readiness wakes it while nobody waits).
            state.dispatch.stop_reader();
            return Poll::Ready(taken);
        }
        if more {
            // The budget went on frames that were no messages (pongs):
            // come back for the rest.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// One wake-up of the connection's driver task, on client and server
    /// alike: under one lock, reads and writes what it can (see
    /// [`Carrier::drive`]), runs the machine's clock on `timer` (the
    /// connection's one timer), hands each message to `on_message` (with
    /// `Delivery::Callback`) and stores the last round trip in `rtt`
    /// (microseconds plus one). `Ready` with the cause once the machine
    /// reports the connection closed; `Ready(None)` if the link was
    /// already taken back.
    pub(crate) fn poll_serve(
        &self,
        cx: &mut Context<'_>,
        timer: &mut Timer,
        rtt: &AtomicU64,
        mut on_message: impl FnMut(Bytes),
    ) -> Poll<Option<Cause>> {
        let mut state = self.lock();
        let mut fired = false;
        loop {
            let more = state.drive(cx, &mut on_message);
            if std::mem::take(&mut fired) && !std::mem::take(&mut state.busy) {
                // Idle since the timer fired before, and after the turn
                // that wrote what the deadline asked for (a ping): what is
                // empty now stays empty while idle.
                state.release_idle();
                self.handover.release_idle();
            }
            if let Some(cause) = &state.closed {
                return Poll::Ready(Some(cause.clone()));
            }
            let Some(wired) = state.wired.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(measured) = wired.conn.rtt() {
                rtt.store(measured.as_micros() as u64 + 1, Ordering::Relaxed);
            }
            timer.arm(wired.conn.poll_timeout());
            if timer.poll_fired(cx).is_ready() {
                wired.handle_timeout();
                fired = true;
                continue;
            }
            state.armed = timer.deadline();
            if more {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
    }

    /// Takes the link and machine back, for the close; every later send
    /// is refused and waiting senders are woken to learn it. With
    /// `finish`, nothing more will be received (see [`Shared::finish`]).
    pub(crate) fn take(&self, finish: bool) -> Option<Wired<L>> {
        let mut state = self.lock();
        // Whatever is left from now on waits for the lock, and learns.
        self.handover.take(true, |work| state.take_work(work));
        for waker in state.senders.drain(..) {
            waker.wake();
        }
        let wired = state.wired.take();
        if finish {
            state.finish();
        }
        wired
    }

    /// Nothing more will be received: a reader takes what is left and then
    /// learns the end.
    pub(crate) fn finish(&self) {
        self.lock().finish();
    }

    /// A message the machine reported after the link was taken back (while
    /// a close flushed): kept for the reader, or handed back to go the way
    /// of `Delivery::Callback`.
    pub(crate) fn deliver_late(&self, msg: Bytes) -> Option<Bytes> {
        let mut state = self.lock();
        match state.delivery {
            Delivery::Callback => Some(msg),
            Delivery::Queued => {
                state.received.push_back(msg);
                state.dispatch.wake_reader();
                None
            }
            Delivery::Discard => None,
        }
    }

    /// Sets what happens to received messages from now on.
    pub(crate) fn set_delivery(&self, delivery: Delivery) {
        self.lock().set_delivery(delivery);
    }

    /// From now on received messages are dropped (nobody takes them).
    pub(crate) fn discard_received(&self) {
        let mut state = self.lock();
        state.set_delivery(Delivery::Discard);
        state.dispatch.wake_driver();
    }
}

impl<L: Link> Carrier<L> {
    /// The link and machine, while the connection is being served.
    pub(crate) fn wired(&mut self) -> Option<&mut Wired<L>> {
        self.wired.as_mut()
    }

    /// Sets what happens to received messages.
    pub(crate) fn set_delivery(&mut self, delivery: Delivery) {
        self.delivery = delivery;
        if delivery != Delivery::Queued {
            self.received.clear();
        }
    }

    /// Keeps at most `limit` messages received.
    pub(crate) fn set_receive_limit(&mut self, limit: usize) {
        self.receive_limit = limit.max(1);
    }

    /// Gives back the memory of every empty queue (when the timer fired
    /// twice with no message between: see `Connection::handle_timeout`).
    fn release_idle(&mut self) {
        self.received.release_if_empty();
        self.senders.release_if_empty();
        if let Some(wired) = self.wired.as_mut() {
            wired.release_idle();
        }
    }

    /// True once nothing more will be received.
    fn ended(&self) -> bool {
        self.finished || self.closed.is_some()
    }

    fn finish(&mut self) {
        self.finished = true;
        self.dispatch.wake_reader();
    }

    fn take_received<T>(
        &mut self,
        out: &mut Vec<T>,
        limit: usize,
        wrap: &mut impl FnMut(Bytes) -> T,
    ) -> usize {
        let was_full = self.received.len() >= self.receive_limit;
        let n = limit.saturating_sub(out.len()).min(self.received.len());
        out.extend(self.received.drain(..n).map(wrap));
        if was_full && n > 0 && !self.ended() {
            // The driver stopped reading for want of room.
            self.dispatch.wake_driver();
        }
        n
    }

    /// Writes what was fed (see [`Shared::flush`]).
    fn flush(&mut self) {
        self.fed = false;
        if !self.flushing && !self.scheduled {
            self.write_here();
        }
    }

    /// Does what senders left in the handover: their messages are queued
    /// as if sent now (they were accepted, so past the queue's limit if
    /// need be: the handover itself is bounded), then the flush.
    fn take_work(&mut self, work: &mut Work) {
        for (msg, push) in work.messages.drain(..) {
            // The link is taken back only together with closing the
            // handover (`Shared::take`), which does this first: whatever
            // was left then is queued here and goes the way of every
            // unwritten message (the next connection, or the close).
            let Some(wired) = self.wired.as_mut() else {
                break;
            };
            let large = msg.len() >= DIRECT_WRITE;
            wired.outgoing.push_back(Frame::Data(msg));
            self.place(large, push);
        }
        if std::mem::take(&mut work.flush) {
            self.flush();
        }
    }

    fn queue(
        &mut self,
        msg: Bytes,
        waiter: Option<&mut Context<'_>>,
        push: Push,
    ) -> Result<(), Refused> {
        let Some(wired) = self.wired.as_ref() else {
            return Err(Refused::Closed(msg));
        };
        if wired.conn.is_closed() {
            return Err(Refused::Closed(msg));
        }
        if wired.outgoing.len() >= self.limit && self.fed && !self.flushing && !self.scheduled {
            // Full of fed messages nobody writes yet: write them first.
            self.write_here();
        }
        let Some(wired) = self.wired.as_mut() else {
            return Err(Refused::Closed(msg));
        };
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
        self.place(large, push);
        Ok(())
    }

    /// Decides who writes the message just queued (see [`Push`]).
    fn place(&mut self, large: bool, push: Push) {
        self.busy = true;
        if self.flushing || self.scheduled {
            // The driver's coming turn (or the waiting write) takes it.
        } else if push == Push::Feed {
            // The caller's flush takes it.
            self.fed = true;
        } else if large {
            self.write_here();
        } else {
            self.scheduled = true;
            self.dispatch.wake_driver();
        }
    }

    /// Writes from the caller's task. The link is polled with a waker that
    /// does nothing, so the caller is never woken for the socket; whenever
    /// the write cannot finish here, the driver is woken to poll again
    /// with its own waker (which re-registers it for the socket).
    fn write_here(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        if self.write(&mut cx) {
            self.dispatch.wake_driver();
        }
    }

    /// One write attempt; true when the driver must take over (the write
    /// waits, failed, or read frames ahead that the machine must see).
    fn write(&mut self, cx: &mut Context<'_>) -> bool {
        // Whatever was fed goes with this write.
        self.fed = false;
        let Some(wired) = self.wired.as_mut() else {
            return false;
        };
        // One clock read per write attempt, for the machine's frames and
        // the progress it records.
        let at = now();
        wired.take_control(at);
        if wired.outgoing.is_empty() && !self.flushing {
            return false;
        }
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

    /// Reads what has arrived (a bounded batch, with the link waker) and
    /// hands the machine's events on: messages to `on_message` or the
    /// received queue, the end to `closed`. Frames the machine answers
    /// (pongs) are written unless the driver owns the write. Returns true
    /// when the read budget ran out (more may be waiting). From the
    /// application's task (a waiting reader), the driver is woken when the
    /// connection ended or its timer must run sooner.
    fn read(&mut self, on_message: &mut impl FnMut(Bytes), by_reader: bool) -> bool {
        let Some(wired) = self.wired.as_mut() else {
            return false;
        };
        wired.take_inbox();
        let mut cx = Context::from_waker(&self.link_waker);
        let mut more = false;
        let mut read = 0;
        // Frames read count against the room left, messages or not.
        let room = match self.delivery {
            Delivery::Queued => self.receive_limit.saturating_sub(self.received.len()),
            Delivery::Callback | Delivery::Discard => usize::MAX,
        };
        // One clock read per turn, at its first frame: the frames of one
        // turn arrived together.
        let mut at = None;
        while !wired.conn.is_closed() && wired.conn.wants_read() && read < room {
            match wired.link.poll_recv(&mut cx) {
                Poll::Ready(frame) => {
                    wired.handle_recv(frame, *at.get_or_insert_with(now));
                    read += 1;
                    if read == READ_BUDGET {
                        more = true;
                        break;
                    }
                }
                Poll::Pending => break,
            }
        }
        self.pump(on_message, by_reader);
        more
    }

    /// Moves the machine's events on (see [`Carrier::read`]); a waiting
    /// reader is woken for new messages unless it is the caller
    /// (`by_reader`: it takes them right away, and a task woken while it
    /// runs is only scheduled again, at the price of waking a worker).
    fn pump(&mut self, on_message: &mut impl FnMut(Bytes), by_reader: bool) {
        let Some(wired) = self.wired.as_mut() else {
            return;
        };
        let before = self.received.len();
        while self.closed.is_none() {
            match wired.conn.poll_event() {
                Some(ConnectionEvent::Message(msg)) => {
                    self.busy = true;
                    match self.delivery {
                        Delivery::Callback => on_message(msg),
                        Delivery::Queued => self.received.push_back(msg),
                        Delivery::Discard => {}
                    }
                }
                Some(ConnectionEvent::Closed(cause)) => {
                    self.closed = Some(cause);
                    self.dispatch.wake_driver();
                }
                Some(ConnectionEvent::Connected { .. }) => {}
                None => break,
            }
        }
        if self.received.len() > before && !by_reader {
            self.dispatch.wake_reader();
        }
    }

    /// After a reader's turn: writes what the machine answered, and wakes
    /// the driver when its timer must run sooner than it is armed for.
    fn after_read(&mut self) {
        if !self.flushing {
            self.write_here();
        }
        let due = self.wired.as_ref().and_then(|w| w.conn.poll_timeout());
        if due.is_some_and(|due| self.armed.is_none_or(|armed| due < armed)) {
            self.dispatch.wake_driver();
        }
    }

    /// The driver's turn: reads what has arrived and writes what is
    /// queued, registering `cx` as the driver. Returns true when the read
    /// budget ran out (more may be waiting: the caller yields and comes
    /// back).
    pub(crate) fn drive(
        &mut self,
        cx: &mut Context<'_>,
        on_message: &mut impl FnMut(Bytes),
    ) -> bool {
        self.dispatch.set_driver(cx.waker());
        self.scheduled = false;
        let more = self.read(on_message, false);
        self.write(cx);
        if let Some(wired) = self.wired.as_mut() {
            // Frames read while the write waited came after those above.
            wired.take_inbox();
        }
        self.pump(on_message, false);
        more
    }
}
