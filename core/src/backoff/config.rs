//! Reconnect backoff settings, their presets and their validation.

use std::time::Duration;

use super::Jitter;
use crate::error::ConfigError;
use crate::limits;

/// Settings of an [`ExponentialBackoff`](super::ExponentialBackoff).
///
/// The un-jittered delay after the `n`-th consecutive failure (1-based) is
/// `min(max_delay, initial × multiplier^(n−1))`; [`Jitter`] then randomises
/// it. Build one from [`BackoffConfig::default`], [`BackoffConfig::grpc`] or
/// [`BackoffConfig::fixed`] and adjust it with the `with_*` setters;
/// [`BackoffConfig::validate`] (called by `ExponentialBackoff::new`) checks
/// the constraints given on each field.
///
/// ```
/// use std::time::Duration;
/// use tether_core::backoff::{BackoffConfig, Jitter};
///
/// let cfg = BackoffConfig::default()
///     .with_max_delay(Duration::from_secs(60))
///     .with_jitter(Jitter::Equal)
///     .with_max_attempts(10);
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// Delay after the first failure, before jitter. Must be greater than
    /// zero: a zero delay would make a reconnect busy-loop.
    pub initial: Duration,
    /// Factor applied to the delay after each further failure. Must be
    /// finite and at least `1.0` (`1.0` = fixed delay).
    pub multiplier: f64,
    /// Cap on the un-jittered delay. Must be at least `initial`. Only
    /// [`Jitter::Proportional`] can return more (up to `max_delay × (1 + f)`).
    pub max_delay: Duration,
    /// How delays are randomised so that clients do not retry in lockstep.
    pub jitter: Jitter,
    /// Give up after this many consecutive failed attempts (`None` = never).
    /// Must not be `Some(0)`. `Some(1)` means a single attempt, no retry.
    pub max_attempts: Option<u32>,
    /// Give up once this much time has passed since the first failure of
    /// the current streak (`None` = never). Must not be `Some(0)`. The last
    /// delay handed out may end after this limit.
    pub max_elapsed: Option<Duration>,
    /// Lower bound for the connect timeout of each attempt; the timeout is
    /// the larger of this and the current un-jittered delay, as in gRPC.
    /// Must be greater than zero.
    pub min_connect_timeout: Duration,
    /// How long a connection must stay up before its end resets the
    /// attempt counter. A peer that accepts and closes at once therefore
    /// still sees growing delays (rumqtt #703). `0` resets on every
    /// connection.
    pub healthy_after: Duration,
    /// Seed for the jitter's random numbers: `None` picks a random seed,
    /// `Some` makes the sequence of delays reproducible.
    pub seed: Option<u64>,
}

impl Default for BackoffConfig {
    /// 1 s doubling to 30 s, [`Jitter::Full`], no give-up limits, connect
    /// timeout at least 20 s, healthy after 10 s connected, random seed.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: Jitter::Full,
            max_attempts: None,
            max_elapsed: None,
            min_connect_timeout: Duration::from_secs(20),
            healthy_after: Duration::from_secs(10),
            seed: None,
        }
    }
}

impl BackoffConfig {
    /// gRPC's connection backoff (A6/A9): 1 s growing ×1.6 to 120 s, ±20 %
    /// jitter ([`Jitter::Proportional(0.2)`](Jitter::Proportional)), connect
    /// timeout at least 20 s. Other fields as in [`Default`].
    pub fn grpc() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            max_delay: Duration::from_secs(120),
            jitter: Jitter::Proportional(0.2),
            min_connect_timeout: Duration::from_secs(20),
            ..Self::default()
        }
    }

    /// The same delay `delay` after every failure (multiplier `1.0`),
    /// randomised by ±20 % ([`Jitter::Proportional(0.2)`](Jitter::Proportional))
    /// so that the mean stays `delay` while clients still spread. Use
    /// `.with_jitter(Jitter::None)` for an exact delay. Other fields as in
    /// [`Default`]. `delay` must be greater than zero to validate.
    pub fn fixed(delay: Duration) -> Self {
        Self {
            initial: delay,
            multiplier: 1.0,
            max_delay: delay,
            jitter: Jitter::Proportional(0.2),
            ..Self::default()
        }
    }

    /// Sets [`initial`](Self::initial): the first delay (> 0).
    pub fn with_initial(mut self, initial: Duration) -> Self {
        self.initial = initial;
        self
    }

    /// Sets [`multiplier`](Self::multiplier): growth per failure (finite, ≥ 1.0).
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets [`max_delay`](Self::max_delay): the cap (≥ `initial`).
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Sets [`jitter`](Self::jitter).
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts): give up after this many
    /// consecutive failures (≥ 1).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Sets [`max_elapsed`](Self::max_elapsed): give up this long after the
    /// first failure of a streak (> 0).
    pub fn with_max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// Sets [`min_connect_timeout`](Self::min_connect_timeout) (> 0).
    pub fn with_min_connect_timeout(mut self, min_connect_timeout: Duration) -> Self {
        self.min_connect_timeout = min_connect_timeout;
        self
    }

    /// Sets [`healthy_after`](Self::healthy_after): how long a connection must
    /// last before its end resets the attempt counter.
    pub fn with_healthy_after(mut self, healthy_after: Duration) -> Self {
        self.healthy_after = healthy_after;
        self
    }

    /// Sets [`seed`](Self::seed) to `Some(seed)`: reproducible jitter.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks every constraint documented on the fields; the error names
    /// the first offending field, e.g. `"backoff.multiplier"`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.initial.is_zero() {
            return Err(ConfigError::new(
                "backoff.initial",
                "must be greater than zero (a zero delay makes a reconnect busy-loop)",
            ));
        }
        limits::positive_duration("backoff.initial", self.initial)?;
        limits::factor("backoff.multiplier", self.multiplier)?;
        limits::bounded_duration("backoff.max_delay", self.max_delay)?;
        if let Some(d) = self.max_elapsed {
            limits::bounded_duration("backoff.max_elapsed", d)?;
        }
        limits::bounded_duration("backoff.min_connect_timeout", self.min_connect_timeout)?;
        limits::bounded_duration("backoff.healthy_after", self.healthy_after)?;
        if self.max_delay < self.initial {
            return Err(ConfigError::new(
                "backoff.max_delay",
                format!(
                    "must be at least backoff.initial ({:?}), got {:?}",
                    self.initial, self.max_delay
                ),
            ));
        }
        if let Jitter::Proportional(fraction) = self.jitter {
            if !(0.0..=1.0).contains(&fraction) {
                return Err(ConfigError::new(
                    "backoff.jitter",
                    format!("proportional fraction must be within [0, 1], got {fraction}"),
                ));
            }
        }
        if self.max_attempts == Some(0) {
            return Err(ConfigError::new(
                "backoff.max_attempts",
                "must be at least 1 (use None for no limit)",
            ));
        }
        if self.max_elapsed == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "backoff.max_elapsed",
                "must be greater than zero (use None for no limit)",
            ));
        }
        if self.min_connect_timeout.is_zero() {
            return Err(ConfigError::new(
                "backoff.min_connect_timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(cfg: BackoffConfig) -> &'static str {
        cfg.validate().expect_err("should be rejected").field
    }

    #[test]
    fn presets_are_valid() {
        assert_eq!(BackoffConfig::default().validate(), Ok(()));
        assert_eq!(BackoffConfig::grpc().validate(), Ok(()));
        assert_eq!(
            BackoffConfig::fixed(Duration::from_millis(500)).validate(),
            Ok(())
        );
    }

    #[test]
    fn default_values() {
        let d = BackoffConfig::default();
        assert_eq!(d.initial, Duration::from_secs(1));
        assert_eq!(d.multiplier, 2.0);
        assert_eq!(d.max_delay, Duration::from_secs(30));
        assert_eq!(d.jitter, Jitter::Full);
        assert_eq!(d.max_attempts, None);
        assert_eq!(d.max_elapsed, None);
        assert_eq!(d.min_connect_timeout, Duration::from_secs(20));
        assert_eq!(d.healthy_after, Duration::from_secs(10));
        assert_eq!(d.seed, None);
    }

    #[test]
    fn grpc_values() {
        let g = BackoffConfig::grpc();
        assert_eq!(g.initial, Duration::from_secs(1));
        assert_eq!(g.multiplier, 1.6);
        assert_eq!(g.max_delay, Duration::from_secs(120));
        assert_eq!(g.jitter, Jitter::Proportional(0.2));
        assert_eq!(g.min_connect_timeout, Duration::from_secs(20));
    }

    #[test]
    fn fixed_has_multiplier_one() {
        let f = BackoffConfig::fixed(Duration::from_secs(5));
        assert_eq!(f.multiplier, 1.0);
        assert_eq!(f.initial, Duration::from_secs(5));
        assert_eq!(f.max_delay, Duration::from_secs(5));
    }

    #[test]
    fn setters_set() {
        let c = BackoffConfig::default()
            .with_initial(Duration::from_millis(100))
            .with_multiplier(3.0)
            .with_max_delay(Duration::from_secs(9))
            .with_jitter(Jitter::Decorrelated)
            .with_max_attempts(4)
            .with_max_elapsed(Duration::from_secs(60))
            .with_min_connect_timeout(Duration::from_secs(2))
            .with_healthy_after(Duration::from_secs(3))
            .with_seed(42);
        assert_eq!(
            c,
            BackoffConfig {
                initial: Duration::from_millis(100),
                multiplier: 3.0,
                max_delay: Duration::from_secs(9),
                jitter: Jitter::Decorrelated,
                max_attempts: Some(4),
                max_elapsed: Some(Duration::from_secs(60)),
                min_connect_timeout: Duration::from_secs(2),
                healthy_after: Duration::from_secs(3),
                seed: Some(42),
            }
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn rejects_bad_values_naming_the_field() {
        let d = BackoffConfig::default;
        assert_eq!(
            field_of(d().with_initial(Duration::ZERO)),
            "backoff.initial"
        );
        for m in [0.5, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(field_of(d().with_multiplier(m)), "backoff.multiplier");
        }
        assert_eq!(
            field_of(d().with_max_delay(Duration::from_millis(999))),
            "backoff.max_delay"
        );
        for f in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert_eq!(
                field_of(d().with_jitter(Jitter::Proportional(f))),
                "backoff.jitter"
            );
        }
        assert_eq!(field_of(d().with_max_attempts(0)), "backoff.max_attempts");
        assert_eq!(
            field_of(d().with_max_elapsed(Duration::ZERO)),
            "backoff.max_elapsed"
        );
        assert_eq!(
            field_of(d().with_min_connect_timeout(Duration::ZERO)),
            "backoff.min_connect_timeout"
        );
    }

    #[test]
    fn accepts_edge_values() {
        let d = BackoffConfig::default;
        assert_eq!(d().with_multiplier(1.0).validate(), Ok(()));
        assert_eq!(
            d().with_max_delay(Duration::from_secs(1)).validate(),
            Ok(())
        );
        assert_eq!(
            d().with_max_delay(crate::limits::MAX_DURATION).validate(),
            Ok(())
        );
        // One past each bound names its field.
        let over = crate::limits::MAX_DURATION + Duration::from_millis(1);
        assert_eq!(
            field_of(d().with_max_delay(Duration::MAX)),
            "backoff.max_delay"
        );
        assert_eq!(field_of(d().with_max_delay(over)), "backoff.max_delay");
        assert_eq!(field_of(d().with_multiplier(1e300)), "backoff.multiplier");
        assert_eq!(
            field_of(d().with_min_connect_timeout(over)),
            "backoff.min_connect_timeout"
        );
        assert_eq!(
            d().with_jitter(Jitter::Proportional(0.0)).validate(),
            Ok(())
        );
        assert_eq!(
            d().with_jitter(Jitter::Proportional(1.0)).validate(),
            Ok(())
        );
        assert_eq!(d().with_max_attempts(1).validate(), Ok(()));
        assert_eq!(d().with_healthy_after(Duration::ZERO).validate(), Ok(()));
    }

    #[test]
    fn error_message_names_field_and_problem() {
        let e = BackoffConfig::default()
            .with_multiplier(0.5)
            .validate()
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("backoff.multiplier"), "{text}");
        assert!(text.contains("0.5"), "{text}");
    }
}
