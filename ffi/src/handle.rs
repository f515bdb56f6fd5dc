//! Generation-checked handles: the one mechanism behind every object C
//! holds (backoff, monitor, registry, client, server, transport options).
//!
//! C never sees a pointer into Rust memory. It gets a 64-bit value:
//!
//! ```text
//!  63      56 55          32 31                0
//! +----------+--------------+-------------------+
//! |   kind   |  slot index  |    generation     |
//! +----------+--------------+-------------------+
//! ```
//!
//! resolved through a per-kind table. Freeing an object bumps its slot's
//! generation, so the old value (a double free, a use after free, a copy
//! kept somewhere) is answered with `TETHER_RESULT_STALE_HANDLE` and can
//! never reach the object that reuses the slot. A value of another kind, or
//! one that was never issued, is `TETHER_RESULT_INVALID_HANDLE`. Generations
//! start at 1, so 0 is never issued and means "no object".
//!
//! Objects are held as `Arc`s: a call resolves the handle and clones the
//! `Arc` before doing its work, so a concurrent free only makes later calls
//! stale; the object itself goes away when the last in-flight call returns.
//!
//! Resolving takes no lock: the objects sit in `tether_core::slots`
//! (chunks that never move, each slot read by any thread without
//! blocking), and each object records the generation it was issued under. So the hot
//! calls (`tether_client_send`, `tether_server_send`,
//! `tether_registry_touch`) from many threads never wait for one another
//! on the table; only creating and freeing objects take its lock.
//!
//! A call that panics while it holds an object (the panic boundary turns
//! the panic into `TETHER_RESULT_PANIC`) leaves the object dead: its state
//! may be half-updated, so every later call on it answers
//! `TETHER_RESULT_PANIC` too, and only freeing it still works.

use crate::panic::fail;
use crate::result::tether_result;
use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tether_core::slots::{AtomicSlots, MAX_SLOTS};

/// The object kinds, encoded in the top byte of a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Backoff = 1,
    Monitor = 2,
    Registry = 3,
    Client = 4,
    Server = 5,
    TransportOptions = 6,
    Conn = 7,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Backoff => "tether_backoff",
            Kind::Monitor => "tether_monitor",
            Kind::Registry => "tether_registry",
            Kind::Client => "tether_client",
            Kind::Server => "tether_server",
            Kind::TransportOptions => "tether_transport_options",
            Kind::Conn => "tether_conn",
        }
    }
}

const INDEX_BITS: u32 = 24;
const _: () = assert!(MAX_SLOTS == 1 << INDEX_BITS);

/// A live object, the generation it was issued under, and whether a call
/// on it panicked.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    value: T,
    generation: u32,
    dead: AtomicBool,
}

impl<T> Deref for Entry<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// An object held by one call: dropped while the thread unwinds from a
/// panic, it marks the object dead.
#[derive(Debug)]
pub(crate) struct Held<T>(Arc<Entry<T>>);

impl<T> Deref for Held<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T> Drop for Held<T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.dead.store(true, Ordering::Release);
        }
    }
}

/// Which slots are in use; only creating and freeing objects touch it.
struct Alloc {
    /// Free slot indices, reused oldest first so that a freed handle's
    /// generation stays unreused as long as possible.
    free: VecDeque<u32>,
    /// The generation each slot's next (or current) object gets.
    generations: Vec<u32>,
}

/// A table of live objects of one kind.
pub(crate) struct HandleTable<T> {
    kind: Kind,
    slots: AtomicSlots<Entry<T>>,
    /// Slots ever handed out (indices below it exist).
    len: AtomicUsize,
    alloc: Mutex<Alloc>,
}

fn encode(kind: Kind, index: u32, generation: u32) -> u64 {
    (u64::from(kind as u8) << 56) | (u64::from(index) << 32) | u64::from(generation)
}

fn next_generation(g: u32) -> u32 {
    match g.wrapping_add(1) {
        0 => 1,
        g => g,
    }
}

impl<T> HandleTable<T> {
    /// An empty table for objects of `kind`.
    pub(crate) const fn new(kind: Kind) -> Self {
        Self {
            kind,
            slots: AtomicSlots::new(),
            len: AtomicUsize::new(0),
            alloc: Mutex::new(Alloc {
                free: VecDeque::new(),
                generations: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Alloc> {
        // A panic while holding the lock cannot leave the table half-updated
        // (every update is a single assignment), so poisoning is ignored.
        self.alloc.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `value` and returns its handle; `Full` when 2^24 objects of
    /// this kind are alive at once.
    pub(crate) fn insert(&self, value: T) -> Result<u64, tether_result> {
        let mut alloc = self.lock();
        let index = match alloc.free.pop_front() {
            Some(i) => i as usize,
            None => {
                let len = alloc.generations.len();
                if len >= MAX_SLOTS {
                    return Err(fail(
                        tether_result::Full,
                        format!("too many live {} objects", self.kind.name()),
                    ));
                }
                alloc.generations.push(1);
                len
            }
        };
        let generation = alloc.generations[index];
        let entry = Arc::new(Entry {
            value,
            generation,
            dead: AtomicBool::new(false),
        });
        // In range: `index` < `MAX_SLOTS` was checked above.
        let _ = self.slots.store(index, Some(entry));
        self.len.store(alloc.generations.len(), Ordering::Release);
        drop(alloc);
        Ok(encode(self.kind, index as u32, generation))
    }

    /// Splits `raw` into a slot index and generation, checking the kind
    /// and range.
    fn index_of(&self, raw: u64) -> Result<(usize, u32), tether_result> {
        let kind = (raw >> 56) as u8;
        let index = ((raw >> 32) as u32 & (MAX_SLOTS as u32 - 1)) as usize;
        let generation = raw as u32;
        if raw == 0
            || kind != self.kind as u8
            || index >= self.len.load(Ordering::Acquire)
            || generation == 0
        {
            return Err(self.invalid(raw));
        }
        Ok((index, generation))
    }

    fn invalid(&self, raw: u64) -> tether_result {
        fail(
            tether_result::InvalidHandle,
            format!("{raw:#x} is not a {} handle", self.kind.name()),
        )
    }

    fn stale(&self) -> tether_result {
        fail(
            tether_result::StaleHandle,
            format!(
                "stale {} handle: the object was already freed",
                self.kind.name()
            ),
        )
    }

    /// The live object named by `raw`, held for one call; `Panic` once an
    /// earlier call on it panicked. Takes no lock.
    pub(crate) fn get(&self, raw: u64) -> Result<Held<T>, tether_result> {
        let (index, generation) = self.index_of(raw)?;
        match self.slots.load(index) {
            Some(v) if v.generation == generation => {
                if v.dead.load(Ordering::Acquire) {
                    return Err(fail(
                        tether_result::Panic,
                        format!(
                            "this {} is dead: an earlier call on it panicked; free it",
                            self.kind.name()
                        ),
                    ));
                }
                Ok(Held(v))
            }
            _ => Err(self.stale()),
        }
    }

    /// Removes the object named by `raw` and makes `raw` stale. `Ok(None)`
    /// for 0 ("no object"); a second removal is `StaleHandle`.
    pub(crate) fn remove(&self, raw: u64) -> Result<Option<Arc<Entry<T>>>, tether_result> {
        if raw == 0 {
            return Ok(None);
        }
        let mut alloc = self.lock();
        let (index, generation) = self.index_of(raw)?;
        if self.slots.peek(index, |v| v.map(|v| v.generation)) != Some(generation) {
            return Err(self.stale());
        }
        let value = self.slots.store(index, None).unwrap_or(None);
        alloc.generations[index] = next_generation(generation);
        alloc.free.push_back(index as u32);
        Ok(value)
    }

    /// Removes every object (process teardown).
    pub(crate) fn drain(&self) -> Vec<Arc<Entry<T>>> {
        let mut alloc = self.lock();
        let mut all = Vec::new();
        for index in 0..alloc.generations.len() {
            if let Ok(Some(v)) = self.slots.store(index, None) {
                alloc.generations[index] = next_generation(alloc.generations[index]);
                all.push(v);
                alloc.free.push_back(index as u32);
            }
        }
        all
    }
}

impl<T> HandleTable<Mutex<T>> {
    /// Runs `f` on the object named by `raw`, under its own lock.
    pub(crate) fn with<R>(
        &self,
        raw: u64,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, tether_result> {
        let obj = self.get(raw)?;
        let mut guard = obj.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut guard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_remove_is_stale_and_reuse_keeps_old_handles_stale() {
        let t: HandleTable<u32> = HandleTable::new(Kind::Backoff);
        let a = t.insert(1).unwrap();
        assert_ne!(a, 0);
        assert_eq!(*t.get(a).unwrap(), 1);
        assert_eq!(**t.remove(a).unwrap().unwrap(), 1);
        assert_eq!(t.remove(a).unwrap_err(), tether_result::StaleHandle);
        assert_eq!(t.get(a).unwrap_err(), tether_result::StaleHandle);
        let b = t.insert(2).unwrap();
        assert_eq!(b >> 32, a >> 32, "slot reused");
        assert_ne!(a, b);
        assert_eq!(t.get(a).unwrap_err(), tether_result::StaleHandle);
        assert_eq!(*t.get(b).unwrap(), 2);
        assert!(t.remove(0).unwrap().is_none());
    }

    #[test]
    fn a_call_that_panicked_leaves_the_object_dead_but_freeable() {
        let t: HandleTable<Mutex<u32>> = HandleTable::new(Kind::Backoff);
        let a = t.insert(Mutex::new(1)).unwrap();
        let b = t.insert(Mutex::new(2)).unwrap();
        let _ = t.with(a, |v| *v += 1);
        assert_eq!(
            *t.get(a).unwrap().lock().unwrap(),
            2,
            "a call that returns keeps it"
        );
        let panicked =
            std::panic::catch_unwind(|| t.with(a, |_| -> u32 { panic!("half-updated") }));
        assert!(panicked.is_err());
        assert_eq!(t.get(a).unwrap_err(), tether_result::Panic);
        assert_eq!(t.with(a, |v| *v).unwrap_err(), tether_result::Panic);
        assert_eq!(
            *t.get(b).unwrap().lock().unwrap(),
            2,
            "other objects live on"
        );
        assert!(t.remove(a).unwrap().is_some(), "a dead object can be freed");
        assert_eq!(t.get(a).unwrap_err(), tether_result::StaleHandle);
    }

    #[test]
    fn foreign_and_garbage_handles_are_invalid() {
        let t: HandleTable<u32> = HandleTable::new(Kind::Backoff);
        let u: HandleTable<u32> = HandleTable::new(Kind::Monitor);
        let a = t.insert(1).unwrap();
        let m = u.insert(1).unwrap();
        assert_eq!(t.get(m).unwrap_err(), tether_result::InvalidHandle);
        assert_eq!(u.get(a).unwrap_err(), tether_result::InvalidHandle);
        assert_eq!(t.get(0).unwrap_err(), tether_result::InvalidHandle);
        assert_eq!(
            t.get(a + (7 << 32)).unwrap_err(),
            tether_result::InvalidHandle
        );
        assert_eq!(
            t.get(a & !0xffff_ffff).unwrap_err(),
            tether_result::InvalidHandle
        );
    }

    #[test]
    fn handles_resolve_from_many_threads_while_others_come_and_go() {
        let t: Arc<HandleTable<u64>> = Arc::new(HandleTable::new(Kind::Backoff));
        let kept: Vec<u64> = (0..500).map(|i| t.insert(i).unwrap()).collect();
        let kept = Arc::new(kept);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (t, kept) = (t.clone(), kept.clone());
                std::thread::spawn(move || {
                    for round in 0..200 {
                        for (i, h) in kept.iter().enumerate() {
                            assert_eq!(*t.get(*h).unwrap(), i as u64, "round {round}");
                        }
                    }
                })
            })
            .collect();
        // Meanwhile objects are created and freed, growing new chunks.
        for i in 0..5000u64 {
            let h = t.insert(i).unwrap();
            assert_eq!(*t.get(h).unwrap(), i);
            if i % 3 != 0 {
                t.remove(h).unwrap();
                assert_eq!(t.get(h).unwrap_err(), tether_result::StaleHandle);
            }
        }
        for r in readers {
            r.join().unwrap();
        }
    }
}
