//! Sends that never wait behind a system call. A connection's state is
//! locked while its holder reads or writes the socket; a send or a flush
//! that finds it locked leaves its work here instead of blocking its
//! thread, and the holder does that work before it lets go of the lock
//! (whoever holds the lock does what the others asked for). Only a burst
//! longer than [`HANDOVER_MAX`] waits for the lock.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::Waker;

use super::shared::Push;
use tether_core::release::ReleaseIfEmpty;

/// Most messages left for the lock's holder; one more waits for the lock.
pub(crate) const HANDOVER_MAX: usize = 256;

/// What was left for the holder of a connection's lock.
#[derive(Default)]
pub(crate) struct Handover {
    work: Mutex<Work>,
    /// True while `work` holds something (read without its lock).
    pending: AtomicBool,
}

#[derive(Default)]
pub(crate) struct Work {
    /// Messages accepted while the state was locked, in order.
    pub(crate) messages: VecDeque<(Bytes, Push)>,
    /// A flush was asked for.
    pub(crate) flush: bool,
    /// A receive found the state locked: it is woken to try again once
    /// the holder lets go (usually on the holder's own thread, next).
    pub(crate) reader: Option<Waker>,
    /// The connection's link was taken back: nothing is left here any
    /// more (the sender takes the lock and learns it).
    pub(crate) closed: bool,
}

impl Handover {
    fn work(&self) -> std::sync::MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leaves `msg` for the holder; hands it back when it must wait for
    /// the lock instead (the handover is full, or the link was taken).
    pub(crate) fn leave(&self, msg: Bytes, push: Push) -> Result<(), Bytes> {
        let mut work = self.work();
        if work.closed || work.messages.len() >= HANDOVER_MAX {
            return Err(msg);
        }
        work.messages.push_back((msg, push));
        self.pending.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Asks the holder to flush.
    pub(crate) fn leave_flush(&self) {
        let mut work = self.work();
        if !work.closed {
            work.flush = true;
            self.pending.store(true, Ordering::SeqCst);
        }
    }

    /// Gives back the memory of an empty queue (the connection is idle).
    pub(crate) fn release_idle(&self) {
        if let Ok(mut work) = self.work.try_lock() {
            work.messages.release_if_empty();
        }
    }

    /// Asks the holder to wake `waker` when it lets go; false once the
    /// link was taken back (the caller then waits for the lock).
    pub(crate) fn leave_read(&self, waker: &Waker) -> bool {
        let mut work = self.work();
        if work.closed {
            return false;
        }
        match &mut work.reader {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        self.pending.store(true, Ordering::SeqCst);
        true
    }

    /// True when something was left (the holder checks after letting go).
    pub(crate) fn pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst)
    }

    /// Hands what was left to `take`, under the handover's own lock (the
    /// caller holds the state's); with `close`, nothing more is accepted.
    pub(crate) fn take(&self, close: bool, take: impl FnOnce(&mut Work)) {
        if !close && !self.pending() {
            return;
        }
        let mut work = self.work();
        self.pending.store(false, Ordering::SeqCst);
        take(&mut work);
        work.flush = false;
        work.messages.clear();
        if let Some(reader) = work.reader.take() {
            reader.wake();
        }
        if close {
            work.closed = true;
        }
    }
}
