//! The server-side connection registry: liveness for millions of
//! connections in one sans-IO object, for servers that own their event loop
//! (epoll, io_uring, a tokio task).
//!
//! Each connection gets a generation-checked [`ConnId`] and a liveness
//! [`Watch`] judged by the same [`Policy`] as the single-connection
//! [`Monitor`](crate::liveness::Monitor). Deadlines live in a hierarchical
//! timing wheel, so the classic "sweep every client once a second" becomes:
//!
//! * [`Registry::touch`] on received traffic: O(1), it only records the
//!   time (the armed timer is left alone and re-evaluated when it fires);
//! * [`Registry::poll_timeout`] for the next deadline (the `epoll_wait`
//!   timeout or a `timerfd`);
//! * [`Registry::handle_timeout`] when it passes, then
//!   [`Registry::poll_event`] until `None`: [`RegistryEvent::PingDue`] (send
//!   a ping) or [`RegistryEvent::Expired`] (close; the id is already gone).
//!
//! Work is proportional to the timers that come due, never to the number of
//! connections or to the time elapsed: a laptop resuming after a day of
//! sleep needs one `handle_timeout`.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tether_core::liveness::{HeartbeatConfig, Policy};
//! use tether_core::registry::{Registry, RegistryEvent};
//!
//! let start = Instant::now();
//! let policy = Policy::Heartbeat(HeartbeatConfig::new(
//!     Duration::from_secs(10), // ping after 10 s of silence
//!     Duration::from_secs(5),  // wait 5 s for any reply
//!     2,                       // two missed replies: dead
//! ));
//! let mut reg = Registry::new(policy, start).unwrap();
//!
//! // Two clients connect; the tag is whatever the server needs back
//! // (here a file descriptor).
//! let chatty = reg.insert(start, 7).unwrap();
//! let silent = reg.insert(start, 8).unwrap();
//!
//! // The server loop, with a simulated clock: wait until the next deadline
//! // (epoll_wait would get `deadline - now` as its timeout), feed traffic,
//! // handle timeouts, drain events.
//! let mut now = start;
//! let mut pings = Vec::new();
//! while reg.contains(silent) {
//!     let next = reg.poll_timeout().expect("connections are registered");
//!     // The chatty client sends something every second.
//!     while now + Duration::from_secs(1) <= next {
//!         now += Duration::from_secs(1);
//!         reg.touch(chatty, now).unwrap();
//!     }
//!     now = next.max(now);
//!     reg.handle_timeout(now);
//!     while let Some(event) = reg.poll_event() {
//!         match event {
//!             RegistryEvent::PingDue { tag, .. } => pings.push(tag), // send a ping on fd `tag`
//!             RegistryEvent::Expired { id, tag, silent_for } => {
//!                 // close fd `tag`; `id` is already stale
//!                 assert_eq!((id, tag), (silent, 8));
//!                 assert_eq!(silent_for, reg.detection_bound());
//!             }
//!         }
//!     }
//! }
//! assert_eq!(now - start, Duration::from_secs(20)); // 10 s + 2 x 5 s
//! assert_eq!(pings, [8, 8]);
//! assert!(reg.contains(chatty));
//! assert_eq!(reg.remove(silent), Err(tether_core::HandleError::Stale));
//! ```

mod event;
mod full;
mod id;
mod slab;
mod wheel;

#[cfg(test)]
mod tests;

pub use event::RegistryEvent;
pub use full::RegistryFull;
pub use id::ConnId;

use crate::liveness::{Policy, Ticks, Verdict, Watch};
use crate::{ConfigError, HandleError};
use slab::{stamp, Slab};
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};
use wheel::Wheel;

/// Event queue capacity kept between bursts.
const EVENT_QUEUE_KEEP: usize = 1024;

/// An `Instant` converted to a tick, and the hot-entry stamp for traffic
/// at that tick.
#[derive(Debug, Clone, Copy)]
struct Now {
    at: Instant,
    tick: u64,
    /// With [`stamp::SLOW`] when `tick` is not near the wheel's tick.
    stamp: u32,
}

/// Liveness tracking for many connections with one timer structure.
///
/// Calling contract (see the [module docs](self) for a full loop):
/// [`insert`](Self::insert) on accept, [`touch`](Self::touch) on any
/// received traffic, [`remove`](Self::remove) on close; sleep until
/// [`poll_timeout`](Self::poll_timeout), call
/// [`handle_timeout`](Self::handle_timeout), then drain
/// [`poll_event`](Self::poll_event). Extra `handle_timeout` calls are
/// harmless, and time passed to any method may go backwards (it is then
/// treated as the latest time seen for timers).
///
/// Time is kept in whole milliseconds since the `now` given to
/// [`Registry::new`].
pub struct Registry {
    policy: Policy,
    ticks: Ticks,
    /// The last `Instant` converted: a server passes the same `now` for
    /// every event of a wakeup.
    now: Now,
    slab: Slab,
    wheel: Wheel,
    events: VecDeque<RegistryEvent>,
    /// [`slab::NEAR`] when traffic can be recorded in the hot entry alone,
    /// 0 when the policy waits too long for that (see
    /// [`slab::LONGEST_WAIT_NEAR`]).
    near: u64,
    /// The most ticks after the wheel's tick a timer is armed at.
    arm_cap: u64,
}

impl Registry {
    /// An empty registry judging connections by `policy`, with `now` as its
    /// time origin. Fails if the policy is invalid.
    pub fn new(policy: Policy, now: Instant) -> Result<Self, ConfigError> {
        Self::with_capacity(policy, now, 0)
    }

    /// Like [`Registry::new`], with room for `capacity` connections before
    /// the entry arrays reallocate.
    pub fn with_capacity(
        policy: Policy,
        now: Instant,
        capacity: usize,
    ) -> Result<Self, ConfigError> {
        policy.validate()?;
        let near = policy.longest_wait() <= slab::LONGEST_WAIT_NEAR;
        let mut reg = Self {
            near: if near { slab::NEAR } else { 0 },
            arm_cap: if near { slab::ARM_CAP } else { u64::MAX },
            policy,
            ticks: Ticks::new(now),
            now: Now {
                at: now,
                tick: 0,
                stamp: stamp::SLOW,
            },
            slab: Slab::with_capacity(capacity),
            wheel: Wheel::new(0),
            events: VecDeque::new(),
        };
        reg.now.stamp = reg.stamp_for(0);
        Ok(reg)
    }

    /// Limits the number of registered connections; [`Registry::insert`]
    /// fails beyond it. Values above `u32::MAX` (the default) are clamped.
    /// Existing connections are kept even when there are more.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.slab.set_max_len(max_len);
    }

    /// The most connections [`Registry::insert`] accepts.
    pub fn max_len(&self) -> usize {
        self.slab.max_len()
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Registers a connection established (or last heard from) at `now`,
    /// carrying `tag` (returned in its events and by [`Registry::remove`]).
    pub fn insert(&mut self, now: Instant, tag: u64) -> Result<ConnId, RegistryFull> {
        let watch = Watch::new(self.now(now).tick);
        let id = self.slab.alloc(&watch, tag).ok_or(RegistryFull {
            max_len: self.slab.max_len(),
        })?;
        self.arm(id.index(), self.policy.deadline(&watch));
        Ok(id)
    }

    /// Records traffic received from `id` at `now` (any bytes count, pongs
    /// included). O(1) and cheap: normally it stores the time in an 8-byte
    /// entry and leaves the timer where it is (the timer reads the time
    /// when it fires, and re-arms if there was traffic).
    #[inline]
    pub fn touch(&mut self, id: ConnId, now: Instant) -> Result<(), HandleError> {
        let Now { tick, stamp, .. } = self.now(now);
        if !self.slab.touch(id, stamp)? {
            self.touch_slow(id.index(), tick);
        }
        Ok(())
    }

    /// `now` as a tick, with its stamp.
    #[inline]
    fn now(&mut self, now: Instant) -> Now {
        if now != self.now.at {
            self.convert(now);
        }
        self.now
    }

    #[inline(never)]
    fn convert(&mut self, now: Instant) {
        let tick = self.ticks.from_instant(now);
        self.now = Now {
            at: now,
            tick,
            stamp: self.stamp_for(tick),
        };
    }

    /// The hot-entry stamp for traffic at `tick`: the fast path records it
    /// when it lies within `near` of the wheel's tick.
    fn stamp_for(&self, tick: u64) -> u32 {
        let from = self.wheel.elapsed().saturating_sub(self.near);
        let near = tick.wrapping_sub(from) < 2 * self.near;
        stamp::of(tick) | if near { 0 } else { stamp::SLOW }
    }

    /// Traffic that the hot entry cannot record alone: it answers an
    /// outstanding ping, or its time is far from the wheel's. Records it in
    /// the full state. Without an outstanding ping, traffic only moves the
    /// rule's deadline later, so the armed timer fires early and re-arms
    /// lazily. Answering a ping re-bases the deadline on `interval`, which
    /// may be shorter than the ping's `timeout`: then the timer must move
    /// forward.
    #[cold]
    fn touch_slow(&mut self, i: u32, tick: u64) {
        let mut watch = self.slab.watch(i);
        watch.touch(tick);
        watch.settle();
        // Stored before the timer moves: the hot entry's stamp is read
        // relative to the armed deadline.
        self.slab.set_watch(i, &watch);
        let at = self.policy.deadline(&watch);
        if at < self.slab.cold(i).deadline {
            self.wheel.remove(&mut self.slab, i);
            self.arm(i, at);
        } else {
            self.slab.open_stamp(i, self.wheel.elapsed());
        }
    }

    /// Arms entry `i`, unlinked and just stored with `set_watch`, at `at`,
    /// or [`slab::ARM_CAP`] from the wheel's tick if that is sooner and the
    /// hot entry records traffic (the timer then re-arms on the way).
    fn arm(&mut self, i: u32, at: u64) {
        let wheel_tick = self.wheel.elapsed();
        let cap = wheel_tick.saturating_add(self.arm_cap);
        self.wheel.insert(&mut self.slab, i, at.min(cap));
        self.slab.open_stamp(i, wheel_tick);
    }

    /// Unregisters `id` and returns its tag. A second remove, or a remove
    /// after [`RegistryEvent::Expired`], is `Err(Stale)` and touches nothing.
    pub fn remove(&mut self, id: ConnId) -> Result<u64, HandleError> {
        let i = self.slab.lookup(id)?;
        self.wheel.remove(&mut self.slab, i);
        Ok(self.slab.free(i))
    }

    /// The tag attached to `id` at insert.
    pub fn tag(&self, id: ConnId) -> Result<u64, HandleError> {
        let i = self.slab.lookup(id)?;
        Ok(self.slab.cold(i).tag)
    }

    /// Whether `id` is registered (neither removed nor expired).
    pub fn contains(&self, id: ConnId) -> bool {
        self.slab.lookup(id).is_ok()
    }

    /// Number of registered connections.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    /// Runs the policy for every connection whose timer is due at `now` and
    /// queues the resulting events. Work is proportional to the timers that
    /// come due (amortised O(1) each), not to elapsed time; calls before the
    /// next deadline do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let tick = self.now(now).tick;
        while let Some(i) = self.wheel.next_due(&mut self.slab, tick) {
            let mut watch = self.slab.watch(i);
            match self.policy.on_deadline(&mut watch, tick) {
                Verdict::Dead => {
                    let last_rx = self.ticks.to_instant(watch.last_rx);
                    let id = self.slab.id(i);
                    let tag = self.slab.free(i);
                    self.events.push_back(RegistryEvent::Expired {
                        id,
                        tag,
                        silent_for: now.saturating_duration_since(last_rx),
                    });
                    continue;
                }
                Verdict::SendPing => self.events.push_back(RegistryEvent::PingDue {
                    id: self.slab.id(i),
                    tag: self.slab.cold(i).tag,
                }),
                Verdict::Wait => {}
            }
            self.slab.set_watch(i, &watch);
            self.arm(i, self.policy.deadline(&watch));
        }
        // The wheel's tick may have moved: which traffic is near changed.
        self.now.stamp = self.stamp_for(self.now.tick);
    }

    /// The next event, if any. A [`RegistryEvent::PingDue`] for a connection
    /// removed (or expired) since it was queued is dropped, so a reused file
    /// descriptor never receives another connection's ping.
    pub fn poll_event(&mut self) -> Option<RegistryEvent> {
        while let Some(event) = self.events.pop_front() {
            match event {
                RegistryEvent::PingDue { id, .. } if !self.contains(id) => {}
                _ => return Some(event),
            }
        }
        // Give back what a burst (a mass expiry after a suspend) took.
        self.events.shrink_to(EVENT_QUEUE_KEEP);
        None
    }

    /// When [`Registry::handle_timeout`] must next be called: the earliest
    /// armed timer, to the millisecond. It can be earlier than anything
    /// actually happening (a touched connection's timer re-arms quietly, a
    /// removed one may leave an early wakeup, and with policy waits of at
    /// most ~3 days a timer is armed at most ~6 days ahead), never later. While events are
    /// queued it returns a time at or before the last `now` seen. `None`
    /// when there is nothing to wait for.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.events.is_empty() {
            return Some(self.ticks.to_instant(self.wheel.elapsed()));
        }
        self.wheel.next_deadline().map(|t| self.ticks.to_instant(t))
    }

    /// The worst case from a connection's last received traffic to its
    /// [`RegistryEvent::Expired`], when `handle_timeout` is called at every
    /// [`Registry::poll_timeout`].
    pub fn detection_bound(&self) -> Duration {
        self.policy.detection_bound()
    }

    /// Approximate heap bytes in use: the entry arrays (56 bytes per slot:
    /// 8 hot for [`Registry::touch`], 48 cold; capacity included), the
    /// event queue and the wheel's fixed ~8.5 KiB.
    pub fn memory_bytes(&self) -> usize {
        self.slab.heap_bytes()
            + self.events.capacity() * std::mem::size_of::<RegistryEvent>()
            + self.wheel.heap_bytes()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("policy", &self.policy)
            .field("len", &self.len())
            .field("queued_events", &self.events.len())
            .field("next_timeout", &self.poll_timeout())
            .finish_non_exhaustive()
    }
}
