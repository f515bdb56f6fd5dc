//! Getting events from tether's runtime to C, in one of two modes chosen at
//! creation:
//!
//! * **callback**: the shared dispatcher (`dispatch`) calls
//!   `callback(userdata, &event)` on one of its few threads, one event at a
//!   time per object, in order;
//! * **poll**: events wait in a queue; C takes them with `*_poll_event` and
//!   can sleep on a file descriptor that is readable while the queue is not
//!   empty.
//!
//! Stopping (on `_free`) guarantees that once it returns no callback runs or
//! will run, except when it is called from the object's own callback; see
//! `dispatch`.

use crate::dispatch::{Lane, UserData};
use crate::event::{tether_event, tether_event_callback, OwnedEvent};
use crate::notify::Notifier;
use crate::panic::fail;
use crate::result::tether_result;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Where the runtime side pushes events.
#[derive(Clone)]
pub(crate) enum Sink {
    Callback(Arc<Lane>),
    /// Weak, so that the queue (and its descriptor) goes away with the
    /// object, not whenever the runtime drops the pump.
    Poll(Weak<PollQueue>),
}

/// Events the runtime side takes from an object at once (one lock and one
/// wake-up of the C side per burst, not per event).
pub(crate) const BURST: usize = 256;

/// Events an object keeps for C at most (plus one burst): at this many the
/// pump stops taking more until C has taken them down to [`LOW_WATER`], so
/// a slow callback or a program that polls rarely holds the Rust side back
/// (a client's receive queue fills and its socket is no longer read)
/// instead of memory growing.
pub(crate) const MAX_WAITING: usize = 4 * BURST;

/// See [`MAX_WAITING`].
pub(crate) const LOW_WATER: usize = MAX_WAITING / 2;

/// Waits until `len()` is below [`MAX_WAITING`]; `room` is notified (all
/// waiters) when a consumer takes the count down to [`LOW_WATER`].
pub(crate) async fn wait_room(room: &tokio::sync::Notify, len: impl Fn() -> usize) {
    loop {
        let notified = room.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so a notification between the two
        // is not lost.
        notified.as_mut().enable();
        if len() < MAX_WAITING {
            return;
        }
        notified.await;
    }
}

impl Sink {
    /// Hands over a burst of events, in order; `false` once the object is
    /// gone.
    pub(crate) fn push_all(&self, events: impl Iterator<Item = OwnedEvent>) -> bool {
        match self {
            Sink::Callback(lane) => lane.push_all(events),
            Sink::Poll(q) => match q.upgrade() {
                Some(q) => {
                    q.push_all(events);
                    true
                }
                None => false,
            },
        }
    }

    /// Waits while the object holds [`MAX_WAITING`] events or more that C
    /// has not taken (see there).
    pub(crate) async fn room(&self) {
        match self {
            Sink::Callback(lane) => lane.room().await,
            Sink::Poll(q) => {
                if let Some(q) = q.upgrade() {
                    wait_room(&q.room, || q.lock().queue.len()).await;
                }
            }
        }
    }
}

/// The C side of an object's event delivery.
pub(crate) enum Delivery {
    Callback(Arc<Lane>),
    Poll(Arc<PollQueue>),
}

impl Delivery {
    /// Callback mode when `callback` is set, else poll mode.
    pub(crate) fn new(
        callback: tether_event_callback,
        userdata: *mut c_void,
    ) -> Result<(Self, Sink), tether_result> {
        match callback {
            Some(cb) => {
                let lane = Lane::new(cb, UserData(userdata))?;
                Ok((Delivery::Callback(lane.clone()), Sink::Callback(lane)))
            }
            None => {
                let q = Arc::new(PollQueue::new()?);
                let sink = Sink::Poll(Arc::downgrade(&q));
                Ok((Delivery::Poll(q), sink))
            }
        }
    }

    /// Ends delivery: no callback runs after this returns (see the module
    /// docs for the call from inside a callback).
    pub(crate) fn stop(&self) {
        if let Delivery::Callback(d) = self {
            d.stop();
        }
    }

    fn poll_queue(&self) -> Result<&PollQueue, tether_result> {
        match self {
            Delivery::Poll(q) => Ok(q),
            Delivery::Callback(_) => Err(fail(
                tether_result::WrongMode,
                "this object delivers events by callback; it was created with a callback",
            )),
        }
    }

    /// Poll mode: the next event, valid until the next poll.
    pub(crate) fn poll(&self) -> Result<tether_event, tether_result> {
        self.poll_queue()?.pop().ok_or(tether_result::Empty)
    }

    /// Poll mode: the readiness descriptor.
    pub(crate) fn event_fd(&self) -> Result<i32, tether_result> {
        let fd = self.poll_queue()?.notifier.fd();
        if fd < 0 {
            return Err(tether_result::NotSupported);
        }
        Ok(fd)
    }
}

/// Poll-mode queue with its readiness descriptor.
pub(crate) struct PollQueue {
    state: Mutex<PollState>,
    notifier: Notifier,
    /// Notified when C took the queue down to [`LOW_WATER`].
    room: tokio::sync::Notify,
}

struct PollState {
    queue: VecDeque<OwnedEvent>,
    /// The event last handed out; its payload must outlive the poll call.
    current: Option<OwnedEvent>,
}

impl PollQueue {
    fn new() -> Result<Self, tether_result> {
        let notifier = Notifier::new().map_err(|e| {
            fail(
                tether_result::Io,
                format!("cannot create the event fd: {e}"),
            )
        })?;
        Ok(Self {
            state: Mutex::new(PollState {
                queue: VecDeque::new(),
                current: None,
            }),
            notifier,
            room: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PollState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // The descriptor is raised and cleared under the queue lock, so it is
    // readable exactly while the queue is non-empty.
    fn push_all(&self, events: impl Iterator<Item = OwnedEvent>) {
        let mut s = self.lock();
        let was_empty = s.queue.is_empty();
        s.queue.extend(events);
        if was_empty && !s.queue.is_empty() {
            self.notifier.raise();
        }
    }

    fn pop(&self) -> Option<tether_event> {
        let mut s = self.lock();
        let event = s.queue.pop_front()?;
        if s.queue.is_empty() {
            self.notifier.clear();
        }
        if s.queue.len() == LOW_WATER {
            self.room.notify_waiters();
        }
        let view = event.view();
        s.current = Some(event);
        Some(view)
    }
}
