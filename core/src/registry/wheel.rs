//! A hierarchical timing wheel with 1 ms resolution whose lists are threaded
//! through the caller's entry array by `u32` index (no allocation per timer).
//!
//! Level `L` has 64 slots of `64^L` ms each. A timer goes to the level of the
//! highest bit in which its deadline differs from the wheel's current tick,
//! so insert and remove are O(1). When a slot of a higher level comes due its
//! timers move down (at most once per level), which makes expiry amortised
//! O(1). Eleven levels cover the whole `u64` tick range, so there is no
//! overflow list and no wrap-around: a deadline 49 days (or 500 years) away
//! and a clock that jumps far ahead are handled by the same code, and a jump
//! costs work per occupied slot, never per elapsed millisecond.

/// "No entry" in a link field.
pub(super) const NIL: u32 = u32::MAX;

const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// 11 x 6 bits >= 64 bits: every `u64` deadline has a level.
const LEVELS: usize = 11;
/// List id of an entry that is in no list.
pub(super) const UNLINKED: u16 = u16::MAX;

/// Where an entry sits in the wheel: its list and its neighbours there.
/// Stored inside the caller's entry; 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Links {
    pub next: u32,
    pub prev: u32,
    /// `level * 64 + slot`, or [`UNLINKED`]. The owner may use other values
    /// above the wheel's range for entries it keeps outside the wheel.
    pub list: u16,
}

impl Links {
    pub const UNLINKED: Self = Self {
        next: NIL,
        prev: NIL,
        list: UNLINKED,
    };
}

/// The entry storage the wheel threads its lists through.
pub(super) trait Nodes {
    /// The links of entry `i`.
    fn links(&mut self, i: u32) -> &mut Links;
    /// The tick at which entry `i`'s timer is armed.
    fn deadline(&self, i: u32) -> u64;
    /// Arms entry `i`'s timer at `at` (storage only; the wheel links it).
    fn set_deadline(&mut self, i: u32, at: u64);
}

#[derive(Clone)]
struct Level {
    /// Bit `s` set when slot `s` is non-empty.
    occupied: u64,
    heads: [u32; SLOTS],
    /// A lower bound of the deadlines in each slot (exact unless an entry
    /// was removed since), so that the next wakeup is exact to 1 ms even
    /// for coarse slots.
    earliest: [u64; SLOTS],
}

const EMPTY_LEVEL: Level = Level {
    occupied: 0,
    heads: [NIL; SLOTS],
    earliest: [u64::MAX; SLOTS],
};

/// The timing wheel. Invariant: a timer in level `L` slot `s` has a
/// deadline that agrees with `elapsed` above level `L`, and every slot whose
/// start is at or before `elapsed` has been processed, except level 0's
/// current slot.
pub(super) struct Wheel {
    levels: Box<[Level; LEVELS]>,
    /// The tick up to which the wheel has advanced.
    elapsed: u64,
    /// The list being processed by [`Wheel::next_due`].
    pending: u32,
    /// The list id the pending entries still carry.
    pending_list: u16,
}

impl Wheel {
    /// An empty wheel at tick `elapsed`.
    pub fn new(elapsed: u64) -> Self {
        Self {
            levels: Box::new([EMPTY_LEVEL; LEVELS]),
            elapsed,
            pending: NIL,
            pending_list: UNLINKED,
        }
    }

    /// The tick up to which the wheel has advanced.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Heap bytes owned by the wheel (a fixed ~8.5 KiB).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<[Level; LEVELS]>()
    }

    /// Arms the unlinked entry `i` at tick `at`; deadlines already past fire
    /// at the next [`Wheel::next_due`].
    pub fn insert<N: Nodes>(&mut self, nodes: &mut N, i: u32, at: u64) {
        debug_assert_eq!(nodes.links(i).list, UNLINKED);
        let at = at.max(self.elapsed);
        nodes.set_deadline(i, at);
        self.link(nodes, i, at);
    }

    /// Disarms entry `i` (a no-op when it is not armed).
    pub fn remove<N: Nodes>(&mut self, nodes: &mut N, i: u32) {
        let Links { next, prev, list } = *nodes.links(i);
        if list == UNLINKED {
            return;
        }
        if prev != NIL {
            nodes.links(prev).next = next;
        } else if list == self.pending_list {
            self.pending = next;
        } else {
            let (level, slot) = split(list);
            let lv = &mut self.levels[level];
            lv.heads[slot] = next;
            if next == NIL {
                lv.occupied &= !(1 << slot);
                lv.earliest[slot] = u64::MAX;
            }
        }
        if next != NIL {
            nodes.links(next).prev = prev;
        }
        *nodes.links(i) = Links::UNLINKED;
    }

    /// The earliest armed deadline; never later than the true earliest, and
    /// equal to it unless an entry was removed from that slot since.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.pending != NIL {
            return Some(self.elapsed);
        }
        let (level, slot) = self.next_slot()?;
        Some(self.levels[level].earliest[slot])
    }

    /// Advances to tick `now` and returns one entry whose deadline is at or
    /// before `now`, unlinked; `None` when there are no more. Call until
    /// `None`; the caller may insert entries between calls.
    pub fn next_due<N: Nodes>(&mut self, nodes: &mut N, now: u64) -> Option<u32> {
        loop {
            while self.pending != NIL {
                let i = self.pending;
                let next = nodes.links(i).next;
                self.pending = next;
                if next != NIL {
                    nodes.links(next).prev = NIL;
                }
                *nodes.links(i) = Links::UNLINKED;
                let at = nodes.deadline(i);
                if at <= now {
                    return Some(i);
                }
                // Not due yet: cascade to a finer level (relative to the
                // slot start, so it always moves at least one level down).
                self.link(nodes, i, at);
            }
            self.pending_list = UNLINKED;
            let Some((level, slot)) = self.next_slot() else {
                self.elapsed = self.elapsed.max(now);
                return None;
            };
            let start = self.slot_start(level, slot);
            if start > now {
                self.elapsed = self.elapsed.max(now);
                return None;
            }
            debug_assert!(start >= self.elapsed);
            self.elapsed = start;
            let lv = &mut self.levels[level];
            self.pending = lv.heads[slot];
            self.pending_list = (level * SLOTS + slot) as u16;
            lv.heads[slot] = NIL;
            lv.occupied &= !(1 << slot);
            lv.earliest[slot] = u64::MAX;
        }
    }

    fn link<N: Nodes>(&mut self, nodes: &mut N, i: u32, at: u64) {
        let level = level_for(self.elapsed, at);
        let slot = ((at >> (SLOT_BITS as usize * level)) as usize) & (SLOTS - 1);
        let lv = &mut self.levels[level];
        let head = lv.heads[slot];
        lv.heads[slot] = i;
        lv.occupied |= 1 << slot;
        lv.earliest[slot] = lv.earliest[slot].min(at);
        *nodes.links(i) = Links {
            next: head,
            prev: NIL,
            list: (level * SLOTS + slot) as u16,
        };
        if head != NIL {
            nodes.links(head).prev = i;
        }
    }

    /// The first non-empty slot: the lowest level wins, because all of a
    /// level's slots lie before the next slot of the level above.
    fn next_slot(&self) -> Option<(usize, usize)> {
        self.levels
            .iter()
            .position(|lv| lv.occupied != 0)
            .map(|level| (level, self.levels[level].occupied.trailing_zeros() as usize))
    }

    /// The first tick covered by `slot` of `level`.
    fn slot_start(&self, level: usize, slot: usize) -> u64 {
        let shift = SLOT_BITS as usize * level;
        let above = shift + SLOT_BITS as usize;
        let base = if above >= 64 {
            0
        } else {
            self.elapsed & !((1u64 << above) - 1)
        };
        base | ((slot as u64) << shift)
    }
}

fn split(list: u16) -> (usize, usize) {
    (list as usize / SLOTS, list as usize % SLOTS)
}

/// The level of the highest bit in which `at` differs from `elapsed`.
fn level_for(elapsed: u64, at: u64) -> usize {
    let masked = (elapsed ^ at) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros() as usize;
    significant / SLOT_BITS as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bare timers: index = position.
    struct Plain(Vec<(Links, u64)>);

    impl Nodes for Plain {
        fn links(&mut self, i: u32) -> &mut Links {
            &mut self.0[i as usize].0
        }
        fn deadline(&self, i: u32) -> u64 {
            self.0[i as usize].1
        }
        fn set_deadline(&mut self, i: u32, at: u64) {
            self.0[i as usize].1 = at;
        }
    }

    fn drain(w: &mut Wheel, n: &mut Plain, now: u64) -> Vec<u32> {
        let mut out = vec![];
        while let Some(i) = w.next_due(n, now) {
            out.push(i);
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn levels_follow_the_highest_differing_bit() {
        assert_eq!(level_for(0, 0), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(63, 64), 1);
        assert_eq!(level_for(0, u64::MAX), 10);
    }

    #[test]
    fn timers_fire_at_their_tick_and_not_before() {
        let deadlines = [
            0u64,
            1,
            63,
            64,
            65,
            4095,
            4096,
            300_000,
            1 << 33,
            u64::MAX - 1,
        ];
        let mut n = Plain(vec![(Links::UNLINKED, 0); deadlines.len()]);
        let mut w = Wheel::new(0);
        for (i, &d) in deadlines.iter().enumerate() {
            w.insert(&mut n, i as u32, d);
        }
        for (i, &d) in deadlines.iter().enumerate() {
            assert_eq!(w.next_deadline(), Some(d));
            if d > 0 {
                assert_eq!(drain(&mut w, &mut n, d - 1), Vec::<u32>::new());
            }
            assert_eq!(drain(&mut w, &mut n, d), vec![i as u32]);
        }
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn a_jump_fires_everything_due_at_once() {
        let mut n = Plain(vec![(Links::UNLINKED, 0); 1000]);
        let mut w = Wheel::new(5);
        for i in 0..1000u32 {
            w.insert(&mut n, i, u64::from(i) * 7919 * 1000);
        }
        let due = drain(&mut w, &mut n, 500 * 7919 * 1000);
        assert_eq!(due, (0..=500).collect::<Vec<_>>());
        assert_eq!(w.next_deadline(), Some(501 * 7919 * 1000));
    }

    #[test]
    fn removal_from_every_position() {
        let mut n = Plain(vec![(Links::UNLINKED, 0); 4]);
        let mut w = Wheel::new(0);
        for i in 0..4 {
            w.insert(&mut n, i, 100);
        }
        w.remove(&mut n, 0);
        w.remove(&mut n, 3);
        w.remove(&mut n, 3);
        assert_eq!(drain(&mut w, &mut n, 100), vec![1, 2]);
        assert_eq!(w.next_deadline(), None);
    }
}
