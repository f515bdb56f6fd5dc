//! A generation-checked slab: values stored under [`ConnId`]s that go
//! stale when the value is removed, so an old id never reaches whatever
//! takes its slot next. The registry's id rule, for any value.

use crate::registry::ConnId;
use crate::HandleError;

#[derive(Debug)]
struct Slot<T> {
    /// Odd while the slot holds a value issued under it.
    generation: u32,
    value: Option<T>,
}

/// Values under generation-checked ids (see the module docs).
///
/// ```
/// use tether_core::slab::Slab;
/// use tether_core::HandleError;
///
/// let mut slab = Slab::new();
/// let a = slab.insert("a");
/// assert_eq!(slab.get(a), Ok(&"a"));
/// assert_eq!(slab.remove(a), Ok("a"));
/// let b = slab.insert("b"); // the same slot, a new generation
/// assert_eq!(a.index(), b.index());
/// assert_eq!(slab.get(a), Err(HandleError::Stale));
/// assert_eq!(slab.remove(a), Err(HandleError::Stale));
/// ```
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slab<T> {
    /// An empty slab.
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// Values stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` under a new id.
    ///
    /// # Panics
    /// Past `u32::MAX` slots (about 4 billion values at once).
    pub fn insert(&mut self, value: T) -> ConnId {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.value = Some(value);
            return ConnId::new(index, slot.generation);
        }
        let index = u32::try_from(self.slots.len()).expect("more than u32::MAX slab slots");
        self.slots.push(Slot {
            generation: 1,
            value: Some(value),
        });
        ConnId::new(index, 1)
    }

    fn slot(&self, id: ConnId) -> Result<&Slot<T>, HandleError> {
        let slot = self
            .slots
            .get(id.index() as usize)
            .ok_or(HandleError::Invalid)?;
        check(slot.generation, slot.value.is_some(), id)?;
        Ok(slot)
    }

    /// The value under `id`.
    pub fn get(&self, id: ConnId) -> Result<&T, HandleError> {
        self.slot(id).map(|s| s.value.as_ref().expect("checked"))
    }

    /// The value under `id`, mutably.
    pub fn get_mut(&mut self, id: ConnId) -> Result<&mut T, HandleError> {
        self.slot(id)?;
        let slot = &mut self.slots[id.index() as usize];
        Ok(slot.value.as_mut().expect("checked"))
    }

    /// Takes the value under `id` out; the id is stale from now on.
    pub fn remove(&mut self, id: ConnId) -> Result<T, HandleError> {
        self.slot(id)?;
        let index = id.index();
        let slot = &mut self.slots[index as usize];
        // Odd to the next odd: the old id never matches again (wrapping
        // after 2^31 reuses of one slot).
        slot.generation = slot.generation.wrapping_add(2);
        self.free.push(index);
        self.len -= 1;
        Ok(slot.value.take().expect("checked"))
    }

    /// Every stored value with its id.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value
                .as_ref()
                .map(|v| (ConnId::new(i as u32, s.generation), v))
        })
    }

    /// Takes every value out (their ids go stale).
    pub fn drain(&mut self) -> Vec<(ConnId, T)> {
        let ids: Vec<ConnId> = self.iter().map(|(id, _)| id).collect();
        ids.into_iter()
            .filter_map(|id| self.remove(id).ok().map(|v| (id, v)))
            .collect()
    }
}

fn check(generation: u32, occupied: bool, id: ConnId) -> Result<(), HandleError> {
    if id.generation() % 2 == 0 || id.generation() > generation {
        return Err(HandleError::Invalid);
    }
    if !occupied || id.generation() != generation {
        return Err(HandleError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_go_stale_and_never_reach_the_next_value() {
        let mut slab = Slab::new();
        let a = slab.insert(1);
        let b = slab.insert(2);
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.remove(a), Ok(1));
        assert_eq!(slab.remove(a), Err(HandleError::Stale));
        let c = slab.insert(3);
        assert_eq!(c.index(), a.index());
        assert_ne!(c, a);
        assert_eq!(slab.get(a), Err(HandleError::Stale));
        assert_eq!(slab.get(c), Ok(&3));
        *slab.get_mut(b).unwrap() = 20;
        let mut all: Vec<i32> = slab.iter().map(|(_, v)| *v).collect();
        all.sort();
        assert_eq!(all, vec![3, 20]);
        assert_eq!(slab.drain().len(), 2);
        assert!(slab.is_empty());
        assert_eq!(slab.get(b), Err(HandleError::Stale));
    }

    #[test]
    fn ids_never_issued_are_invalid() {
        let mut slab: Slab<u8> = Slab::new();
        assert_eq!(slab.get(ConnId::from_u64(0)), Err(HandleError::Invalid));
        let a = slab.insert(7);
        assert_eq!(
            slab.get(ConnId::new(a.index(), a.generation() + 1)),
            Err(HandleError::Invalid)
        );
        assert_eq!(
            slab.get(ConnId::new(a.index(), a.generation() + 2)),
            Err(HandleError::Invalid)
        );
        assert_eq!(slab.get(ConnId::new(99, 1)), Err(HandleError::Invalid));
        assert_eq!(
            slab.remove(ConnId::from_u64(u64::MAX)),
            Err(HandleError::Invalid)
        );
    }
}
