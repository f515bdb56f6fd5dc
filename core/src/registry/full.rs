//! The one way an insert can fail.

use thiserror::Error;

/// [`Registry::insert`](super::Registry::insert) found the registry at its
/// size limit (the configured maximum, or the `u32` index space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("connection registry full ({max_len} connections)")]
pub struct RegistryFull {
    /// The limit that was reached.
    pub max_len: usize,
}

impl From<RegistryFull> for std::io::Error {
    fn from(e: RegistryFull) -> Self {
        std::io::Error::new(std::io::ErrorKind::OutOfMemory, e)
    }
}
