//! Millisecond ticks relative to an origin: the compact time unit of the
//! liveness rule and the registry.

use std::time::{Duration, Instant};

/// Converts between `Instant` and whole milliseconds since an origin.
///
/// Times before the origin clamp to tick 0; that never happens when the
/// origin is the creation time of the owning state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticks {
    origin: Instant,
}

impl Ticks {
    /// Ticks counted from `origin`.
    pub fn new(origin: Instant) -> Self {
        Self { origin }
    }

    /// The origin instant (tick 0).
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Whole milliseconds from the origin to `t`, rounded down.
    pub fn from_instant(&self, t: Instant) -> u64 {
        let ms = t.saturating_duration_since(self.origin).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// The instant of `tick`.
    pub fn to_instant(&self, tick: u64) -> Instant {
        self.origin
            .checked_add(Duration::from_millis(tick))
            .unwrap_or(self.origin + Duration::from_secs(u32::MAX as u64))
    }
}

/// A duration in whole milliseconds, rounded up so that a nonzero duration
/// never becomes zero ticks, saturating at `u64::MAX`.
pub(crate) fn ms_ceil(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}
