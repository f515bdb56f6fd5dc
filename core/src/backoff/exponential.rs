//! The one configurable [`Backoff`]: exponential growth, capped, jittered,
//! with give-up limits and a healthy-connection window.

use std::time::{Duration, Instant};

use super::jitter::duration_from_nanos;
use super::{Backoff, BackoffConfig};
use crate::error::ConfigError;

/// Exponential reconnect backoff driven by injected time.
///
/// The delay after the `n`-th consecutive failure is
/// `min(max_delay, initial × multiplier^(n−1))`, then jittered as
/// [`BackoffConfig::jitter`] says. Every arithmetic step saturates, so huge
/// attempt counts or durations never panic.
///
/// The attempt counter (and the start of the failure streak that
/// [`BackoffConfig::max_elapsed`] measures from) resets on [`Backoff::reset`]
/// or when a connection that lasted at least
/// [`BackoffConfig::healthy_after`] ends; a connection that drops sooner
/// leaves the counter alone, so a peer that accepts and closes at once
/// still meets growing delays.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tether_core::backoff::{Backoff, BackoffConfig, ExponentialBackoff, Jitter};
///
/// let cfg = BackoffConfig::default().with_jitter(Jitter::None);
/// let mut backoff = ExponentialBackoff::new(cfg).unwrap();
/// let mut now = Instant::now();
/// assert_eq!(backoff.next_delay(now), Some(Duration::from_secs(1)));
/// now += Duration::from_secs(1);
/// assert_eq!(backoff.next_delay(now), Some(Duration::from_secs(2)));
///
/// // Connected for 10 s (healthy_after): the next failure starts over.
/// backoff.on_connected(now);
/// backoff.on_disconnected(now + Duration::from_secs(10));
/// assert_eq!(backoff.attempt(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct ExponentialBackoff {
    config: BackoffConfig,
    rng: fastrand::Rng,
    /// Failures since the last reset (saturating).
    attempt: u32,
    /// When the first failure of the current streak was reported.
    streak_start: Option<Instant>,
    /// When the current connection was established, if one is up.
    connected_at: Option<Instant>,
    /// The delay returned last; decorrelated jitter grows from it.
    previous: Duration,
}

impl ExponentialBackoff {
    /// Validates `config` and builds the backoff. The jitter's random
    /// numbers come from [`BackoffConfig::seed`], or from a random seed if
    /// it is `None`.
    pub fn new(config: BackoffConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let rng = match config.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        Ok(Self {
            previous: config.initial,
            config,
            rng,
            attempt: 0,
            streak_start: None,
            connected_at: None,
        })
    }

    /// The settings this backoff was built with.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// The un-jittered, capped delay after failure `n` (1-based; `0` is
    /// treated as `1`).
    fn base_delay(&self, n: u32) -> Duration {
        let cfg = &self.config;
        let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        // `multiplier` >= 1, so the power only grows and overflows to
        // infinity, which the comparison below maps to the cap.
        let nanos = cfg.initial.as_nanos() as f64 * cfg.multiplier.powi(exponent);
        let cap = cfg.max_delay.as_nanos();
        if nanos.is_finite() && nanos < cap as f64 {
            duration_from_nanos((nanos as u128).min(cap))
        } else {
            cfg.max_delay
        }
    }

    fn limit_reached(&self, now: Instant) -> bool {
        let attempts_spent = self
            .config
            .max_attempts
            .is_some_and(|max| self.attempt >= max);
        let time_spent = match (self.config.max_elapsed, self.streak_start) {
            (Some(max), Some(start)) => now.saturating_duration_since(start) >= max,
            _ => false,
        };
        attempts_spent || time_spent
    }
}

impl Backoff for ExponentialBackoff {
    /// Counts one failure, then returns its jittered delay, or `None` once
    /// [`BackoffConfig::max_attempts`] failures have happened or
    /// [`BackoffConfig::max_elapsed`] has passed since the first failure of
    /// the streak. Keeps returning `None` until a reset.
    fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        self.streak_start.get_or_insert(now);
        self.attempt = self.attempt.saturating_add(1);
        if self.limit_reached(now) {
            return None;
        }
        let cfg = &self.config;
        let capped = self.base_delay(self.attempt);
        let delay = cfg.jitter.apply(
            capped,
            self.previous,
            cfg.initial,
            cfg.max_delay,
            &mut self.rng,
        );
        self.previous = delay;
        Some(delay)
    }

    /// `max(min_connect_timeout, un-jittered delay that would follow a
    /// failure of the coming attempt)`, as gRPC's connection backoff does:
    /// slow links get as long to connect as the backoff window they are in.
    fn connect_timeout(&self) -> Duration {
        self.base_delay(self.attempt.saturating_add(1))
            .max(self.config.min_connect_timeout)
    }

    fn on_connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// Resets the attempt counter and the failure streak if the connection
    /// lasted at least [`BackoffConfig::healthy_after`]; otherwise the next
    /// failure continues the streak where it left off.
    fn on_disconnected(&mut self, now: Instant) {
        if let Some(connected_at) = self.connected_at.take() {
            if now.saturating_duration_since(connected_at) >= self.config.healthy_after {
                self.reset();
            }
        }
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    fn reset(&mut self) {
        self.attempt = 0;
        self.streak_start = None;
        self.previous = self.config.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Jitter;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn exact(cfg: BackoffConfig) -> ExponentialBackoff {
        ExponentialBackoff::new(cfg.with_jitter(Jitter::None)).unwrap()
    }

    #[test]
    fn new_rejects_invalid_config() {
        let err = ExponentialBackoff::new(BackoffConfig::default().with_multiplier(0.9));
        assert_eq!(err.unwrap_err().field, "backoff.multiplier");
    }

    #[test]
    fn default_doubles_to_the_cap() {
        let mut b = exact(BackoffConfig::default());
        let now = Instant::now();
        let delays: Vec<_> = (0..8).map(|_| b.next_delay(now).unwrap()).collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 30, 30, 30].map(secs).to_vec(),
            "1 s doubling, capped at 30 s"
        );
        assert_eq!(b.attempt(), 8);
    }

    #[test]
    fn grpc_shape_without_jitter() {
        let mut b = exact(BackoffConfig::grpc());
        let now = Instant::now();
        let d: Vec<_> = (0..3).map(|_| b.next_delay(now).unwrap()).collect();
        assert_eq!(d[0], secs(1));
        assert_eq!(d[1], Duration::from_millis(1600));
        assert_eq!(d[2], Duration::from_millis(2560));
        for _ in 0..20 {
            b.next_delay(now);
        }
        assert_eq!(b.next_delay(now), Some(secs(120)));
    }

    #[test]
    fn fixed_never_grows() {
        let mut b = exact(BackoffConfig::fixed(secs(5)));
        let now = Instant::now();
        for _ in 0..50 {
            assert_eq!(b.next_delay(now), Some(secs(5)));
        }
    }

    #[test]
    fn huge_attempt_counts_saturate_at_the_cap() {
        let mut b = exact(
            BackoffConfig::default()
                .with_multiplier(crate::limits::MAX_FACTOR)
                .with_max_delay(crate::limits::MAX_DURATION),
        );
        let now = Instant::now();
        assert_eq!(b.next_delay(now), Some(secs(1)));
        assert_eq!(b.next_delay(now), Some(secs(1000)));
        assert_eq!(
            b.next_delay(now),
            Some(secs(1_000_000).min(crate::limits::MAX_DURATION))
        );
        b.attempt = u32::MAX - 1;
        assert_eq!(b.next_delay(now), Some(crate::limits::MAX_DURATION));
        assert_eq!(b.next_delay(now), Some(crate::limits::MAX_DURATION));
        assert_eq!(b.attempt(), u32::MAX);
        assert_eq!(b.connect_timeout(), crate::limits::MAX_DURATION);
    }

    #[test]
    fn every_jitter_survives_extreme_configs() {
        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
            Jitter::Proportional(1.0),
        ] {
            let cfg = BackoffConfig::default()
                .with_initial(Duration::from_nanos(1))
                .with_multiplier(crate::limits::MAX_FACTOR)
                .with_max_delay(crate::limits::MAX_DURATION)
                .with_jitter(jitter)
                .with_seed(9);
            let mut b = ExponentialBackoff::new(cfg).unwrap();
            let now = Instant::now();
            for _ in 0..100 {
                assert!(b.next_delay(now).is_some());
            }
        }
    }

    #[test]
    fn max_attempts_gives_up_after_that_many_failures() {
        let mut b = exact(BackoffConfig::default().with_max_attempts(3));
        let now = Instant::now();
        assert!(b.next_delay(now).is_some());
        assert!(b.next_delay(now).is_some());
        assert_eq!(b.next_delay(now), None, "third failure: give up");
        assert_eq!(b.next_delay(now), None, "stays given up");
        b.reset();
        assert_eq!(b.next_delay(now), Some(secs(1)));
    }

    #[test]
    fn single_attempt_never_retries() {
        let mut b = exact(BackoffConfig::default().with_max_attempts(1));
        assert_eq!(b.next_delay(Instant::now()), None);
    }

    #[test]
    fn max_elapsed_counts_from_the_first_failure() {
        let mut b = exact(BackoffConfig::default().with_max_elapsed(secs(10)));
        let t0 = Instant::now();
        assert!(b.next_delay(t0).is_some());
        assert!(b.next_delay(t0 + secs(9)).is_some());
        assert_eq!(b.next_delay(t0 + secs(10)), None);
        b.reset();
        assert!(b.next_delay(t0 + secs(100)).is_some());
    }

    #[test]
    fn connect_timeout_is_at_least_the_minimum_and_follows_the_delay() {
        let mut b = exact(BackoffConfig::grpc());
        let now = Instant::now();
        assert_eq!(b.connect_timeout(), secs(20));
        for _ in 0..30 {
            b.next_delay(now);
        }
        assert_eq!(b.connect_timeout(), secs(120));
    }

    #[test]
    fn short_connection_does_not_reset() {
        let mut b = exact(BackoffConfig::default());
        let t = Instant::now();
        b.next_delay(t);
        b.next_delay(t);
        b.on_connected(t);
        b.on_disconnected(t + Duration::from_millis(9_999));
        assert_eq!(b.attempt(), 2);
        assert_eq!(b.next_delay(t), Some(secs(4)));
    }

    #[test]
    fn healthy_connection_resets() {
        let mut b = exact(BackoffConfig::default().with_max_elapsed(secs(60)));
        let t = Instant::now();
        b.next_delay(t);
        b.next_delay(t);
        b.on_connected(t + secs(50));
        b.on_disconnected(t + secs(60));
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(t + secs(61)), Some(secs(1)), "new streak");
    }

    #[test]
    fn disconnect_without_connect_is_ignored() {
        let mut b = exact(BackoffConfig::default().with_healthy_after(Duration::ZERO));
        let t = Instant::now();
        b.next_delay(t);
        b.on_disconnected(t + secs(100));
        assert_eq!(b.attempt(), 1);
    }

    #[test]
    fn time_going_backwards_does_not_panic() {
        let mut b = exact(BackoffConfig::default().with_max_elapsed(secs(5)));
        let t = Instant::now() + secs(100);
        b.next_delay(t);
        assert!(b.next_delay(t - secs(50)).is_some());
        b.on_connected(t);
        b.on_disconnected(t - secs(50));
        assert_eq!(b.attempt(), 2);
    }

    #[test]
    fn same_seed_same_delays() {
        let cfg = BackoffConfig::default().with_seed(1234);
        let mut a = ExponentialBackoff::new(cfg.clone()).unwrap();
        let mut b = ExponentialBackoff::new(cfg).unwrap();
        let now = Instant::now();
        for _ in 0..50 {
            assert_eq!(a.next_delay(now), b.next_delay(now));
        }
    }

    #[test]
    fn usable_as_trait_object() {
        let mut b: Box<dyn Backoff> =
            Box::new(ExponentialBackoff::new(BackoffConfig::default()).unwrap());
        assert!(b.next_delay(Instant::now()).unwrap() <= secs(1));
        assert_eq!(b.attempt(), 1);
    }
}
