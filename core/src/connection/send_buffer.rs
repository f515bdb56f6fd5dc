//! The application's outgoing messages of one connection: bounded, in
//! order, and shared by stream and datagram transports.
//!
//! A message leaves the buffer when it is encoded for the transport. The
//! session layer will keep it instead until the peer acknowledges it (and
//! replay it on the next connection); the buffer is the one place that
//! changes for that.

use crate::release::ReleaseIfEmpty;
use bytes::Bytes;
use std::collections::VecDeque;

/// Bounded FIFO of messages not yet handed to the transport.
#[derive(Debug)]
pub(crate) struct SendBuffer {
    queue: VecDeque<Bytes>,
    limit: usize,
}

impl SendBuffer {
    pub(crate) fn new(limit: usize) -> Self {
        // Nothing is allocated until the first message: an idle
        // connection costs only the struct.
        Self {
            queue: VecDeque::new(),
            limit,
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.queue.len() >= self.limit
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn push(&mut self, msg: Bytes) {
        self.queue.push_back(msg);
    }

    pub(crate) fn pop(&mut self) -> Option<Bytes> {
        let msg = self.queue.pop_front();
        if self.queue.is_empty() && self.queue.capacity() > super::IDLE_SLOTS {
            // A burst is over: give the memory back, all but a few slots.
            self.queue.shrink_to(super::IDLE_SLOTS);
        }
        msg
    }

    /// Gives the memory back when nothing is queued.
    pub(crate) fn release_idle(&mut self) {
        self.queue.release_if_empty();
    }

    #[cfg(test)]
    pub(crate) fn queue_capacity(&self) -> usize {
        self.queue.capacity()
    }

    pub(crate) fn front_len(&self) -> Option<usize> {
        self.queue.front().map(Bytes::len)
    }
}
