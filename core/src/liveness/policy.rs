//! The liveness rule in compact form: a few integers per peer and pure
//! functions over them, so that one rule serves both a single monitor and a
//! registry holding millions of peers.

use super::ticks::ms_ceil;
use crate::{limits, ConfigError};
use std::time::Duration;

/// Application heartbeat: ping after `interval` of silence, expect any
/// traffic within `timeout`, give up after `max_missed` misses in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// Silence after which a ping is sent. Must be nonzero.
    pub interval: Duration,
    /// How long to wait for any traffic after a ping. Must be nonzero.
    pub timeout: Duration,
    /// Consecutive unanswered pings that make the peer dead (at least 1).
    pub max_missed: u32,
}

impl HeartbeatConfig {
    /// A heartbeat with the given interval, reply timeout and miss limit.
    pub fn new(interval: Duration, timeout: Duration, max_missed: u32) -> Self {
        Self {
            interval,
            timeout,
            max_missed,
        }
    }

    /// Worst case from the last received byte to the dead verdict:
    /// `interval + max_missed x timeout`, each in whole milliseconds
    /// rounded up, as the rule counts them.
    pub fn detection_bound(&self) -> Duration {
        let ms = ms_ceil(self.interval)
            .saturating_add(ms_ceil(self.timeout).saturating_mul(u64::from(self.max_missed)));
        Duration::from_millis(ms)
    }

    /// Checks the values; see the field docs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        limits::positive_duration("heartbeat.interval", self.interval)?;
        limits::positive_duration("heartbeat.timeout", self.timeout)?;
        if self.max_missed == 0 {
            return Err(ConfigError::new(
                "heartbeat.max_missed",
                "must be at least 1",
            ));
        }
        if self.max_missed > 255 {
            return Err(ConfigError::new(
                "heartbeat.max_missed",
                "must be at most 255",
            ));
        }
        if ms_ceil(self.detection_bound()) > u64::from(u32::MAX) {
            return Err(ConfigError::new(
                "heartbeat",
                "interval + max_missed x timeout must be under 49 days",
            ));
        }
        Ok(())
    }
}

impl Default for HeartbeatConfig {
    /// 15 s interval, 10 s reply timeout, 2 misses: dead within 35 s of
    /// silence, well inside common NAT binding lifetimes.
    fn default() -> Self {
        Self::new(Duration::from_secs(15), Duration::from_secs(10), 2)
    }
}

/// Server-side idle rule: drop a peer that sent nothing for
/// `factor x keepalive` (MQTT: 1.5 x the client's keepalive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleTimeoutConfig {
    /// The keepalive period the peer promised to respect.
    pub keepalive: Duration,
    /// Grace multiplier, at least 1.0.
    pub factor: f64,
}

impl IdleTimeoutConfig {
    /// Idle rule with MQTT's 1.5 grace factor.
    pub fn mqtt(keepalive: Duration) -> Self {
        Self {
            keepalive,
            factor: 1.5,
        }
    }

    /// `factor x keepalive`.
    pub fn timeout(&self) -> Duration {
        self.keepalive.mul_f64(self.factor.clamp(1.0, 1e6))
    }

    /// Checks the values; see the field docs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        limits::positive_duration("idle.keepalive", self.keepalive)?;
        limits::factor("idle.factor", self.factor)?;
        if self.keepalive.as_secs_f64() * self.factor > f64::from(u32::MAX) / 1000.0 {
            return Err(ConfigError::new("idle", "timeout must be under 49 days"));
        }
        Ok(())
    }
}

/// A liveness policy: what to do about silence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// Ping on silence and count missed replies.
    Heartbeat(HeartbeatConfig),
    /// Never ping; drop the peer after a fixed silence.
    IdleTimeout(IdleTimeoutConfig),
}

/// What the rule decided at a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do yet; ask [`Policy::deadline`] again.
    Wait,
    /// Send a ping now.
    SendPing,
    /// The peer is dead.
    Dead,
}

/// The per-peer state of the rule, in millisecond ticks. 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Watch {
    /// Tick of the last received traffic.
    pub last_rx: u64,
    /// Tick of the outstanding ping plus one; 0 when none is outstanding.
    pinged_at_plus1: u64,
    /// Consecutive unanswered pings.
    pub misses: u8,
}

impl Watch {
    /// A fresh peer that was last heard from at `now`.
    pub fn new(now: u64) -> Self {
        Self {
            last_rx: now,
            pinged_at_plus1: 0,
            misses: 0,
        }
    }

    /// Records traffic at `now`. Cheap: the rest is settled lazily at the
    /// next deadline.
    #[inline]
    pub fn touch(&mut self, now: u64) {
        if now > self.last_rx {
            self.last_rx = now;
        }
    }

    /// Tick of the outstanding ping, if any.
    pub fn pinged_at(&self) -> Option<u64> {
        self.pinged_at_plus1.checked_sub(1)
    }

    /// Rebuilds a watch from its parts ([`Watch::last_rx`],
    /// [`Watch::pinged_at`], [`Watch::misses`]), for storage that keeps them
    /// apart: the registry records traffic in a dense array of its own so
    /// that it touches as little memory as possible.
    pub fn from_parts(last_rx: u64, pinged_at: Option<u64>, misses: u8) -> Self {
        Self {
            last_rx,
            pinged_at_plus1: pinged_at.map_or(0, |p| p.saturating_add(1)),
            misses,
        }
    }

    /// Clears an outstanding ping that has since been answered by traffic.
    /// Every rule evaluation starts with it; a stored watch may be settled
    /// early without changing any verdict.
    pub(crate) fn settle(&mut self) {
        if let Some(p) = self.pinged_at() {
            if self.last_rx >= p {
                self.pinged_at_plus1 = 0;
                self.misses = 0;
            }
        }
    }

    fn set_pinged(&mut self, now: u64) {
        self.pinged_at_plus1 = now.saturating_add(1);
    }
}

impl Policy {
    /// Checks the policy's values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Heartbeat(h) => h.validate(),
            Self::IdleTimeout(i) => i.validate(),
        }
    }

    /// Worst case from the last received byte to the dead verdict (in
    /// whole milliseconds rounded up, as the rule counts).
    pub fn detection_bound(&self) -> Duration {
        match self {
            Self::Heartbeat(h) => h.detection_bound(),
            Self::IdleTimeout(i) => Duration::from_millis(ms_ceil(i.timeout())),
        }
    }

    /// The tick at which [`Policy::on_deadline`] must next run for `w`.
    pub fn deadline(&self, w: &Watch) -> u64 {
        let mut w = *w;
        w.settle();
        match self {
            Self::Heartbeat(h) => match w.pinged_at() {
                None => w.last_rx.saturating_add(ms_ceil(h.interval)),
                Some(p) => p.saturating_add(ms_ceil(h.timeout)),
            },
            Self::IdleTimeout(i) => w.last_rx.saturating_add(ms_ceil(i.timeout())),
        }
    }

    /// The longest wait, in ticks, that [`Policy::deadline`] puts after the
    /// traffic or the ping it counts from.
    pub(crate) fn longest_wait(&self) -> u64 {
        match self {
            Self::Heartbeat(h) => ms_ceil(h.interval).max(ms_ceil(h.timeout)),
            Self::IdleTimeout(i) => ms_ceil(i.timeout()),
        }
    }

    /// Runs the rule at tick `now` and updates `w`.
    pub fn on_deadline(&self, w: &mut Watch, now: u64) -> Verdict {
        w.settle();
        if now < self.deadline(w) {
            return Verdict::Wait;
        }
        match self {
            Self::Heartbeat(h) => {
                if w.pinged_at().is_some() {
                    w.misses = w.misses.saturating_add(1);
                    if u32::from(w.misses) >= h.max_missed {
                        return Verdict::Dead;
                    }
                }
                w.set_pinged(now);
                Verdict::SendPing
            }
            Self::IdleTimeout(_) => Verdict::Dead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(interval: u64, timeout: u64, missed: u32) -> Policy {
        Policy::Heartbeat(HeartbeatConfig::new(
            Duration::from_millis(interval),
            Duration::from_millis(timeout),
            missed,
        ))
    }

    #[test]
    fn silent_peer_dies_exactly_at_the_bound() {
        let p = hb(100, 30, 3);
        let mut w = Watch::new(0);
        let mut verdicts = vec![];
        loop {
            let t = p.deadline(&w);
            let v = p.on_deadline(&mut w, t);
            verdicts.push((t, v));
            if v == Verdict::Dead {
                break;
            }
        }
        assert_eq!(
            verdicts,
            vec![
                (100, Verdict::SendPing),
                (130, Verdict::SendPing),
                (160, Verdict::SendPing),
                (190, Verdict::Dead)
            ]
        );
        assert_eq!(p.detection_bound(), Duration::from_millis(190));
    }

    #[test]
    fn the_bound_covers_sub_millisecond_settings() {
        // The rule counts whole milliseconds, rounded up; the bound it
        // reports must not be shorter than the wait it applies.
        let us = Duration::from_micros;
        let idle = Policy::IdleTimeout(IdleTimeoutConfig::mqtt(Duration::from_millis(17)));
        let mut w = Watch::new(0);
        let dead_at = idle.deadline(&w);
        assert_eq!(idle.on_deadline(&mut w, dead_at), Verdict::Dead);
        assert_eq!(idle.detection_bound(), Duration::from_millis(dead_at));
        let hb = Policy::Heartbeat(HeartbeatConfig::new(us(10_500), us(2_200), 2));
        let mut w = Watch::new(0);
        let dead_at = loop {
            let t = hb.deadline(&w);
            if hb.on_deadline(&mut w, t) == Verdict::Dead {
                break t;
            }
        };
        assert_eq!(dead_at, 11 + 3 + 3);
        assert_eq!(hb.detection_bound(), Duration::from_millis(dead_at));
    }

    #[test]
    fn any_traffic_answers_a_ping() {
        let p = hb(100, 30, 1);
        let mut w = Watch::new(0);
        assert_eq!(p.on_deadline(&mut w, 100), Verdict::SendPing);
        w.touch(110);
        assert_eq!(p.deadline(&w), 210);
        assert_eq!(p.on_deadline(&mut w, 130), Verdict::Wait);
        assert_eq!(p.on_deadline(&mut w, 210), Verdict::SendPing);
    }

    #[test]
    fn early_calls_wait() {
        let p = hb(100, 30, 1);
        let mut w = Watch::new(50);
        assert_eq!(p.on_deadline(&mut w, 149), Verdict::Wait);
        assert_eq!(p.on_deadline(&mut w, 150), Verdict::SendPing);
    }

    #[test]
    fn idle_timeout_uses_the_factor() {
        let p = Policy::IdleTimeout(IdleTimeoutConfig::mqtt(Duration::from_secs(10)));
        let mut w = Watch::new(0);
        assert_eq!(p.deadline(&w), 15_000);
        w.touch(5_000);
        assert_eq!(p.on_deadline(&mut w, 15_000), Verdict::Wait);
        assert_eq!(p.on_deadline(&mut w, 20_000), Verdict::Dead);
    }

    #[test]
    fn bad_configs_are_rejected() {
        assert!(hb(0, 1, 1).validate().is_err());
        assert!(hb(1, 0, 1).validate().is_err());
        assert!(hb(1, 1, 0).validate().is_err());
        let bad = IdleTimeoutConfig {
            keepalive: Duration::from_secs(1),
            factor: f64::NAN,
        };
        assert!(bad.validate().is_err());
    }
}
