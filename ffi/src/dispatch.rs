//! The shared dispatcher: every callback-mode object's events are delivered
//! by one small pool of tether-owned threads (2 to 4, by the machine's
//! cores), not by a thread per object, so ten thousand clients cost ten
//! thousand queues, not ten thousand threads.
//!
//! Each object has a lane: its events in order, bound at creation to one
//! pool thread (round robin), which delivers them (a lane is queued for
//! its thread only while it is not already queued or running). So an
//! object's callbacks come one at a time, in order, never concurrently,
//! always on the same thread; different objects' callbacks run side by
//! side on different threads. A lane hands its thread on after a batch,
//! so a busy object cannot starve the others on that thread.
//!
//! Stopping a lane (on `_free`) guarantees that once it returns no callback
//! of it runs or will run: it waits for a callback running on another
//! thread to return. Called from the lane's own callback it cannot wait for
//! itself: it marks the lane stopped and returns; the event being delivered
//! stays valid until that callback returns (mosquitto #1067).
//!
//! Messages fed (`tether_client_feed`, `tether_server_feed`) inside a
//! callback are flushed when the callback's batch ends ([`after_batch`]):
//! an echo that feeds each message it gets writes once per batch, from the
//! pool thread, and wakes no other.
//!
//! A callback that blocks holds its pool thread: other objects' events wait
//! for a free thread (their connections go on). Callbacks should return
//! promptly and hand long work to the application's own threads.

use crate::delivery::{wait_room, LOW_WATER};
use crate::event::{tether_event, OwnedEvent};
use crate::panic::fail;
use crate::result::tether_result;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, ThreadId};

/// Events a lane delivers before its thread goes to the next lane.
const BATCH: usize = 64;

/// A flush owed at the end of the running batch, and what it flushes
/// (one entry per object and connection, however many messages were fed).
pub(crate) struct Owed {
    key: (u64, u64),
    flush: Box<dyn FnOnce()>,
}

thread_local! {
    /// Set on pool threads: feeds made here are flushed after the batch.
    static OWED: RefCell<Option<Vec<Owed>>> = const { RefCell::new(None) };
}

/// Records that `key` (an object's handle and a connection id, 0 for a
/// client) was fed and must be flushed by `flush`. On a pool thread, inside
/// a callback, the flush runs when the batch ends and `true` is returned;
/// elsewhere nothing is recorded and `false` says the caller flushes.
pub(crate) fn owe_flush(key: (u64, u64), flush: impl FnOnce() + 'static) -> bool {
    OWED.with(|owed| {
        let mut owed = owed.borrow_mut();
        let Some(list) = owed.as_mut() else {
            return false;
        };
        if !list.iter().any(|o| o.key == key) {
            list.push(Owed {
                key,
                flush: Box::new(flush),
            });
        }
        true
    })
}

/// Runs the flushes owed by the batch that just ended (see [`owe_flush`]).
fn after_batch() {
    let owed = OWED.with(|owed| owed.borrow_mut().as_mut().map(std::mem::take));
    for o in owed.into_iter().flatten() {
        (o.flush)();
    }
}

/// What C gave for its callback.
pub(crate) type Callback = unsafe extern "C" fn(*mut c_void, *const tether_event);

pub(crate) struct UserData(pub(crate) *mut c_void);
// SAFETY: the userdata pointer is only handed back to the C callback, which
// the API documents as running on a tether-owned dispatch thread.
unsafe impl Send for UserData {}
// SAFETY: tether never dereferences it; it is only passed back to C.
unsafe impl Sync for UserData {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single step: poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One object's events and who delivers them.
pub(crate) struct Lane {
    state: Mutex<LaneState>,
    /// Signalled whenever a callback of this lane returns.
    returned: Condvar,
    cb: Callback,
    userdata: UserData,
    /// The pool thread that delivers this lane's events.
    worker: Arc<Worker>,
    /// Notified when deliveries took the queue down to `LOW_WATER`, and
    /// on stop.
    room: tokio::sync::Notify,
}

struct LaneState {
    events: VecDeque<OwnedEvent>,
    /// In the pool's ready queue, or being delivered.
    scheduled: bool,
    /// The thread inside one of this lane's callbacks right now.
    running: Option<ThreadId>,
    stopped: bool,
    /// A `stop` waits for the running callback to return: only then is
    /// `returned` signalled (a signal costs a system call).
    awaited: bool,
}

impl Lane {
    /// A lane delivering to `cb(userdata, …)` on the shared pool (started
    /// on first use).
    pub(crate) fn new(cb: Callback, userdata: UserData) -> Result<Arc<Self>, tether_result> {
        Ok(Arc::new(Self {
            state: Mutex::new(LaneState {
                events: VecDeque::new(),
                scheduled: false,
                running: None,
                stopped: false,
                awaited: false,
            }),
            returned: Condvar::new(),
            cb,
            userdata,
            worker: Pool::shared()?.assign(),
            room: tokio::sync::Notify::new(),
        }))
    }

    /// Queues one event; `false` once the lane was stopped.
    #[cfg(test)]
    pub(crate) fn push(self: &Arc<Self>, event: OwnedEvent) -> bool {
        self.push_all(std::iter::once(event))
    }

    /// Queues a burst of events, in order, with one lock and at most one
    /// wake-up of the lane's thread; `false` once the lane was stopped.
    pub(crate) fn push_all(self: &Arc<Self>, events: impl Iterator<Item = OwnedEvent>) -> bool {
        let mut s = lock(&self.state);
        if s.stopped {
            return false;
        }
        s.events.extend(events);
        if !s.scheduled && !s.events.is_empty() {
            s.scheduled = true;
            drop(s);
            if !self.worker.schedule(self.clone()) {
                // The pool was shut down (`tether_shutdown` freed every
                // object): this lane's object is gone too.
                let mut s = lock(&self.state);
                s.stopped = true;
                s.events.clear();
                return false;
            }
        }
        true
    }

    /// Waits while the lane holds `MAX_WAITING` events or more (see
    /// `delivery::MAX_WAITING`); returns at once when stopped.
    pub(crate) async fn room(&self) {
        wait_room(&self.room, || {
            let s = lock(&self.state);
            if s.stopped {
                0
            } else {
                s.events.len()
            }
        })
        .await;
    }

    /// Stops delivery: pending events are dropped and, once this returns,
    /// no callback runs (see the module docs for the call from inside a
    /// callback).
    pub(crate) fn stop(&self) {
        let me = std::thread::current().id();
        let mut s = lock(&self.state);
        s.stopped = true;
        s.events.clear();
        self.room.notify_waiters();
        while let Some(running) = s.running {
            if running == me {
                break;
            }
            s.awaited = true;
            s = self.returned.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Delivers up to a batch on the calling pool thread, then hands the
    /// thread on (re-queueing the lane when more is waiting).
    fn deliver(self: Arc<Self>) {
        self.deliver_batch();
        after_batch();
    }

    fn deliver_batch(self: Arc<Self>) {
        let me = std::thread::current().id();
        let mut s = lock(&self.state);
        for _ in 0..BATCH {
            let event = match s.events.pop_front() {
                Some(event) if !s.stopped => event,
                _ => {
                    s.scheduled = false;
                    return;
                }
            };
            s.running = Some(me);
            if s.events.len() == LOW_WATER {
                self.room.notify_waiters();
            }
            drop(s);
            let view = event.view();
            // SAFETY: the callback and userdata come from C, which promised
            // a callable function; `view` and its data live until after the
            // call (the event is dropped below).
            unsafe { (self.cb)(self.userdata.0, &view) };
            drop(event);
            s = lock(&self.state);
            s.running = None;
            if std::mem::take(&mut s.awaited) {
                self.returned.notify_all();
            }
        }
        if s.stopped || s.events.is_empty() {
            s.scheduled = false;
            return;
        }
        drop(s);
        if !self.worker.clone().schedule(self.clone()) {
            lock(&self.state).scheduled = false;
        }
    }
}

/// The pool: its threads, one worker each.
struct Pool {
    workers: Vec<Arc<Worker>>,
    /// The next worker a new lane is bound to (modulo their number).
    next: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// One pool thread's lanes that have events.
struct Worker {
    ready: Mutex<Ready>,
    wake: Condvar,
}

struct Ready {
    lanes: VecDeque<Arc<Lane>>,
    /// Set by `shutdown`: the thread finishes what is queued and ends.
    closing: bool,
}

/// The current pool; `shutdown` takes it, the next object starts another.
static POOL: Mutex<Option<Arc<Pool>>> = Mutex::new(None);

impl Pool {
    fn shared() -> Result<Arc<Self>, tether_result> {
        let mut current = lock(&POOL);
        if let Some(pool) = current.as_ref() {
            return Ok(pool.clone());
        }
        let want = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 4);
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        let mut error = None;
        for i in 0..want {
            let worker = Arc::new(Worker {
                ready: Mutex::new(Ready {
                    lanes: VecDeque::new(),
                    closing: false,
                }),
                wake: Condvar::new(),
            });
            let runs = worker.clone();
            match std::thread::Builder::new()
                .name(format!("tether-dispatch-{i}"))
                .spawn(move || runs.work())
            {
                Ok(t) => {
                    workers.push(worker);
                    threads.push(t);
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if workers.is_empty() {
            let e = error.map_or_else(|| "no thread".to_string(), |e| e.to_string());
            return Err(fail(
                tether_result::Io,
                format!("cannot start a dispatch thread: {e}"),
            ));
        }
        let pool = Arc::new(Pool {
            workers,
            next: AtomicUsize::new(0),
            threads: Mutex::new(threads),
        });
        *current = Some(pool.clone());
        Ok(pool)
    }

    /// The worker for a new lane.
    fn assign(&self) -> Arc<Worker> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        self.workers[i].clone()
    }
}

impl Worker {
    /// Queues `lane` for this thread; `false` once it is shutting down.
    fn schedule(&self, lane: Arc<Lane>) -> bool {
        let mut ready = lock(&self.ready);
        if ready.closing {
            return false;
        }
        ready.lanes.push_back(lane);
        drop(ready);
        self.wake.notify_one();
        true
    }

    fn work(&self) {
        OWED.with(|owed| *owed.borrow_mut() = Some(Vec::new()));
        loop {
            let lane = {
                let mut ready = lock(&self.ready);
                loop {
                    if let Some(lane) = ready.lanes.pop_front() {
                        break lane;
                    }
                    if ready.closing {
                        return;
                    }
                    ready = self.wake.wait(ready).unwrap_or_else(|p| p.into_inner());
                }
            };
            lane.deliver();
        }
    }
}

/// Ends the pool's threads once every lane has been stopped (process
/// teardown, `tether_shutdown`): waits for them, except for the calling
/// thread when it is one of them (a callback calling `tether_shutdown`),
/// which ends when its callback returns.
pub(crate) fn shutdown() {
    let Some(pool) = lock(&POOL).take() else {
        return;
    };
    for worker in &pool.workers {
        lock(&worker.ready).closing = true;
        worker.wake.notify_all();
    }
    let me = std::thread::current().id();
    let threads = std::mem::take(&mut *lock(&pool.threads));
    for t in threads {
        if t.thread().id() != me {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::HashSet;
    use std::future::Future;
    use std::time::{Duration, Instant};

    /// What one test lane saw.
    #[derive(Default)]
    struct Seen {
        /// The `conn` field of each event, in delivery order.
        order: Mutex<Vec<u64>>,
        threads: Mutex<HashSet<ThreadId>>,
        /// Callbacks running for this lane right now (must stay ≤ 1).
        inside: AtomicUsize,
        overlapped: AtomicUsize,
        /// Stop the lane from inside the callback at this event.
        stop_at: Option<u64>,
        lane: Mutex<Option<Arc<Lane>>>,
    }

    unsafe extern "C" fn record(userdata: *mut c_void, event: *const tether_event) {
        // SAFETY: the tests pass a `Seen` that outlives every lane.
        let seen = unsafe { &*(userdata as *const Seen) };
        // SAFETY: the dispatcher passes a valid event for the call.
        let conn = unsafe { (*event).conn };
        if seen.inside.fetch_add(1, Ordering::SeqCst) > 0 {
            seen.overlapped.fetch_add(1, Ordering::SeqCst);
        }
        lock(&seen.threads).insert(std::thread::current().id());
        lock(&seen.order).push(conn);
        if seen.stop_at == Some(conn) {
            if let Some(lane) = lock(&seen.lane).as_ref() {
                lane.stop();
            }
        }
        seen.inside.fetch_sub(1, Ordering::SeqCst);
    }

    fn event(n: u64) -> OwnedEvent {
        OwnedEvent::message(1, n, Bytes::from_static(b"x"))
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn many_objects_share_a_few_threads_each_in_order_never_concurrently() {
        const LANES: usize = 300;
        const EVENTS: u64 = 200;
        let seen: Vec<Arc<Seen>> = (0..LANES).map(|_| Arc::new(Seen::default())).collect();
        let lanes: Vec<Arc<Lane>> = seen
            .iter()
            .map(|s| Lane::new(record, UserData(Arc::as_ptr(s) as *mut c_void)).unwrap())
            .collect();
        // Two producers push interleaved, like runtime tasks of many objects.
        std::thread::scope(|scope| {
            for half in 0..2 {
                let lanes = &lanes;
                scope.spawn(move || {
                    for n in 0..EVENTS {
                        for lane in lanes.iter().skip(half).step_by(2) {
                            assert!(lane.push(event(n)));
                        }
                    }
                });
            }
        });
        wait_for("every event", || {
            seen.iter().all(|s| lock(&s.order).len() == EVENTS as usize)
        });
        let mut all_threads = HashSet::new();
        for s in &seen {
            assert_eq!(*lock(&s.order), (0..EVENTS).collect::<Vec<_>>());
            assert_eq!(s.overlapped.load(Ordering::SeqCst), 0);
            assert_eq!(lock(&s.threads).len(), 1, "one object, one thread");
            all_threads.extend(lock(&s.threads).iter().copied());
        }
        assert!(
            all_threads.len() <= 4,
            "{} threads delivered for {LANES} objects",
            all_threads.len()
        );
        for lane in &lanes {
            lane.stop();
            assert!(!lane.push(event(0)), "a stopped lane takes nothing");
        }
    }

    #[test]
    fn a_lane_stopped_inside_its_own_callback_delivers_nothing_after_it() {
        let seen = Arc::new(Seen {
            stop_at: Some(5),
            ..Seen::default()
        });
        let lane = Lane::new(record, UserData(Arc::as_ptr(&seen) as *mut c_void)).unwrap();
        *lock(&seen.lane) = Some(lane.clone());
        for n in 0..100 {
            lane.push(event(n));
        }
        wait_for("the stop", || !lane.push(event(999)));
        // Whatever ran, ran before the stop returned inside event 5.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(*lock(&seen.order), (0..=5).collect::<Vec<_>>());
        lock(&seen.lane).take();
    }

    #[test]
    fn a_lagging_callback_holds_the_producer_back_until_it_catches_up() {
        use crate::delivery::MAX_WAITING;
        static GATE: AtomicUsize = AtomicUsize::new(0);
        unsafe extern "C" fn gated(userdata: *mut c_void, _event: *const tether_event) {
            // SAFETY: the test passes an `AtomicUsize` that outlives the lane.
            let delivered = unsafe { &*(userdata as *const AtomicUsize) };
            while GATE.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            delivered.fetch_add(1, Ordering::SeqCst);
        }
        let delivered = Arc::new(AtomicUsize::new(0));
        let lane = Lane::new(gated, UserData(Arc::as_ptr(&delivered) as *mut c_void)).unwrap();
        let total = MAX_WAITING + 100;
        assert!(lane.push_all((0..total as u64).map(event)));
        let room = lane.room();
        let mut room = std::pin::pin!(room);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            room.as_mut().poll(&mut cx).is_pending(),
            "over the limit: the producer waits"
        );
        GATE.store(1, Ordering::SeqCst);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), room)
                .await
                .expect("room once the callback caught up");
        });
        wait_for("every event", || delivered.load(Ordering::SeqCst) == total);
        lane.stop();
    }

    #[test]
    fn a_stop_from_outside_waits_for_the_running_callback() {
        unsafe extern "C" fn slow(userdata: *mut c_void, _event: *const tether_event) {
            // SAFETY: the test passes an `AtomicUsize` that outlives the lane.
            let state = unsafe { &*(userdata as *const AtomicUsize) };
            state.store(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            state.store(2, Ordering::SeqCst);
        }
        let state = Arc::new(AtomicUsize::new(0));
        let lane = Lane::new(slow, UserData(Arc::as_ptr(&state) as *mut c_void)).unwrap();
        lane.push(event(1));
        lane.push(event(2));
        wait_for("the first callback", || state.load(Ordering::SeqCst) == 1);
        lane.stop();
        assert_eq!(
            state.load(Ordering::SeqCst),
            2,
            "the running callback returned"
        );
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            state.load(Ordering::SeqCst),
            2,
            "the second event never ran"
        );
    }
}
