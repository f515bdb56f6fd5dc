//! Jitter: randomising backoff delays so clients that failed together do not
//! retry together.
//!
//! Every kind except [`Jitter::None`] keeps spreading clients once the delay
//! has reached the cap: the randomness is applied to the capped delay (or, for
//! [`Jitter::Decorrelated`], capped after sampling from a range that reaches
//! below the cap), never before capping where the cap would erase it
//! (the Socket.IO and nats.go thundering-herd bugs).

use std::time::Duration;

/// How a backoff delay is randomised.
///
/// In the descriptions, `delay` is the un-jittered delay after capping at
/// `max_delay` (`cap`), `initial` the configured first delay and `previous`
/// the delay returned before this one.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Jitter {
    /// No randomness: exactly `delay`. Clients that lost their server
    /// together retry together (a thundering herd); meant for tests and for
    /// deployments with a single client.
    None,
    /// Uniform in `[0, delay]` (AWS "full jitter", nng). Spreads clients the
    /// most; the mean wait is half the delay.
    #[default]
    Full,
    /// `delay / 2` plus uniform in `[0, delay / 2]` (AWS "equal jitter"): never
    /// less than half the delay.
    Equal,
    /// AWS "decorrelated jitter": `min(cap, uniform[low, 3 × previous])`
    /// where `low = min(initial, cap / 2)`. The delay grows by its own
    /// random walk and ignores the multiplier. `low` is held at or below half
    /// the cap so that clients still spread when `initial` is close to the
    /// cap.
    Decorrelated,
    /// `delay × uniform[1 − f, 1 + f]` with the fraction `f` in `[0, 1]`;
    /// gRPC uses `Proportional(0.2)`, i.e. ±20 %. Applied after capping, so
    /// a delay may exceed `max_delay` by up to `f × max_delay`; that is what
    /// keeps clients apart at the cap.
    Proportional(f64),
}

impl Jitter {
    /// Randomises one delay.
    ///
    /// `capped` is the un-jittered delay already capped at `cap`; `previous`
    /// the delay returned last (only [`Jitter::Decorrelated`] uses it and
    /// `initial`). Never panics: durations saturate at [`Duration::MAX`], and
    /// a [`Jitter::Proportional`] fraction outside `[0, 1]` (which
    /// validation rejects) is clamped, a non-finite one treated as `0`.
    pub fn apply(
        &self,
        capped: Duration,
        previous: Duration,
        initial: Duration,
        cap: Duration,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        let delay = capped.as_nanos();
        let nanos = match *self {
            Jitter::None => delay,
            Jitter::Full => rng.u128(0..=delay),
            Jitter::Equal => {
                let half = delay / 2;
                half + rng.u128(0..=delay - half)
            }
            Jitter::Decorrelated => {
                let cap = cap.as_nanos();
                let low = initial.as_nanos().min(cap / 2);
                let high = previous.as_nanos().saturating_mul(3).max(low);
                rng.u128(low..=high).min(cap)
            }
            Jitter::Proportional(fraction) => {
                let fraction = if fraction.is_finite() {
                    fraction.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                // Integer spread around the delay: the bound
                // `delay + floor(delay × f)` holds exactly, with no float
                // rounding at the edges.
                let span = ((delay as f64 * fraction) as u128).min(delay);
                (delay - span) + rng.u128(0..=span * 2)
            }
        };
        duration_from_nanos(nanos)
    }
}

/// Converts nanoseconds to a `Duration`, saturating at [`Duration::MAX`].
pub(crate) fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(nanos / NANOS_PER_SEC) {
        // The remainder is below one second, so `Duration::new` cannot carry
        // into (and overflow) the seconds.
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(30);
    const INITIAL: Duration = Duration::from_secs(1);

    fn samples(jitter: Jitter, capped: Duration, previous: Duration) -> Vec<Duration> {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..1000)
            .map(|_| jitter.apply(capped, previous, INITIAL, CAP, &mut rng))
            .collect()
    }

    fn distinct(values: &[Duration]) -> usize {
        let mut v = values.to_vec();
        v.sort();
        v.dedup();
        v.len()
    }

    #[test]
    fn none_is_exact() {
        let s = samples(Jitter::None, CAP, CAP);
        assert!(s.iter().all(|&d| d == CAP));
    }

    #[test]
    fn full_spreads_over_zero_to_delay_at_the_cap() {
        let s = samples(Jitter::Full, CAP, CAP);
        assert!(s.iter().all(|&d| d <= CAP));
        assert!(s.iter().any(|&d| d < CAP / 4));
        assert!(s.iter().any(|&d| d > CAP * 3 / 4));
        assert!(distinct(&s) > 900);
    }

    #[test]
    fn equal_stays_in_upper_half_at_the_cap() {
        let s = samples(Jitter::Equal, CAP, CAP);
        assert!(s.iter().all(|&d| d >= CAP / 2 && d <= CAP));
        assert!(distinct(&s) > 900);
    }

    #[test]
    fn decorrelated_spreads_below_the_cap() {
        let s = samples(Jitter::Decorrelated, CAP, CAP);
        assert!(s.iter().all(|&d| d >= INITIAL && d <= CAP));
        assert!(distinct(&s) > 100);
    }

    #[test]
    fn decorrelated_spreads_even_when_initial_equals_cap() {
        let mut rng = fastrand::Rng::with_seed(3);
        let s: Vec<_> = (0..1000)
            .map(|_| Jitter::Decorrelated.apply(CAP, CAP, CAP, CAP, &mut rng))
            .collect();
        assert!(s.iter().all(|&d| d >= CAP / 2 && d <= CAP));
        assert!(distinct(&s) > 100);
    }

    #[test]
    fn decorrelated_first_range_is_initial_to_three_initial() {
        let s = samples(Jitter::Decorrelated, INITIAL, INITIAL);
        assert!(s.iter().all(|&d| d >= INITIAL && d <= INITIAL * 3));
    }

    #[test]
    fn proportional_spreads_around_the_cap() {
        let s = samples(Jitter::Proportional(0.2), CAP, CAP);
        let low = CAP.mul_f64(0.8);
        let high = CAP.mul_f64(1.2);
        assert!(s.iter().all(|&d| d >= low && d <= high));
        assert!(s.iter().any(|&d| d > CAP), "must be able to exceed the cap");
        assert!(distinct(&s) > 900);
    }

    #[test]
    fn proportional_out_of_range_fraction_does_not_panic() {
        for f in [f64::NAN, f64::INFINITY, -1.0, 5.0] {
            let s = samples(Jitter::Proportional(f), CAP, CAP);
            assert!(s.iter().all(|&d| d <= CAP * 2));
        }
    }

    #[test]
    fn extreme_durations_saturate() {
        let mut rng = fastrand::Rng::with_seed(1);
        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
            Jitter::Proportional(1.0),
        ] {
            let _ = jitter.apply(
                Duration::MAX,
                Duration::MAX,
                Duration::MAX,
                Duration::MAX,
                &mut rng,
            );
            let zero = jitter.apply(
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO,
                &mut rng,
            );
            assert_eq!(zero, Duration::ZERO);
        }
    }

    #[test]
    fn duration_from_nanos_round_trips_and_saturates() {
        let d = Duration::new(12, 345_678_901);
        assert_eq!(duration_from_nanos(d.as_nanos()), d);
        assert_eq!(duration_from_nanos(u128::MAX), Duration::MAX);
        assert_eq!(duration_from_nanos(Duration::MAX.as_nanos()), Duration::MAX);
    }
}
