//! Field scenarios in simulated time: detection bounds asserted exactly,
//! hours of traffic in milliseconds, every run replayable.

use std::time::Duration;
use tether_core::backoff::{BackoffConfig, Jitter};
use tether_core::liveness::{HeartbeatConfig, IdleTimeoutConfig, Policy};
use tether_core::registry::RegistryEvent;
use tether_core::sim::{Fault, SimConfig, SimPair};
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn config() -> SimConfig {
    SimConfig {
        heartbeat: HeartbeatConfig::new(secs(10), secs(5), 2),
        backoff: BackoffConfig::default().with_seed(42),
        server_policy: Policy::IdleTimeout(IdleTimeoutConfig::mqtt(secs(10))),
        latency: Duration::from_millis(25),
        client_data_every: None,
    }
}

fn disconnects(sim: &SimPair) -> Vec<(Duration, u64, DisconnectReason)> {
    sim.client_events()
        .iter()
        .filter_map(|(at, ev)| match ev {
            Lifecycle::Disconnected {
                generation, reason, ..
            } => Some((*at, *generation, *reason)),
            _ => None,
        })
        .collect()
}

fn connects(sim: &SimPair) -> Vec<(Duration, u64)> {
    sim.client_events()
        .iter()
        .filter_map(|(at, ev)| match ev {
            Lifecycle::Connected { generation, .. } => Some((*at, *generation)),
            _ => None,
        })
        .collect()
}

#[test]
fn idle_timeout_black_hole_is_caught_within_the_bound() {
    let mut sim = SimPair::new(config());
    sim.run_for(secs(60));
    assert!(sim.is_connected());
    // The client's pings are answered: its last sign of life from the
    // server is the pong to the ping sent at a multiple of 10 s.
    sim.set_fault(Fault::BlackHole);
    let cut = sim.elapsed();
    assert!(sim.run_until(|s| !s.is_connected(), secs(600)));
    let lost = disconnects(&sim);
    assert_eq!(lost.len(), 1);
    let (at, generation, reason) = lost[0];
    assert_eq!((generation, reason), (1, DisconnectReason::Timeout));
    let bound = sim.config().heartbeat.detection_bound();
    assert!(at - cut <= bound, "detected after {:?}", at - cut);
    // Silence began at the last pong; detection is exactly one bound later.
    let last_pong = at - bound;
    assert!(last_pong <= cut && cut - last_pong <= secs(10) + Duration::from_millis(50));
    // The server, for its part, expires the vanished client at 1.5 x 10 s.
    sim.run_for(secs(30));
    let expired: Vec<_> = sim
        .server_events()
        .iter()
        .filter(|(_, e)| matches!(e, RegistryEvent::Expired { .. }))
        .collect();
    assert_eq!(expired.len(), 1);
    let RegistryEvent::Expired { silent_for, .. } = expired[0].1 else {
        unreachable!()
    };
    assert_eq!(silent_for, secs(15));
}

#[test]
fn keep_alive_holds_for_twenty_bounds() {
    let mut cfg = config();
    cfg.server_policy = Policy::Heartbeat(HeartbeatConfig::new(secs(10), secs(5), 2));
    let mut sim = SimPair::new(cfg);
    let bound = sim.config().heartbeat.detection_bound();
    sim.run_for(bound * 20);
    assert!(sim.is_connected());
    assert_eq!(connects(&sim).len(), 1);
    assert!(disconnects(&sim).is_empty());
    assert!(!sim
        .server_events()
        .iter()
        .any(|(_, e)| matches!(e, RegistryEvent::Expired { .. })));
    assert_eq!(sim.server_connections(), 1);
}

#[test]
fn a_chatty_client_still_pings_a_silent_server() {
    // The client sends data every second but the server never answers:
    // sending proves nothing, so the client must still detect the silence.
    let mut cfg = config();
    cfg.client_data_every = Some(secs(1));
    let mut sim = SimPair::new(cfg);
    sim.run_for(secs(30));
    sim.set_fault(Fault::DropToClient);
    let cut = sim.elapsed();
    assert!(sim.run_until(|s| !s.is_connected(), secs(600)));
    let (at, _, reason) = disconnects(&sim)[0];
    assert_eq!(reason, DisconnectReason::Timeout);
    assert!(at - cut <= sim.config().heartbeat.detection_bound());
}

#[test]
fn restarted_server_is_noticed_by_reset_and_the_client_recovers() {
    let mut sim = SimPair::new(config());
    sim.run_for(secs(30));
    sim.restart_server();
    let restart = sim.elapsed();
    assert!(sim.run_until(|s| !s.is_connected(), secs(600)));
    let (at, _, reason) = disconnects(&sim)[0];
    assert_eq!(reason, DisconnectReason::Reset);
    // The next ping (within one interval) meets the reset: no timeout wait.
    assert!(at - restart <= secs(10) + Duration::from_millis(50));
    assert!(sim.run_until(|s| s.is_connected(), secs(120)));
    assert_eq!(connects(&sim).len(), 2);
    assert_eq!(sim.server_connections(), 1);
}

#[test]
fn server_down_backs_off_with_jitter_and_recovers() {
    let mut cfg = config();
    cfg.backoff = BackoffConfig::default()
        .with_initial(Duration::from_millis(500))
        .with_max_delay(secs(8))
        .with_jitter(Jitter::Full)
        .with_seed(9);
    let mut sim = SimPair::new(cfg);
    sim.run_for(secs(5));
    sim.set_fault(Fault::ServerDown);
    sim.restart_server();
    sim.run_for(secs(120));
    let waits: Vec<Duration> = sim
        .client_events()
        .iter()
        .filter_map(|(_, e)| match e {
            Lifecycle::Waiting { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert!(waits.len() >= 10, "{waits:?}");
    assert!(waits.iter().all(|d| *d <= secs(8)));
    // Full jitter at the cap: delays differ.
    let tail: std::collections::HashSet<_> = waits[5..].iter().collect();
    assert!(tail.len() > 1, "{waits:?}");
    sim.set_fault(Fault::None);
    assert!(sim.run_until(|s| s.is_connected(), secs(30)));
    // Once up, the attempt counter in events restarts only after health.
    let events: Vec<_> = sim.client_events().iter().map(|(_, e)| e.clone()).collect();
    assert!(events.iter().any(|e| matches!(
        e,
        Lifecycle::ConnectFailed {
            reason: DisconnectReason::ConnectRefused,
            ..
        }
    )));
}

#[test]
fn same_seed_same_history() {
    let run = || {
        let mut sim = SimPair::new(config());
        sim.run_for(secs(20));
        sim.set_fault(Fault::ServerDown);
        sim.restart_server();
        sim.run_for(secs(60));
        sim.set_fault(Fault::None);
        sim.run_for(secs(60));
        sim.client_events().to_vec()
    };
    assert_eq!(run(), run());
}

#[test]
fn black_hole_during_connect_times_out_the_attempt() {
    let mut cfg = config();
    cfg.backoff = BackoffConfig::default()
        .with_min_connect_timeout(secs(3))
        .with_seed(5);
    let mut sim = SimPair::new(cfg);
    sim.run_for(secs(1));
    sim.set_fault(Fault::BlackHole);
    sim.run_for(secs(120));
    let timeouts = sim
        .client_events()
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                Lifecycle::ConnectFailed {
                    reason: DisconnectReason::ConnectTimeout,
                    ..
                }
            )
        })
        .count();
    assert!(timeouts >= 2);
}
