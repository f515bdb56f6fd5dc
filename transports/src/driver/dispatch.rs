//! The one waker every read of a connection's link registers, whoever
//! polls it. A link keeps one waker per direction, yet two tasks read it:
//! the application's, while it waits for a message, and the connection's
//! own driver task, while nobody else does (so pings are answered and
//! liveness runs even when the application is busy). When the socket
//! becomes readable this waker wakes the application if it is waiting,
//! and the driver otherwise; so a message costs no hop through the driver
//! when the application is already waiting for it.

use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

#[derive(Default)]
pub(crate) struct Dispatch {
    /// The application task waiting in a receive.
    reader: AtomicWaker,
    /// The connection's driver task.
    driver: AtomicWaker,
    /// True while `reader` waits (set and cleared by the receive).
    reading: AtomicBool,
}

impl Dispatch {
    /// A new dispatch and the waker to give the link.
    pub(crate) fn new() -> (Arc<Self>, Waker) {
        let dispatch = Arc::new(Self::default());
        let waker = Waker::from(dispatch.clone());
        (dispatch, waker)
    }

    /// The application waits for a message: readiness wakes `waker`.
    pub(crate) fn wait_reader(&self, waker: &Waker) {
        self.reader.register(waker);
        self.reading.store(true, Ordering::Release);
    }

    /// The application stopped waiting: readiness wakes the driver.
    pub(crate) fn stop_reader(&self) {
        self.reading.store(false, Ordering::Release);
        drop(self.reader.take());
    }

    /// Registers the driver task.
    pub(crate) fn set_driver(&self, waker: &Waker) {
        self.driver.register(waker);
    }

    /// Wakes the application if it waits (messages arrived for it).
    pub(crate) fn wake_reader(&self) {
        if self.reading.load(Ordering::Acquire) {
            self.reader.wake();
        }
    }

    /// Wakes the driver task (it must take over).
    pub(crate) fn wake_driver(&self) {
        self.driver.wake();
    }
}

impl Wake for Dispatch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.reading.load(Ordering::Acquire) {
            self.reader.wake();
        } else {
            self.driver.wake();
        }
    }
}
