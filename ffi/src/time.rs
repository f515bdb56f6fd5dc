//! The millisecond clock of the sans-IO API.
//!
//! Every sans-IO call takes `now_ms`: milliseconds on one monotonic clock.
//! Internally a value `ms` is the instant `ORIGIN + ms`, where `ORIGIN` is
//! fixed the first time tether needs it. Any monotonic millisecond clock
//! works (e.g. `CLOCK_MONOTONIC` in ms), as long as one object is always fed
//! from the same clock; `tether_now_ms` is provided for convenience.

use crate::panic::guard_value;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ORIGIN: OnceLock<Instant> = OnceLock::new();

fn origin() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}

/// The instant of clock value `ms`.
pub(crate) fn instant(ms: u64) -> Instant {
    let o = origin();
    o.checked_add(Duration::from_millis(ms))
        .unwrap_or(o + Duration::from_secs(u64::from(u32::MAX)))
}

/// The clock value of `t`, rounded up to a whole millisecond (so a deadline
/// is never reported early).
pub(crate) fn to_ms(t: Instant) -> u64 {
    duration_ms(t.saturating_duration_since(origin()))
}

/// A duration in whole milliseconds, rounded up, saturating.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// `ms` milliseconds.
pub(crate) fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// The `epoll_wait`-style timeout until `deadline` seen at `now_ms`: -1 for
/// no deadline, 0 when due, else the milliseconds left (capped at
/// `INT32_MAX`).
pub(crate) fn wait_ms(deadline: Option<Instant>, now_ms: u64) -> i32 {
    match deadline {
        None => -1,
        Some(d) => {
            let left = to_ms(d).saturating_sub(now_ms);
            i32::try_from(left).unwrap_or(i32::MAX)
        }
    }
}

/// Milliseconds elapsed on a monotonic clock since a process-wide origin
/// (the first time tether read the clock).
///
/// Pass it as `now_ms` to the sans-IO functions. Any other monotonic
/// millisecond clock (e.g. `CLOCK_MONOTONIC`) works as well, provided each
/// object is always fed from the same clock. Never fails.
#[no_mangle]
pub extern "C" fn tether_now_ms() -> u64 {
    guard_value(0, || to_ms_floor(Instant::now()))
}

fn to_ms_floor(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(origin()).as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_waits() {
        assert_eq!(to_ms(instant(1234)), 1234);
        assert_eq!(wait_ms(None, 5), -1);
        assert_eq!(wait_ms(Some(instant(100)), 150), 0);
        assert_eq!(wait_ms(Some(instant(100)), 40), 60);
        assert_eq!(wait_ms(Some(instant(u64::from(u32::MAX) * 4)), 0), i32::MAX);
        assert_eq!(duration_ms(Duration::from_micros(1001)), 2);
    }
}
