//! A single connection's liveness monitor: the shared rule plus RTT
//! measurement, behind the [`Liveness`] trait.

use super::policy::{Policy, Verdict, Watch};
use super::ticks::Ticks;
use super::{HeartbeatConfig, IdleTimeoutConfig, Liveness, LivenessAction};
use crate::{ConfigError, DisconnectReason};
use std::time::{Duration, Instant};

/// Watches one peer with a [`Policy`].
#[derive(Debug, Clone)]
pub struct Monitor {
    policy: Policy,
    ticks: Ticks,
    watch: Watch,
    pending: Option<LivenessAction>,
    dead: bool,
    last_ping_payload: Option<u64>,
    last_rtt: Option<Duration>,
}

impl Monitor {
    /// A monitor applying `policy` to a peer connected at `now`.
    pub fn new(policy: Policy, now: Instant) -> Result<Self, ConfigError> {
        policy.validate()?;
        let ticks = Ticks::new(now);
        Ok(Self {
            policy,
            ticks,
            watch: Watch::new(0),
            pending: None,
            dead: false,
            last_ping_payload: None,
            last_rtt: None,
        })
    }

    /// An application heartbeat monitor.
    pub fn heartbeat(cfg: HeartbeatConfig, now: Instant) -> Result<Self, ConfigError> {
        Self::new(Policy::Heartbeat(cfg), now)
    }

    /// A server-side idle monitor.
    pub fn idle(cfg: IdleTimeoutConfig, now: Instant) -> Result<Self, ConfigError> {
        Self::new(Policy::IdleTimeout(cfg), now)
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The last measured round-trip time, from a pong echoing our ping.
    pub fn last_rtt(&self) -> Option<Duration> {
        self.last_rtt
    }

    /// Whether the monitor has declared the peer dead.
    pub fn is_dead(&self) -> bool {
        self.dead
    }
}

impl Liveness for Monitor {
    fn handle_received(&mut self, now: Instant) {
        if !self.dead {
            self.watch.touch(self.ticks.from_instant(now));
        }
    }

    fn handle_pong(&mut self, now: Instant, payload: u64) -> Option<Duration> {
        self.handle_received(now);
        if self.last_ping_payload != Some(payload) {
            return None;
        }
        self.last_ping_payload = None;
        // The payload is the ping's send time in microseconds since the origin.
        let sent = self.ticks.origin() + Duration::from_micros(payload);
        let rtt = now.saturating_duration_since(sent);
        self.last_rtt = Some(rtt);
        Some(rtt)
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.dead || self.pending.is_some() {
            return;
        }
        let tick = self.ticks.from_instant(now);
        match self.policy.on_deadline(&mut self.watch, tick) {
            Verdict::Wait => {}
            Verdict::SendPing => {
                let micros = now
                    .saturating_duration_since(self.ticks.origin())
                    .as_micros();
                let payload = u64::try_from(micros).unwrap_or(u64::MAX);
                self.last_ping_payload = Some(payload);
                self.pending = Some(LivenessAction::SendPing { payload });
            }
            Verdict::Dead => {
                self.dead = true;
                let last = self.ticks.to_instant(self.watch.last_rx);
                self.pending = Some(LivenessAction::Dead {
                    reason: DisconnectReason::Timeout,
                    silent_for: now.saturating_duration_since(last),
                });
            }
        }
    }

    fn poll_action(&mut self) -> Option<LivenessAction> {
        self.pending.take()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.dead {
            return None;
        }
        if self.pending.is_some() {
            // An action is waiting to be polled: wake at once.
            return Some(self.ticks.origin());
        }
        Some(self.ticks.to_instant(self.policy.deadline(&self.watch)))
    }

    fn detection_bound(&self) -> Duration {
        self.policy.detection_bound()
    }

    fn reset(&mut self, now: Instant) {
        self.ticks = Ticks::new(now);
        self.watch = Watch::new(0);
        self.pending = None;
        self.dead = false;
        self.last_ping_payload = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_writer_into_a_black_hole_still_detects_it() {
        // Sending does not count: only received traffic proves life.
        let t0 = Instant::now();
        let mut m = Monitor::heartbeat(HeartbeatConfig::new(ms(1000), ms(500), 2), t0).unwrap();
        let mut now = t0;
        let mut pings = 0;
        loop {
            now = m.poll_timeout().unwrap().max(now);
            m.handle_timeout(now);
            match m.poll_action() {
                Some(LivenessAction::SendPing { .. }) => pings += 1,
                Some(LivenessAction::Dead { silent_for, .. }) => {
                    assert_eq!(silent_for, ms(2000));
                    break;
                }
                None => {}
            }
        }
        assert_eq!(pings, 2);
        assert_eq!(now - t0, m.detection_bound());
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn a_chatty_peer_is_never_pinged_and_never_dies() {
        let t0 = Instant::now();
        let mut m = Monitor::heartbeat(HeartbeatConfig::new(ms(1000), ms(500), 1), t0).unwrap();
        for i in 1..=200 {
            let now = t0 + ms(i * 900);
            m.handle_received(now);
            m.handle_timeout(now);
            assert_eq!(m.poll_action(), None);
        }
    }

    #[test]
    fn pong_measures_rtt() {
        let t0 = Instant::now();
        let mut m = Monitor::heartbeat(HeartbeatConfig::new(ms(1000), ms(500), 1), t0).unwrap();
        m.handle_timeout(t0 + ms(1000));
        let Some(LivenessAction::SendPing { payload }) = m.poll_action() else {
            panic!("expected a ping");
        };
        assert_eq!(m.handle_pong(t0 + ms(1042), payload), Some(ms(42)));
        assert_eq!(m.handle_pong(t0 + ms(1043), payload), None);
        assert_eq!(m.poll_timeout(), Some(t0 + ms(2043)));
    }

    #[test]
    fn reset_revives_a_dead_monitor() {
        let t0 = Instant::now();
        let cfg = IdleTimeoutConfig::mqtt(ms(1000));
        let mut m = Monitor::idle(cfg, t0).unwrap();
        m.handle_timeout(t0 + ms(1500));
        assert!(matches!(m.poll_action(), Some(LivenessAction::Dead { .. })));
        assert!(m.is_dead());
        m.reset(t0 + ms(5000));
        assert_eq!(m.poll_timeout(), Some(t0 + ms(6500)));
    }
}
