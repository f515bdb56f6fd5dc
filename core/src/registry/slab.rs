//! The entry array: one fixed-size entry per connection, generation-checked
//! lookup, and a FIFO free list so that a freed slot is reused as late as
//! possible (an old id stays recognisably stale for longer).

use super::id::ConnId;
use super::wheel::{Links, Nodes, NIL};
use crate::liveness::Watch;
use crate::HandleError;

/// One tracked connection. 56 bytes.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The liveness rule's state.
    pub watch: Watch,
    /// The caller's value (e.g. a file descriptor).
    pub tag: u64,
    /// The tick the timer is armed at; never after the rule's deadline.
    pub deadline: u64,
    /// Wheel links while occupied; `next` threads the free list while
    /// vacant.
    pub links: Links,
    /// Odd while occupied, even while vacant; bumped on every change.
    pub generation: u32,
}

/// The entries and their free list.
pub(super) struct Slab {
    entries: Vec<Entry>,
    free_head: u32,
    free_tail: u32,
    len: usize,
    max_len: usize,
}

/// The most entries the `u32` index space allows ([`NIL`] is reserved).
pub(super) const MAX_LEN: usize = NIL as usize;

impl Slab {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity.min(MAX_LEN)),
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
        self.entries.capacity() * std::mem::size_of::<Entry>()
    }

    /// Stores a new connection; `None` when full. The entry's links are
    /// unlinked.
    pub fn alloc(&mut self, watch: Watch, tag: u64) -> Option<ConnId> {
        if self.len >= self.max_len {
            return None;
        }
        let index = if self.free_head != NIL {
            let i = self.free_head;
            self.free_head = self.entries[i as usize].links.next;
            if self.free_head == NIL {
                self.free_tail = NIL;
            }
            i
        } else {
            let i = u32::try_from(self.entries.len())
                .ok()
                .filter(|&i| i != NIL)?;
            self.entries.push(Entry {
                watch,
                tag,
                deadline: 0,
                links: Links::UNLINKED,
                generation: 0,
            });
            i
        };
        let e = &mut self.entries[index as usize];
        e.watch = watch;
        e.tag = tag;
        e.links = Links::UNLINKED;
        e.generation = e.generation.wrapping_add(1);
        self.len += 1;
        Some(ConnId::new(index, e.generation))
    }

    /// Frees occupied entry `i` (already unlinked from the wheel) and
    /// returns its tag.
    pub fn free(&mut self, i: u32) -> u64 {
        let e = &mut self.entries[i as usize];
        debug_assert!(e.generation & 1 == 1);
        e.generation = e.generation.wrapping_add(1);
        e.links = Links::UNLINKED;
        let tag = e.tag;
        self.len -= 1;
        if self.free_tail == NIL {
            self.free_head = i;
        } else {
            self.entries[self.free_tail as usize].links.next = i;
        }
        self.free_tail = i;
        tag
    }

    /// The index of the live connection `id`.
    #[inline]
    pub fn lookup(&self, id: ConnId) -> Result<u32, HandleError> {
        match self.entries.get(id.index() as usize) {
            // Occupied generations are odd, so an even (never issued)
            // generation cannot match a vacant entry.
            Some(e) if e.generation == id.generation() && id.generation() & 1 == 1 => {
                Ok(id.index())
            }
            e => Err(Self::why_not(e, id)),
        }
    }

    #[cold]
    fn why_not(e: Option<&Entry>, id: ConnId) -> HandleError {
        match e {
            Some(e) if id.generation() & 1 == 1 && id.generation() < e.generation => {
                HandleError::Stale
            }
            _ => HandleError::Invalid,
        }
    }

    #[inline]
    pub fn entry(&self, i: u32) -> &Entry {
        &self.entries[i as usize]
    }

    #[inline]
    pub fn entry_mut(&mut self, i: u32) -> &mut Entry {
        &mut self.entries[i as usize]
    }

    /// The id of occupied entry `i`.
    pub fn id(&self, i: u32) -> ConnId {
        ConnId::new(i, self.entries[i as usize].generation)
    }
}

impl Nodes for Slab {
    #[inline]
    fn links(&mut self, i: u32) -> &mut Links {
        &mut self.entries[i as usize].links
    }

    #[inline]
    fn deadline(&self, i: u32) -> u64 {
        self.entries[i as usize].deadline
    }

    #[inline]
    fn set_deadline(&mut self, i: u32, at: u64) {
        self.entries[i as usize].deadline = at;
    }
}
