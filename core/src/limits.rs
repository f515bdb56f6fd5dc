//! The upper bounds of every setting, in one place, so that an extreme
//! value is refused when configured (naming the field) instead of
//! overflowing a deadline or a queue later.
//!
//! | setting | bound |
//! |---|---|
//! | any duration (heartbeat, idle timeout, backoff delays, connect and handshake timeouts, kernel keepalive) | [`MAX_DURATION`] (7 days) |
//! | a growth factor (backoff multiplier, idle factor) | [`MAX_FACTOR`] (1000) |
//! | a queue length (client `max_pending`, server `send_queue`, a connection's queues) | [`MAX_QUEUE`] (16,777,216) |

use crate::ConfigError;
use std::time::Duration;

/// The longest duration any setting accepts: 7 days.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The largest growth factor any setting accepts.
pub const MAX_FACTOR: f64 = 1000.0;

/// The longest queue any setting accepts, in messages (a client's
/// `max_pending`, a server's `send_queue`, a connection's queues).
pub const MAX_QUEUE: usize = 1 << 24;

/// Checks a queue length: 1 ..= [`MAX_QUEUE`].
pub fn queue_len(field: &'static str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(field, "must be at least 1"));
    }
    if value > MAX_QUEUE {
        return Err(ConfigError::new(
            field,
            format!("{value} is more than the maximum of {MAX_QUEUE}"),
        ));
    }
    Ok(())
}

/// Checks a duration that must be greater than zero and at most
/// [`MAX_DURATION`].
pub fn positive_duration(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::new(field, "must be greater than zero"));
    }
    bounded_duration(field, value)
}

/// Checks a duration that must be at most [`MAX_DURATION`] (zero allowed).
pub fn bounded_duration(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value > MAX_DURATION {
        return Err(ConfigError::new(
            field,
            format!(
                "{} ms is more than the maximum of {} ms (7 days)",
                value.as_millis(),
                MAX_DURATION.as_millis()
            ),
        ));
    }
    Ok(())
}

/// Checks a growth factor: finite, at least 1.0, at most [`MAX_FACTOR`].
pub fn factor(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if !value.is_finite() || !(1.0..=MAX_FACTOR).contains(&value) {
        return Err(ConfigError::new(
            field,
            format!("must be a finite number from 1.0 to {MAX_FACTOR}, got {value}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_are_refused_with_the_field() {
        assert!(positive_duration("a", Duration::from_millis(1)).is_ok());
        assert!(positive_duration("a", MAX_DURATION).is_ok());
        assert_eq!(
            positive_duration("a", Duration::ZERO).unwrap_err().field,
            "a"
        );
        let over = MAX_DURATION + Duration::from_millis(1);
        assert_eq!(positive_duration("b", over).unwrap_err().field, "b");
        assert!(bounded_duration("c", Duration::MAX).is_err());
        assert!(queue_len("q", 1).is_ok() && queue_len("q", MAX_QUEUE).is_ok());
        assert_eq!(queue_len("q", 0).unwrap_err().field, "q");
        assert_eq!(queue_len("q", MAX_QUEUE + 1).unwrap_err().field, "q");
        assert!(factor("m", 1.0).is_ok() && factor("m", MAX_FACTOR).is_ok());
        for bad in [0.5, 1e300, f64::NAN, f64::INFINITY, -1.0] {
            assert_eq!(factor("m", bad).unwrap_err().field, "m");
        }
    }
}
