//! The entry arrays: a hot and a cold part per connection, generation-checked
//! lookup, and a FIFO free list so that a freed slot is reused as late as
//! possible (an old id stays recognisably stale for longer).

use super::id::ConnId;
use super::wheel::{Links, Nodes, NIL};
use crate::liveness::Watch;
use crate::HandleError;

/// The part of a connection that recording traffic needs, kept in a dense
/// array of its own: 16 bytes, so a million connections' worth (16 MB) can
/// stay in a server CPU's cache while the rest (the timer) stays cold.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hot {
    /// The rule's [`Watch::last_rx`].
    pub last_rx: u64,
    /// Odd while occupied, even while vacant; bumped on every change.
    pub generation: u32,
    /// Whether the rule has a ping outstanding.
    pub pinged: bool,
}

/// The rest of a connection: the rule's other state, the tag and the timer.
/// 40 bytes.
#[derive(Debug, Clone)]
pub(super) struct Cold {
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
                last_rx: 0,
                generation: 0,
                pinged: false,
            });
            self.cold.push(Cold {
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

    #[inline]
    pub fn hot_mut(&mut self, i: u32) -> &mut Hot {
        &mut self.hot[i as usize]
    }

    pub fn cold(&self, i: u32) -> &Cold {
        &self.cold[i as usize]
    }

    /// The rule's state of entry `i`, reassembled.
    pub fn watch(&self, i: u32) -> Watch {
        let (hot, cold) = (&self.hot[i as usize], &self.cold[i as usize]);
        Watch::from_parts(
            hot.last_rx,
            cold.pinged_at_plus1.checked_sub(1),
            cold.misses,
        )
    }

    /// Stores the rule's state of entry `i`.
    pub fn set_watch(&mut self, i: u32, w: &Watch) {
        let (hot, cold) = (&mut self.hot[i as usize], &mut self.cold[i as usize]);
        let pinged_at = w.pinged_at();
        hot.last_rx = w.last_rx;
        hot.pinged = pinged_at.is_some();
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
