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
    /// Traffic recorded since the entry's state was last folded into
    /// [`Cold`], plus whether a ping is outstanding; see [`stamp`].
    pub stamp: u32,
}

/// The hot entry's `stamp`: bits 31..2 hold the latest traffic tick modulo
/// 2^30, bit 1 says that they are in use, bit 0 that a ping is outstanding.
///
/// 30 bits are enough because a stamp is only ever written for a tick close
/// to the entry's armed deadline (see [`RECENT`]), and it is folded into the
/// exact 64-bit `last_rx` in [`Cold`] before the timer is armed again.
pub(super) mod stamp {
    /// A ping is outstanding: traffic must take the slow path.
    pub const PINGED: u32 = 1;
    /// Bits 31..2 hold a traffic tick.
    pub const TOUCHED: u32 = 2;
    /// The tick bits' range.
    pub const MODULUS: u64 = 1 << 30;

    /// The stamp for traffic at `tick` (modulo 2^30), no ping outstanding.
    #[inline]
    pub fn of(tick: u64) -> u32 {
        ((tick as u32) << 2) | TOUCHED
    }

    /// Whether the tick in stamp `new` is later than or equal to the one in
    /// `old` (both in use, less than [`super::RECENT`] apart).
    #[inline]
    pub fn not_older(new: u32, old: u32) -> bool {
        new.wrapping_sub(old) as i32 >= 0
    }
}

/// While the hot entry records traffic (see [`Slab::touch_near`]), a timer
/// is never armed more than this many ticks (about 3.1 days) after the
/// wheel's current tick; a later deadline re-arms on the way. Registries
/// whose policy waits longer than [`LONGEST_WAIT_NEAR`] do without both.
pub(super) const ARM_CAP: u64 = 1 << 28;
/// Traffic is recorded in the hot entry alone when its tick lies less than
/// this far (about 1.6 days) before or after the wheel's current tick;
/// other ticks take the slow path, which reads the cold entry.
pub(super) const NEAR: u64 = 1 << 27;
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

    /// Records traffic at `tick` on occupied entry `i`, if that can be done
    /// in the hot entry alone: no ping outstanding and `tick` less than
    /// `near` (0 or [`NEAR`]) from `wheel_tick`, the wheel's current tick.
    /// Returns `false` (and changes nothing) otherwise; then
    /// [`Slab::watch`] and [`Slab::set_watch`] must do it.
    ///
    /// Callers with a nonzero `near` arm every timer at most [`ARM_CAP`]
    /// after the wheel's tick, and store the state with
    /// [`Slab::set_watch`] before arming it anew.
    #[inline]
    pub fn touch_near(&mut self, i: u32, tick: u64, wheel_tick: u64, near: u64) -> bool {
        let near = tick.wrapping_sub(wheel_tick.saturating_sub(near)) < 2 * near;
        let hot = &mut self.hot[i as usize];
        let old = hot.stamp;
        if !near || old & stamp::PINGED != 0 {
            return false;
        }
        let new = stamp::of(tick);
        // Time may go backwards: keep the later tick.
        if old & stamp::TOUCHED == 0 || stamp::not_older(new, old) {
            hot.stamp = new;
        }
        true
    }

    pub fn cold(&self, i: u32) -> &Cold {
        &self.cold[i as usize]
    }

    /// The rule's state of occupied entry `i`, reassembled: the cold part,
    /// with the traffic recorded in the stamp since the last fold.
    pub fn watch(&self, i: u32) -> Watch {
        let (hot, cold) = (&self.hot[i as usize], &self.cold[i as usize]);
        let mut last_rx = cold.last_rx;
        if hot.stamp & stamp::TOUCHED != 0 {
            // The stamped tick lies in [base, base + RECENT); recover its
            // high bits from there.
            let base = cold.deadline.saturating_sub(ARM_CAP + NEAR);
            let low = u64::from(hot.stamp >> 2);
            let tick = base + (low.wrapping_sub(base) & (stamp::MODULUS - 1));
            last_rx = last_rx.max(tick);
        }
        Watch::from_parts(
            last_rx,
            cold.pinged_at_plus1.checked_sub(1),
            cold.misses,
        )
    }

    /// Stores the rule's state of entry `i` (folding the stamp: it must be
    /// called before the timer is armed at a new deadline).
    pub fn set_watch(&mut self, i: u32, w: &Watch) {
        let (hot, cold) = (&mut self.hot[i as usize], &mut self.cold[i as usize]);
        let pinged_at = w.pinged_at();
        hot.stamp = if pinged_at.is_some() { stamp::PINGED } else { 0 };
        cold.last_rx = w.last_rx;
        cold.pinged_at_plus1 = pinged_at.map_or(0, |p| p.saturating_add(1));
        cold.misses = w.misses;
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
