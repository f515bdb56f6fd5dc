//! Registry behaviour under simulated time (no sleeping).

use super::slab::ENTRY_BYTES;
use super::*;
use crate::liveness::{HeartbeatConfig, IdleTimeoutConfig};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn heartbeat(interval: u64, timeout: u64, missed: u32) -> Policy {
    Policy::Heartbeat(HeartbeatConfig::new(ms(interval), ms(timeout), missed))
}

fn idle(keepalive: u64) -> Policy {
    Policy::IdleTimeout(IdleTimeoutConfig::mqtt(ms(keepalive)))
}

fn events(reg: &mut Registry) -> Vec<RegistryEvent> {
    std::iter::from_fn(|| reg.poll_event()).collect()
}

/// Jumps from deadline to deadline until `id` expires; returns the time of
/// the expiry and the pings seen on the way.
fn run_until_expired(reg: &mut Registry, id: ConnId, mut now: Instant) -> (Instant, usize) {
    let mut pings = 0;
    for _ in 0..1000 {
        now = reg.poll_timeout().unwrap().max(now);
        reg.handle_timeout(now);
        for e in events(reg) {
            match e {
                RegistryEvent::PingDue { id: p, .. } if p == id => pings += 1,
                RegistryEvent::Expired { id: x, .. } if x == id => return (now, pings),
                _ => {}
            }
        }
    }
    panic!("never expired");
}

#[test]
fn an_entry_fits_in_64_bytes() {
    const { assert!(ENTRY_BYTES <= 64) };
    assert_eq!(ENTRY_BYTES, 56);
}

#[test]
fn a_silent_connection_expires_exactly_at_the_bound() {
    for policy in [heartbeat(1000, 300, 3), heartbeat(100, 1000, 2), idle(1000)] {
        let t0 = Instant::now();
        let mut reg = Registry::new(policy, t0).unwrap();
        let start = t0 + ms(1234);
        let id = reg.insert(start, 42).unwrap();
        let (dead_at, pings) = run_until_expired(&mut reg, id, start);
        assert_eq!(dead_at - start, reg.detection_bound(), "{policy:?}");
        let expected_pings = match policy {
            Policy::Heartbeat(h) => h.max_missed as usize,
            Policy::IdleTimeout(_) => 0,
        };
        assert_eq!(pings, expected_pings);
        assert!(reg.is_empty());
        assert_eq!(reg.poll_timeout(), None);
    }
}

#[test]
fn expired_reports_tag_and_silence() {
    let t0 = Instant::now();
    let mut reg = Registry::new(idle(1000), t0).unwrap();
    let id = reg.insert(t0, 99).unwrap();
    reg.touch(id, t0 + ms(400)).unwrap();
    // Late wakeup: silence is measured to the actual `now`.
    reg.handle_timeout(t0 + ms(2000));
    assert_eq!(
        events(&mut reg),
        [RegistryEvent::Expired {
            id,
            tag: 99,
            silent_for: ms(1600)
        }]
    );
}

#[test]
fn a_touched_connection_never_expires_over_20x_the_bound() {
    for policy in [heartbeat(1000, 300, 1), idle(1000)] {
        let t0 = Instant::now();
        let mut reg = Registry::new(policy, t0).unwrap();
        let id = reg.insert(t0, 1).unwrap();
        let end = t0 + reg.detection_bound() * 20;
        let mut now = t0;
        let (mut wakeups, mut touches) = (0, 0);
        while now < end {
            // Traffic every 100 ms; the registry wakes when it asks to.
            let next_rx = now + ms(100);
            while let Some(t) = reg.poll_timeout().filter(|&t| t < next_rx) {
                reg.handle_timeout(t);
                wakeups += 1;
                assert_eq!(events(&mut reg), []);
            }
            now = next_rx;
            reg.touch(id, now).unwrap();
            touches += 1;
        }
        assert!(reg.contains(id));
        // Lazy re-arming: about one wakeup per interval, not per touch.
        assert!(
            wakeups * 5 < touches,
            "{wakeups} wakeups, {touches} touches"
        );
    }
}

#[test]
fn ping_then_touch_keeps_it_alive() {
    let t0 = Instant::now();
    let mut reg = Registry::new(heartbeat(1000, 500, 1), t0).unwrap();
    let id = reg.insert(t0, 5).unwrap();
    assert_eq!(reg.poll_timeout(), Some(t0 + ms(1000)));
    reg.handle_timeout(t0 + ms(1000));
    assert_eq!(events(&mut reg), [RegistryEvent::PingDue { id, tag: 5 }]);
    assert_eq!(reg.poll_timeout(), Some(t0 + ms(1500)));
    reg.touch(id, t0 + ms(1200)).unwrap(); // the pong
    reg.handle_timeout(t0 + ms(1500));
    assert_eq!(events(&mut reg), []);
    assert!(reg.contains(id));
    assert_eq!(reg.poll_timeout(), Some(t0 + ms(2200)));
    let (dead_at, pings) = run_until_expired(&mut reg, id, t0 + ms(1500));
    assert_eq!(pings, 1);
    assert_eq!(dead_at, t0 + ms(1200) + reg.detection_bound());
}

#[test]
fn an_answer_can_bring_the_deadline_forward() {
    // timeout > interval: answering the ping re-bases on the short interval,
    // so the timer must move earlier or detection would be late.
    let t0 = Instant::now();
    let mut reg = Registry::new(heartbeat(100, 1000, 1), t0).unwrap();
    let id = reg.insert(t0, 0).unwrap();
    reg.handle_timeout(t0 + ms(100));
    assert_eq!(events(&mut reg), [RegistryEvent::PingDue { id, tag: 0 }]);
    assert_eq!(reg.poll_timeout(), Some(t0 + ms(1100)));
    reg.touch(id, t0 + ms(150)).unwrap();
    assert_eq!(reg.poll_timeout(), Some(t0 + ms(250)));
    let (dead_at, _) = run_until_expired(&mut reg, id, t0 + ms(150));
    assert_eq!(dead_at, t0 + ms(150) + reg.detection_bound());
}

#[test]
fn remove_is_generation_checked() {
    let t0 = Instant::now();
    let mut reg = Registry::new(idle(1000), t0).unwrap();
    let a = reg.insert(t0, 10).unwrap();
    let b = reg.insert(t0, 11).unwrap();
    assert_eq!(reg.tag(a), Ok(10));
    assert_eq!(reg.remove(a), Ok(10));
    assert_eq!(reg.remove(a), Err(HandleError::Stale));
    assert_eq!(reg.touch(a, t0), Err(HandleError::Stale));
    assert_eq!(reg.tag(a), Err(HandleError::Stale));
    assert!(!reg.contains(a));
    // The double remove did not hurt the neighbour.
    assert_eq!(reg.tag(b), Ok(11));
    assert_eq!(reg.len(), 1);
}

#[test]
fn never_issued_ids_are_invalid() {
    let t0 = Instant::now();
    let mut reg = Registry::new(idle(1000), t0).unwrap();
    let a = reg.insert(t0, 1).unwrap();
    assert_ne!(a.to_u64(), 0);
    assert_eq!(ConnId::from_u64(a.to_u64()), a);
    for raw in [0, 1, a.to_u64() + 1, a.to_u64() + (2 << 32), u64::MAX] {
        assert_eq!(
            reg.remove(ConnId::from_u64(raw)),
            Err(HandleError::Invalid),
            "{raw:#x}"
        );
    }
    // An even generation on a vacant slot is not a live connection.
    reg.remove(a).unwrap();
    let vacant = ConnId::from_u64(a.to_u64() + (1 << 32));
    assert_eq!(reg.touch(vacant, t0), Err(HandleError::Invalid));
}

#[test]
fn remove_after_expiry_is_stale() {
    let t0 = Instant::now();
    let mut reg = Registry::new(idle(1000), t0).unwrap();
    let id = reg.insert(t0, 3).unwrap();
    reg.handle_timeout(t0 + ms(1500));
    // Stale even before the event is polled: exactly one ending.
    assert_eq!(reg.remove(id), Err(HandleError::Stale));
    assert!(
        matches!(events(&mut reg)[..], [RegistryEvent::Expired { id: x, tag: 3, .. }] if x == id)
    );
    assert_eq!(reg.remove(id), Err(HandleError::Stale));
}

#[test]
fn slots_are_reused_with_a_new_generation() {
    let t0 = Instant::now();
    let mut reg = Registry::new(idle(1000), t0).unwrap();
    let a = reg.insert(t0, 1).unwrap();
    reg.remove(a).unwrap();
    let b = reg.insert(t0, 2).unwrap();
    assert_eq!(b.index(), a.index());
    assert_ne!(b.generation(), a.generation());
    assert_eq!(reg.remove(a), Err(HandleError::Stale));
    assert_eq!(reg.tag(b), Ok(2));
    // Expiry frees the slot too.
    reg.handle_timeout(t0 + ms(1500));
    let c = reg.insert(t0 + ms(1500), 3).unwrap();
    assert_eq!(c.index(), a.index());
    assert!(c.generation() > b.generation());
    assert_eq!(reg.tag(b), Err(HandleError::Stale));
}

#[test]
fn freed_slots_are_reused_oldest_first() {
    let t0 = Instant::now();
    let mut reg = Registry::new(idle(1000), t0).unwrap();
    let ids: Vec<_> = (0..3).map(|t| reg.insert(t0, t).unwrap()).collect();
    reg.remove(ids[2]).unwrap();
    reg.remove(ids[0]).unwrap();
    assert_eq!(reg.insert(t0, 9).unwrap().index(), ids[2].index());
    assert_eq!(reg.insert(t0, 9).unwrap().index(), ids[0].index());
    assert_eq!(reg.insert(t0, 9).unwrap().index(), 3);
}

#[test]
fn a_ping_for_a_removed_connection_is_dropped() {
    let t0 = Instant::now();
    let mut reg = Registry::new(heartbeat(100, 100, 1), t0).unwrap();
    let a = reg.insert(t0, 1).unwrap();
    let b = reg.insert(t0, 2).unwrap();
    reg.handle_timeout(t0 + ms(100));
    assert!(reg.poll_timeout().unwrap() <= t0 + ms(100));
    reg.remove(a).unwrap();
    assert_eq!(events(&mut reg), [RegistryEvent::PingDue { id: b, tag: 2 }]);
}

#[test]
fn a_long_suspend_needs_one_call() {
    let t0 = Instant::now();
    let mut reg = Registry::with_capacity(idle(10_000), t0, 100_000).unwrap();
    let ids: Vec<_> = (0..100_000u64)
        .map(|i| reg.insert(t0 + ms(i % 5000), i).unwrap())
        .collect();
    // 60 days later: per-millisecond stepping would take billions of steps.
    let resumed = t0 + Duration::from_secs(60 * 86_400);
    reg.handle_timeout(resumed);
    let ev = events(&mut reg);
    assert_eq!(ev.len(), ids.len());
    assert!(ev
        .iter()
        .all(|e| matches!(e, RegistryEvent::Expired { .. })));
    assert!(reg.is_empty());

    // Heartbeat: everything due gets one ping now, then dies a timeout later.
    let mut reg = Registry::new(heartbeat(1000, 500, 3), t0).unwrap();
    for i in 0..1000 {
        reg.insert(t0 + ms(i), i).unwrap();
    }
    reg.handle_timeout(resumed);
    assert_eq!(events(&mut reg).len(), 1000);
    assert_eq!(reg.poll_timeout(), Some(resumed + ms(500)));
    reg.handle_timeout(resumed + ms(499));
    assert_eq!(events(&mut reg).len(), 0);
    reg.handle_timeout(resumed + ms(1500));
    assert!(events(&mut reg)
        .iter()
        .all(|e| matches!(e, RegistryEvent::PingDue { .. })));
}

#[test]
fn deadlines_past_49_days_and_huge_tick_boundaries() {
    let t0 = Instant::now();
    let days = |d: u64| Duration::from_secs(d * 86_400);
    let policy = Policy::IdleTimeout(IdleTimeoutConfig {
        keepalive: days(7),
        factor: 7.0,
    });
    let mut reg = Registry::new(policy, t0).unwrap();
    // Cross the 2^36 ms (~795 days) and 2^42 ms boundaries of the wheel.
    for start in [ms(0), ms((1 << 36) - 3), ms((1 << 42) - 1)] {
        let now = t0 + start;
        reg.handle_timeout(now);
        let id = reg.insert(now, 0).unwrap();
        assert_eq!(reg.poll_timeout(), Some(now + days(49)));
        reg.handle_timeout(now + days(49) - ms(1));
        assert!(reg.contains(id));
        reg.handle_timeout(now + days(49));
        assert!(!reg.contains(id));
        assert_eq!(events(&mut reg).len(), 1);
    }
}

#[test]
fn time_going_backwards_is_harmless() {
    let t0 = Instant::now();
    let mut reg = Registry::new(idle(1000), t0 + ms(10_000)).unwrap();
    let a = reg.insert(t0 + ms(20_000), 1).unwrap();
    reg.handle_timeout(t0 + ms(20_500));
    // Before the origin, and before the last handle_timeout.
    reg.touch(a, t0).unwrap();
    reg.handle_timeout(t0);
    let b = reg.insert(t0 + ms(15_000), 2).unwrap();
    assert!(reg.poll_timeout().unwrap() <= t0 + ms(20_500));
    reg.handle_timeout(t0 + ms(20_500));
    assert!(matches!(events(&mut reg)[..], [RegistryEvent::Expired { id, .. }] if id == b));
    assert!(reg.contains(a));
}

#[test]
fn traffic_days_ahead_of_the_last_timeout_is_recorded_exactly() {
    for policy in [heartbeat(1000, 300, 2), idle(1000)] {
        let t0 = Instant::now();
        let mut reg = Registry::new(policy, t0).unwrap();
        let id = reg.insert(t0, 1).unwrap();
        // Busy with traffic for 40 days (over 2^31 ms) without a single
        // handle_timeout, then a last byte.
        let last = t0 + Duration::from_secs(40 * 86_400) + ms(7);
        reg.touch(id, t0 + ms(500)).unwrap();
        reg.touch(id, last).unwrap();
        let (dead_at, _) = run_until_expired(&mut reg, id, last);
        assert_eq!(dead_at - last, reg.detection_bound(), "{policy:?}");
    }
}

#[test]
fn steady_traffic_over_months_keeps_exact_time() {
    // Past 2^31 ms (~25 days) of ticks and several wheel levels.
    let t0 = Instant::now();
    let mut reg = Registry::new(heartbeat(3_600_000, 60_000, 1), t0).unwrap();
    let id = reg.insert(t0, 1).unwrap();
    let mut now = t0;
    for _ in 0..24 * 90 {
        now += ms(3_599_999);
        reg.handle_timeout(now);
        assert_eq!(events(&mut reg), []);
        reg.touch(id, now).unwrap();
    }
    let (dead_at, pings) = run_until_expired(&mut reg, id, now);
    assert_eq!((dead_at - now, pings), (reg.detection_bound(), 1));
}

#[test]
fn long_policies_record_traffic_exactly() {
    // Waits beyond the hot entry's reach take the slow path every time.
    let days = |d: u64| Duration::from_secs(d * 86_400);
    let t0 = Instant::now();
    let policy = Policy::Heartbeat(HeartbeatConfig::new(days(5), days(2), 1));
    let mut reg = Registry::new(policy, t0).unwrap();
    let id = reg.insert(t0, 1).unwrap();
    reg.touch(id, t0 + days(4)).unwrap();
    reg.handle_timeout(t0 + days(5));
    assert_eq!(events(&mut reg), []);
    assert_eq!(reg.poll_timeout(), Some(t0 + days(9)));
    let (dead_at, _) = run_until_expired(&mut reg, id, t0 + days(4));
    assert_eq!(dead_at, t0 + days(4) + reg.detection_bound());
}

#[test]
fn spurious_timeouts_do_nothing() {
    let t0 = Instant::now();
    let mut reg = Registry::new(heartbeat(1000, 500, 1), t0).unwrap();
    let id = reg.insert(t0, 1).unwrap();
    for i in 0..1000 {
        reg.handle_timeout(t0 + ms(i));
        reg.handle_timeout(t0 + ms(i));
    }
    assert_eq!(events(&mut reg), []);
    assert!(reg.contains(id));
    assert_eq!(reg.poll_timeout(), Some(t0 + ms(1000)));
}

#[test]
fn the_size_limit_is_enforced() {
    let t0 = Instant::now();
    let mut reg = Registry::new(idle(1000), t0).unwrap();
    reg.set_max_len(2);
    let a = reg.insert(t0, 1).unwrap();
    reg.insert(t0, 2).unwrap();
    assert_eq!(reg.insert(t0, 3), Err(RegistryFull { max_len: 2 }));
    reg.remove(a).unwrap();
    assert!(reg.insert(t0, 3).is_ok());
}

#[test]
fn invalid_policies_are_rejected() {
    assert!(Registry::new(heartbeat(0, 1, 1), Instant::now()).is_err());
}

#[test]
fn memory_is_about_56_bytes_per_connection() {
    let t0 = Instant::now();
    let mut reg = Registry::with_capacity(idle(1000), t0, 10_000).unwrap();
    for i in 0..10_000 {
        reg.insert(t0, i).unwrap();
    }
    let per_conn = reg.memory_bytes() as f64 / 10_000.0;
    assert!((56.0..58.0).contains(&per_conn), "{per_conn}");
}
