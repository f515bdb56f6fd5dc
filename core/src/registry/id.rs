//! Generation-checked connection ids.

use std::fmt;

/// A handle to a connection in a [`Registry`](super::Registry): a slot index
/// plus the generation of that slot.
///
/// When a connection is removed or expires, its slot is reused with a new
/// generation, so an old id can never reach the new connection: the registry
/// answers it with [`HandleError::Stale`](crate::HandleError::Stale).
///
/// Issued generations are always odd, so [`ConnId::to_u64`] is never 0 and C
/// code can use 0 as "no connection".
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    pub(crate) fn new(index: u32, generation: u32) -> Self {
        Self { index, generation }
    }

    /// The slot index (reused after removal).
    pub fn index(self) -> u32 {
        self.index
    }

    /// The slot's generation when the id was issued.
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// The id as one integer: generation in the high 32 bits, index in the
    /// low 32 bits. Never 0 for an issued id.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The inverse of [`ConnId::to_u64`]. Accepts any value; the registry
    /// rejects values it never issued (0 included) with
    /// [`HandleError::Invalid`](crate::HandleError::Invalid).
    pub fn from_u64(raw: u64) -> Self {
        Self {
            index: raw as u32,
            generation: (raw >> 32) as u32,
        }
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}v{}", self.index, self.generation)
    }
}
