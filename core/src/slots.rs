//! Slots that any thread reads without a lock: the read side of a
//! generation-checked table (libtether's handle tables, a server's
//! connections by id) whose writers serialize on a lock of their own.
//!
//! Slot `i` lives in a chunk that is allocated once and never moves
//! (chunk `c` holds `64 << c` slots), each slot an `ArcSwapOption`, so a
//! reader finds it with two loads and clones the `Arc` inside without
//! blocking; a writer storing into the same slot meanwhile only decides
//! whether the reader sees the old or the new value. Values carry their
//! own generation; the caller compares it with the id's.

use arc_swap::ArcSwapOption;
use std::sync::{Arc, OnceLock};

/// Slots in the first chunk; each next chunk is twice the one before.
const BASE: usize = 64;

/// The most slots: 2^24, as many as a 24-bit index names.
pub const MAX_SLOTS: usize = 1 << 24;

/// Chunks enough for `MAX_SLOTS`: `BASE * (2^CHUNKS - 1) >= MAX_SLOTS`.
const CHUNKS: usize = 19;

/// The chunk holding slot `index` and the slot's place in it.
fn locate(index: usize) -> (usize, usize) {
    let n = index / BASE + 1;
    let chunk = (usize::BITS - 1 - n.leading_zeros()) as usize;
    (chunk, index - BASE * ((1 << chunk) - 1))
}

/// Up to [`MAX_SLOTS`] optional `Arc<T>`s, by index.
pub struct AtomicSlots<T> {
    chunks: [OnceLock<Box<[ArcSwapOption<T>]>>; CHUNKS],
}

impl<T> Default for AtomicSlots<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> AtomicSlots<T> {
    /// Every slot empty; nothing allocated until the first store.
    pub const fn new() -> Self {
        Self {
            chunks: [const { OnceLock::new() }; CHUNKS],
        }
    }

    fn slot(&self, index: usize) -> Option<&ArcSwapOption<T>> {
        if index >= MAX_SLOTS {
            return None;
        }
        let (chunk, at) = locate(index);
        self.chunks[chunk].get()?.get(at)
    }

    /// What slot `index` holds (a clone of the `Arc`); `None` when empty or
    /// out of range. Takes no lock.
    pub fn load(&self, index: usize) -> Option<Arc<T>> {
        self.slot(index)?.load_full()
    }

    /// Runs `f` on what slot `index` holds, without cloning it.
    pub fn peek<R>(&self, index: usize, f: impl FnOnce(Option<&T>) -> R) -> R {
        match self.slot(index) {
            Some(slot) => f(slot.load().as_deref()),
            None => f(None),
        }
    }

    /// Puts `value` in slot `index` (allocating its chunk on first use)
    /// and returns what was there. `index` must be below [`MAX_SLOTS`]
    /// (larger ones are refused: `value` comes back as `Err`).
    pub fn store(
        &self,
        index: usize,
        value: Option<Arc<T>>,
    ) -> Result<Option<Arc<T>>, Option<Arc<T>>> {
        if index >= MAX_SLOTS {
            return Err(value);
        }
        let (chunk, at) = locate(index);
        let slots = self.chunks[chunk].get_or_init(|| {
            (0..BASE << chunk)
                .map(|_| ArcSwapOption::const_empty())
                .collect()
        });
        Ok(slots[at].swap(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_onto_chunks_without_gaps_up_to_the_last_index() {
        let mut expected = (0, 0);
        for index in 0..(BASE * 8) {
            assert_eq!(locate(index), expected, "index {index}");
            expected.1 += 1;
            if expected.1 == BASE << expected.0 {
                expected = (expected.0 + 1, 0);
            }
        }
        let (chunk, at) = locate(MAX_SLOTS - 1);
        assert!(chunk < CHUNKS && at < BASE << chunk);
    }

    #[test]
    fn stores_and_loads_across_chunks_and_refuses_out_of_range() {
        let slots: AtomicSlots<usize> = AtomicSlots::new();
        assert!(slots.load(5).is_none());
        for i in [0, 63, 64, 191, 192, 100_000] {
            assert!(slots.store(i, Some(Arc::new(i))).unwrap().is_none());
            assert_eq!(slots.load(i).as_deref(), Some(&i));
            assert_eq!(slots.peek(i, |v| v.copied()), Some(i));
        }
        assert_eq!(slots.store(64, None).unwrap().as_deref(), Some(&64));
        assert!(slots.load(64).is_none());
        assert!(slots.store(MAX_SLOTS, Some(Arc::new(1))).is_err());
        assert!(slots.load(MAX_SLOTS).is_none());
    }

    #[test]
    fn readers_on_other_threads_see_whole_values_while_slots_change() {
        let slots: Arc<AtomicSlots<(usize, usize)>> = Arc::new(AtomicSlots::new());
        for i in 0..256 {
            slots.store(i, Some(Arc::new((i, i)))).unwrap();
        }
        let reader = {
            let slots = slots.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    for i in 0..256 {
                        if let Some(v) = slots.load(i) {
                            assert_eq!(v.0, v.1, "a value is seen whole");
                        }
                    }
                }
            })
        };
        for round in 0..2000 {
            let i = round % 256;
            slots.store(i, Some(Arc::new((round, round)))).unwrap();
            if round % 3 == 0 {
                slots.store(i, None).unwrap();
            }
        }
        reader.join().unwrap();
    }
}
