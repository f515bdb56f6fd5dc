//! The one rule for giving a queue's memory back: an empty queue drops its
//! buffer (a queue keeps its capacity after a burst otherwise, and an idle
//! connection would hold every burst's high-water mark). Callers decide
//! when: where emptiness is rare (lifecycle steps) on every take, on hot
//! queues only when time passed without traffic.

use std::collections::VecDeque;

/// A queue whose buffer can be given back while it is empty.
pub trait ReleaseIfEmpty {
    /// Drops the buffer if nothing is queued.
    fn release_if_empty(&mut self);
}

impl<T> ReleaseIfEmpty for VecDeque<T> {
    fn release_if_empty(&mut self) {
        if self.is_empty() {
            *self = VecDeque::new();
        }
    }
}

impl<T> ReleaseIfEmpty for Vec<T> {
    fn release_if_empty(&mut self) {
        if self.is_empty() {
            *self = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_empty_queue_gives_its_buffer_back() {
        let mut q: VecDeque<u8> = (0..100).collect();
        q.release_if_empty();
        assert_eq!(q.len(), 100, "a queue with items keeps them");
        q.clear();
        q.release_if_empty();
        assert_eq!(q.capacity(), 0);
        let mut v: Vec<u8> = Vec::with_capacity(64);
        v.release_if_empty();
        assert_eq!(v.capacity(), 0);
    }
}
