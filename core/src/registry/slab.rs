//! The entry arrays: a hot and a cold part per connection, generation-checked
//! lookup, and a FIFO free list so that a freed slot is reused as late as
//! possible (an old id stays recognisably stale for longer).

use super::id::ConnId;
use super::wheel::{Links, Nodes, NIL};
use crate::liveness::Watch;
use crate::HandleError;

/// The part of a connection that recording traffic needs, kept in a dense
/// array of its own: 8 bytes, the size of a bare "last seen" array entry,
/// so a million connections' worth (8 MB) stays in a server CPU's cache
/// while the rest (the rule's state and the timer) stays cold.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hot {
    /// Odd while occupied, even while vacant; bumped on every change.
    pub generation: u32,
    /// Traffic recorded since the entry's state was last stored in
    /// [`Cold`]; see [`stamp`].
    pub stamp: u32,
}

/// The hot entry's `stamp`: bits 31..1 hold a traffic tick modulo 2^31,
/// bit 0 ([`SLOW`](stamp::SLOW)) says that traffic must go through the
/// cold entry instead (a ping is outstanding, or the stamp is not in use)
/// or that the entry is vacant.
///
/// 31 bits are enough because a stamp only ever holds a tick close to the
/// entry's armed deadline (see [`RECENT`]), and it is folded into the exact
/// 64-bit `last_rx` in [`Cold`] before the timer is armed anew. Stamps
/// without `SLOW` compare by their wrapping difference, so recording
/// traffic is one compare and one store.
pub(super) mod stamp {
    /// Traffic must take the slow path.
    pub const SLOW: u32 = 1;
    /// The tick bits' range.
    pub const MODULUS: u64 = 1 << 31;

    /// The stamp holding `tick` (modulo 2^31).
    #[inline]
    pub fn of(tick: u64) -> u32 {
        (tick as u32) << 1
    }

    /// The later of two stamps in use (less than [`super::RECENT`] apart).
    #[inline]
    pub fn later(a: u32, b: u32) -> u32 {
        if a.wrapping_sub(b) as i32 >= 0 {
            a
        } else {
            b
        }
    }
}

/// While the hot entry records traffic, a timer is never armed more than
/// this many ticks (about 6.2 days) after the wheel's current tick; a later
/// deadline re-arms on the way. Registries whose policy waits longer than
/// [`LONGEST_WAIT_NEAR`] do without both.
pub(super) const ARM_CAP: u64 = 1 << 29;
/// Traffic is recorded in the hot entry alone when its tick lies less than
/// this far (about 3.1 days) before or after the wheel's current tick;
/// other ticks take the slow path, which reads the cold entry.
pub(super) const NEAR: u64 = 1 << 28;
/// The longest policy wait for which the hot entry records traffic: then
/// the cap above only comes into play for a connection whose last traffic
/// lies far ahead of the wheel (a clock jump).
pub(super) const LONGEST_WAIT_NEAR: u64 = ARM_CAP - NEAR;
/// The span in which every stamped tick of an entry lies, counted from its
/// armed deadline minus `ARM_CAP + NEAR`: the wheel's tick at a touch is
/// between the arming tick and the deadline, and the touch within `NEAR`
/// of it. Half the stamp's modulus, so that comparing two stamps by their
/// wrapping difference is exact.
pub(super) const RECENT: u64 = ARM_CAP + 2 * NEAR;
const _: () = assert!(RECENT * 2 <= stamp::MODULUS);

/// The first tick of the span in which entry stamps lie for a timer armed
/// at `deadline`.
fn stamp_base(deadline: u64) -> u64 {
    deadline.saturating_sub(ARM_CAP + NEAR)
}

/// The rest of a connection: the rule's other state, the tag and the timer.
/// 48 bytes.
#[derive(Debug, Clone)]
pub(super) struct Cold {
    /// The rule's [`Watch::last_rx`] as of the last fold; traffic since is
    /// in the hot entry's stamp.
    last_rx: u64,
    /// The rule's [`Watch::pinged_at`], plus one; 0 for none.
    pinged_at_plus1: u64,
    /// The caller's value (e.g. a file descriptor).
    pub tag: u64,
    /// The tick the timer is armed at; never after the rule's deadline.
    pub deadline: u64,
    /// Wheel links while occupied; `next` threads the free list while
    /// vacant.
    pub links: Links,
    /// The rule's [`Watch::misses`].
    misses: u8,
}

/// Bytes stored per connection slot.
#[cfg(test)]
pub(super) const ENTRY_BYTES: usize = std::mem::size_of::<Hot>() + std::mem::size_of::<Cold>();

/// The entries and their free list.
pub(super) struct Slab {
    hot: Vec<Hot>,
    cold: Vec<Cold>,
    free_head: u32,
    free_tail: u32,
    len: usize,
    max_len: usize,
}

/// The most entries the `u32` index space allows ([`NIL`] is reserved).
pub(super) const MAX_LEN: usize = NIL as usize;

impl Slab {
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.min(MAX_LEN);
        Self {
            hot: Vec::with_capacity(capacity),
            cold: Vec::with_capacity(capacity),
            free_head: NIL,
            free_tail: NIL,
            len: 0,
            max_len: MAX_LEN,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len.min(MAX_LEN);
    }

    pub fn heap_bytes(&self) -> usize {
        self.hot.capacity() * std::mem::size_of::<Hot>()
            + self.cold.capacity() * std::mem::size_of::<Cold>()
    }

    /// Stores a new connection, not yet armed; `None` when full.
    pub fn alloc(&mut self, watch: &Watch, tag: u64) -> Option<ConnId> {
        if self.len >= self.max_len {
            return None;
        }
        let index = if self.free_head != NIL {
            let i = self.free_head;
            self.free_head = self.cold[i as usize].links.next;
            if self.free_head == NIL {
                self.free_tail = NIL;
            }
            i
        } else {
            let i = u32::try_from(self.hot.len()).ok().filter(|&i| i != NIL)?;
            self.hot.push(Hot {
                generation: 0,
                stamp: 0,
            });
            self.cold.push(Cold {
                last_rx: 0,
                pinged_at_plus1: 0,
                tag,
                deadline: 0,
                links: Links::UNLINKED,
                misses: 0,
            });
            i
        };
        self.hot[index as usize].generation = self.hot[index as usize].generation.wrapping_add(1);
        let cold = &mut self.cold[index as usize];
        cold.tag = tag;
        cold.links = Links::UNLINKED;
        self.set_watch(index, watch);
        self.len += 1;
        Some(self.id(index))
    }

    /// Frees occupied entry `i` (already unlinked from the wheel) and
    /// returns its tag.
    pub fn free(&mut self, i: u32) -> u64 {
        let hot = &mut self.hot[i as usize];
        debug_assert!(hot.generation & 1 == 1);
        hot.generation = hot.generation.wrapping_add(1);
        hot.stamp = stamp::SLOW;
        self.cold[i as usize].links = Links::UNLINKED;
        self.len -= 1;
        if self.free_tail == NIL {
            self.free_head = i;
        } else {
            self.cold[self.free_tail as usize].links.next = i;
        }
        self.free_tail = i;
        self.cold[i as usize].tag
    }

    /// The index of the live connection `id`.
    #[inline]
    pub fn lookup(&self, id: ConnId) -> Result<u32, HandleError> {
        match self.hot.get(id.index() as usize) {
            // Occupied generations are odd, so an even (never issued)
            // generation cannot match a vacant entry.
            Some(h) if h.generation == id.generation() && id.generation() & 1 == 1 => {
                Ok(id.index())
            }
            h => Err(Self::why_not(h, id)),
        }
    }

    #[cold]
    fn why_not(h: Option<&Hot>, id: ConnId) -> HandleError {
        match h {
            Some(h) if id.generation() & 1 == 1 && id.generation() < h.generation => {
                HandleError::Stale
            }
            _ => HandleError::Invalid,
        }
    }

    /// Records traffic in the hot entry of the live connection `id`:
    /// `new` is the traffic's stamp, with [`stamp::SLOW`] set when the
    /// tick is not within [`NEAR`] of the wheel's current tick. `Ok(false)`
    /// (nothing changed) when the slow path must record it: then
    /// [`Slab::watch`], [`Slab::set_watch`] and [`Slab::open_stamp`].
    #[inline]
    pub fn touch(&mut self, id: ConnId, new: u32) -> Result<bool, HandleError> {
        match self.hot.get_mut(id.index() as usize) {
            Some(h) if h.generation == id.generation() => {
                let old = h.stamp;
                if (old | new) & stamp::SLOW != 0 {
                    // Vacant entries (even generations) are stamped slow:
                    // the full check is only needed here.
                    return self.lookup(id).map(|_| false);
                }
                // Time may go backwards: keep the later tick.
                h.stamp = stamp::later(new, old);
                Ok(true)
            }
            h => Err(Self::why_not(h.as_deref(), id)),
        }
    }

    pub fn cold(&self, i: u32) -> &Cold {
        &self.cold[i as usize]
    }

    /// The rule's state of occupied entry `i`, reassembled: the cold part,
    /// with the traffic stamped in the hot part since.
    pub fn watch(&self, i: u32) -> Watch {
        let (hot, cold) = (&self.hot[i as usize], &self.cold[i as usize]);
        let mut last_rx = cold.last_rx;
        if hot.stamp & stamp::SLOW == 0 {
            // The stamped tick lies in [base, base + RECENT); recover its
            // high bits from there.
            let base = stamp_base(cold.deadline);
            let low = u64::from(hot.stamp >> 1);
            let tick = base + (low.wrapping_sub(base) & (stamp::MODULUS - 1));
            last_rx = last_rx.max(tick);
        }
        Watch::from_parts(last_rx, cold.pinged_at_plus1.checked_sub(1), cold.misses)
    }

    /// Stores the rule's state of entry `i`, stamp folded in; traffic takes
    /// the slow path until [`Slab::open_stamp`]. Must precede arming the
    /// timer anew.
    pub fn set_watch(&mut self, i: u32, w: &Watch) {
        let (hot, cold) = (&mut self.hot[i as usize], &mut self.cold[i as usize]);
        let pinged_at = w.pinged_at();
        hot.stamp = stamp::SLOW;
        cold.last_rx = w.last_rx;
        cold.pinged_at_plus1 = pinged_at.map_or(0, |p| p.saturating_add(1));
        cold.misses = w.misses;
    }

    /// Lets the hot entry of armed entry `i` record traffic again, unless a
    /// ping is outstanding: it gets a stamp that changes nothing (a tick at
    /// or before `last_rx`) and is older than any traffic the fast path
    /// will stamp (which is within [`NEAR`] of `wheel_tick` or later). When
    /// no tick is both, traffic keeps taking the slow path until the next
    /// fold.
    pub fn open_stamp(&mut self, i: u32, wheel_tick: u64) {
        let cold = &self.cold[i as usize];
        if cold.pinged_at_plus1 != 0 {
            return;
        }
        let tick = cold.last_rx.min(wheel_tick.saturating_sub(NEAR));
        if tick >= stamp_base(cold.deadline) {
            self.hot[i as usize].stamp = stamp::of(tick);
        }
    }

    /// The id of occupied entry `i`.
    pub fn id(&self, i: u32) -> ConnId {
        ConnId::new(i, self.hot[i as usize].generation)
    }
}

impl Nodes for Slab {
    #[inline]
    fn links(&mut self, i: u32) -> &mut Links {
        &mut self.cold[i as usize].links
    }

    #[inline]
    fn deadline(&self, i: u32) -> u64 {
        self.cold[i as usize].deadline
    }

    #[inline]
    fn set_deadline(&mut self, i: u32, at: u64) {
        self.cold[i as usize].deadline = at;
    }
}
