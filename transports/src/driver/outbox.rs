//! Where a client's messages go: straight into the live connection (and
//! usually onto the wire from the sending task, see `shared`), or, while
//! there is none, into a bounded queue that the next connection takes
//! first. One lock decides between the two, so a message can never pass
//! one sent before it.

use super::shared::{Delivery, Push, Refused, Shared};
use crate::link::BoxLink;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tether_core::codec::Frame;

/// The live connection of a client.
pub(crate) type Live = Arc<Shared<BoxLink>>;

/// Why a message was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotTaken {
    /// The queue is full.
    Full,
    /// The client has ended.
    Closed,
}

pub(crate) struct Outbox {
    state: Mutex<State>,
}

struct State {
    live: Option<Live>,
    /// Messages waiting for a connection, oldest first.
    queue: VecDeque<Bytes>,
    limit: usize,
    /// Senders waiting for room in `queue`.
    waiters: Vec<Waker>,
    closed: bool,
    /// False once the application can no longer receive (its `Client` was
    /// dropped): connections then drop what they receive.
    receiving: bool,
}

impl Outbox {
    /// An outbox keeping at most `limit` messages while disconnected.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(State {
                live: None,
                queue: VecDeque::new(),
                limit: limit.max(1),
                waiters: Vec::new(),
                closed: false,
                receiving: true,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `msg` (leaving `None`) or says why not. With `cx`, a full
    /// queue registers it to be woken when there is room.
    pub(crate) fn poll_send(
        &self,
        mut cx: Option<&mut Context<'_>>,
        msg: &mut Option<Bytes>,
        push: Push,
    ) -> Poll<Result<(), NotTaken>> {
        let Some(data) = msg.take() else {
            return Poll::Ready(Ok(()));
        };
        let mut state = self.lock();
        if state.closed {
            return Poll::Ready(Err(NotTaken::Closed));
        }
        let data = match &state.live {
            Some(live) => {
                let taken = match cx.as_deref_mut() {
                    Some(cx) => {
                        let mut slot = Some(data);
                        match live.poll_send(cx, &mut slot, push) {
                            Poll::Ready(Ok(())) => Ok(()),
                            Poll::Ready(Err(data)) => Err(Refused::Closed(data)),
                            Poll::Pending => Err(Refused::Full(slot.take().unwrap_or_default())),
                        }
                    }
                    None => live.try_send(data, push),
                };
                match taken {
                    Ok(()) => return Poll::Ready(Ok(())),
                    Err(Refused::Full(data)) => {
                        // Woken by the connection when it has room.
                        *msg = Some(data);
                        return match cx {
                            Some(_) => Poll::Pending,
                            None => Poll::Ready(Err(NotTaken::Full)),
                        };
                    }
                    // Lost just now; the driver has not taken it back yet:
                    // the message waits for the next connection.
                    Err(Refused::Closed(data)) => data,
                }
            }
            None => data,
        };
        if state.queue.len() >= state.limit {
            *msg = Some(data);
            return match cx {
                Some(cx) => {
                    if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        state.waiters.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
                None => Poll::Ready(Err(NotTaken::Full)),
            };
        }
        state.queue.push_back(data);
        Poll::Ready(Ok(()))
    }

    /// Writes what was fed to the live connection (see `Push::Feed`).
    /// While there is none, fed messages wait like any other: the next
    /// connection writes them first.
    pub(crate) fn flush(&self) {
        let live = self.lock().live.clone();
        if let Some(live) = live {
            live.flush();
        }
    }

    /// A connection is up: what waited goes first, then sends go to it.
    pub(crate) fn attach(&self, live: Live) {
        let mut state = self.lock();
        {
            let mut carrier = live.lock();
            if !state.receiving {
                carrier.set_delivery(Delivery::Discard);
            }
            if let Some(wired) = carrier.wired() {
                wired
                    .outgoing
                    .extend(state.queue.drain(..).map(Frame::Data));
            }
        }
        state.live = Some(live);
        for waker in state.waiters.drain(..) {
            waker.wake();
        }
    }

    /// The connection is gone: its messages not yet written go back to
    /// the front of the queue, in order, for the next connection. Returns
    /// the link and machine (to close them), unless already taken.
    pub(crate) fn detach(&self, live: &Live) -> Option<super::wired::Wired<BoxLink>> {
        let mut state = self.lock();
        if state.live.as_ref().is_some_and(|l| Arc::ptr_eq(l, live)) {
            state.live = None;
        }
        let mut wired = live.take(true)?;
        let unwritten: Vec<Bytes> = wired
            .outgoing
            .drain(..)
            .filter_map(|frame| match frame {
                Frame::Data(data) => Some(data),
                _ => None,
            })
            .collect();
        for data in unwritten.into_iter().rev() {
            state.queue.push_front(data);
        }
        Some(wired)
    }

    /// The client has ended: every send fails from now on.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.live = None;
        state.queue.clear();
        for waker in state.waiters.drain(..) {
            waker.wake();
        }
    }

    /// Nobody receives any more: the live connection and every later one
    /// drop what they receive (sending goes on).
    pub(crate) fn stop_receiving(&self) {
        let mut state = self.lock();
        state.receiving = false;
        if let Some(live) = &state.live {
            live.discard_received();
        }
    }

    /// True once the client has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}
