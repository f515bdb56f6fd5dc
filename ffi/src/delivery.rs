//! Getting events from tether's runtime to C, in one of two modes chosen at
//! creation:
//!
//! * **callback**: a tether-owned dispatch thread per object calls
//!   `callback(userdata, &event)`, one event at a time, in order;
//! * **poll**: events wait in a queue; C takes them with `*_poll_event` and
//!   can sleep on a file descriptor that is readable while the queue is not
//!   empty.
//!
//! Stopping (on `_free`) guarantees that once it returns no callback runs or
//! will run, except when it is called from the object's own callback
//! (mosquitto #1067): then it cannot wait for itself, so it marks the
//! dispatcher stopped and detaches it; the thread finishes when the
//! callback returns, and the event being delivered (owned by that thread)
//! stays valid until then.

use crate::event::{tether_event, tether_event_callback, OwnedEvent};
use crate::notify::Notifier;
use crate::panic::fail;
use crate::result::tether_result;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

pub(crate) enum Msg {
    Event(OwnedEvent),
    Stop,
}

struct UserData(*mut c_void);
// SAFETY: the userdata pointer is only handed back to the C callback, which
// the API documents as running on the dispatch thread.
unsafe impl Send for UserData {}

/// Where the runtime side pushes events.
#[derive(Clone)]
pub(crate) enum Sink {
    Callback(mpsc::Sender<Msg>),
    /// Weak, so that the queue (and its descriptor) goes away with the
    /// object, not whenever the runtime drops the pump.
    Poll(Weak<PollQueue>),
}

impl Sink {
    /// Hands over one event; `false` once the object is gone.
    pub(crate) fn push(&self, event: OwnedEvent) -> bool {
        match self {
            Sink::Callback(tx) => tx.send(Msg::Event(event)).is_ok(),
            Sink::Poll(q) => match q.upgrade() {
                Some(q) => {
                    q.push(event);
                    true
                }
                None => false,
            },
        }
    }
}

/// The C side of an object's event delivery.
pub(crate) enum Delivery {
    Callback(Dispatcher),
    Poll(Arc<PollQueue>),
}

impl Delivery {
    /// Callback mode when `callback` is set, else poll mode. `name` names
    /// the dispatch thread.
    pub(crate) fn new(
        callback: tether_event_callback,
        userdata: *mut c_void,
        name: &str,
    ) -> Result<(Self, Sink), tether_result> {
        match callback {
            Some(cb) => {
                let (d, tx) = Dispatcher::spawn(cb, UserData(userdata), name)?;
                Ok((Delivery::Callback(d), Sink::Callback(tx)))
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

/// A dispatch thread calling the C callback.
pub(crate) struct Dispatcher {
    tx: mpsc::Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stopped: Arc<AtomicBool>,
}

type Callback = unsafe extern "C" fn(*mut c_void, *const tether_event);

impl Dispatcher {
    fn spawn(
        cb: Callback,
        userdata: UserData,
        name: &str,
    ) -> Result<(Self, mpsc::Sender<Msg>), tether_result> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let userdata = userdata;
                while let Ok(Msg::Event(event)) = rx.recv() {
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    let view = event.view();
                    // SAFETY: the callback and userdata come from C, which
                    // promised a callable function; `view` and its data live
                    // until after the call.
                    unsafe { cb(userdata.0, &view) };
                    drop(event);
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                }
            })
            .map_err(|e| {
                fail(
                    tether_result::Io,
                    format!("cannot start a dispatch thread: {e}"),
                )
            })?;
        let d = Dispatcher {
            tx: tx.clone(),
            thread: Mutex::new(Some(thread)),
            stopped,
        };
        Ok((d, tx))
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _ = self.tx.send(Msg::Stop);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            if thread.thread().id() == std::thread::current().id() {
                // Called from our own callback: the thread ends when the
                // callback returns. Detach instead of waiting for ourselves.
                drop(thread);
            } else {
                let _ = thread.join();
            }
        }
    }
}

/// Poll-mode queue with its readiness descriptor.
pub(crate) struct PollQueue {
    state: Mutex<PollState>,
    notifier: Notifier,
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
        })
    }

    fn lock(&self) -> MutexGuard<'_, PollState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // The descriptor is raised and cleared under the queue lock, so it is
    // readable exactly while the queue is non-empty.
    fn push(&self, event: OwnedEvent) {
        let mut s = self.lock();
        if s.queue.is_empty() {
            self.notifier.raise();
        }
        s.queue.push_back(event);
    }

    fn pop(&self) -> Option<tether_event> {
        let mut s = self.lock();
        let event = s.queue.pop_front()?;
        if s.queue.is_empty() {
            self.notifier.clear();
        }
        let view = event.view();
        s.current = Some(event);
        Some(view)
    }
}
