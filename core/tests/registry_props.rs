//! The registry against a reference model: a map of `Watch`es, every one
//! evaluated with the same `Policy` at every `handle_timeout`. Same events at
//! the same ticks, and every connection ends exactly once.

use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tether_core::liveness::{HeartbeatConfig, IdleTimeoutConfig, Policy, Ticks, Verdict, Watch};
use tether_core::registry::{ConnId, Registry, RegistryEvent};
use tether_core::HandleError;

#[derive(Debug, Clone)]
enum Op {
    /// Insert at `now - back` ms.
    Insert {
        tag: u64,
        back: u64,
    },
    /// Touch an issued id (live or not) at `now - back` ms.
    Touch {
        pick: usize,
        back: u64,
    },
    Remove {
        pick: usize,
    },
    /// Advance the clock and call `handle_timeout`.
    Advance {
        ms: u64,
    },
    /// Jump to `poll_timeout` and call `handle_timeout` there.
    WakeUp,
    /// Advance the clock without calling `handle_timeout` (a server busy
    /// with traffic, or one that ignores `poll_timeout`).
    Skip {
        ms: u64,
    },
    /// Touch an issued id at `now + ahead` ms.
    TouchAhead {
        pick: usize,
        ahead: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let back = prop_oneof![4 => Just(0u64), 1 => 0u64..500];
    prop_oneof![
        3 => (any::<u64>(), back.clone()).prop_map(|(tag, back)| Op::Insert { tag, back }),
        6 => (any::<usize>(), back).prop_map(|(pick, back)| Op::Touch { pick, back }),
        2 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
        // Up to ~230 days: suspended laptops, wheel levels far up.
        3 => prop_oneof![8 => 0u64..10, 8 => 0u64..3000, 3 => 0u64..100_000, 1 => 0u64..20_000_000_000]
            .prop_map(|ms| Op::Advance { ms }),
        4 => Just(Op::WakeUp),
    ]
}

/// `op()` plus clocks far apart: touches days ahead of or behind the last
/// `handle_timeout`, and time passing without one.
fn far_op() -> impl Strategy<Value = Op> {
    let far = prop_oneof![0u64..1000, 0u64..20_000_000_000];
    prop_oneof![
        10 => op(),
        1 => far.clone().prop_map(|ms| Op::Skip { ms }),
        1 => (any::<usize>(), far.clone()).prop_map(|(pick, ahead)| Op::TouchAhead { pick, ahead }),
        1 => (any::<usize>(), far).prop_map(|(pick, back)| Op::Touch { pick, back }),
    ]
}

/// Waits from milliseconds to about 7 days (the most validation allows for
/// one duration), on both sides of the registry's ~3-day fast-path limit.
fn any_policy() -> impl Strategy<Value = Policy> {
    let wait = prop_oneof![1u64..2000, 1u64..600_000_000];
    prop_oneof![
        1 => policy(),
        1 => (wait.clone(), wait.clone(), 1u32..4).prop_map(|(i, t, m)| Policy::Heartbeat(
            HeartbeatConfig::new(Duration::from_millis(i), Duration::from_millis(t), m)
        )),
        1 => (wait, 1.0f64..3.0).prop_map(|(k, factor)| Policy::IdleTimeout(IdleTimeoutConfig {
            keepalive: Duration::from_millis(k),
            factor,
        })),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        (1u64..2000, 1u64..2000, 1u32..4).prop_map(|(i, t, m)| Policy::Heartbeat(
            HeartbeatConfig::new(Duration::from_millis(i), Duration::from_millis(t), m)
        )),
        (1u64..2000, 1.0f64..3.0).prop_map(|(k, factor)| Policy::IdleTimeout(IdleTimeoutConfig {
            keepalive: Duration::from_millis(k),
            factor,
        })),
    ]
}

/// The obvious implementation: look at every connection every time.
struct Model {
    policy: Policy,
    ticks: Ticks,
    live: BTreeMap<u64, (ConnId, Watch, u64)>,
}

impl Model {
    fn handle_timeout(&mut self, now: Instant) -> Vec<RegistryEvent> {
        let tick = self.ticks.from_instant(now);
        let mut out = vec![];
        let mut dead = vec![];
        for (&key, (id, w, tag)) in self.live.iter_mut() {
            match self.policy.on_deadline(w, tick) {
                Verdict::Wait => {}
                Verdict::SendPing => out.push(RegistryEvent::PingDue { id: *id, tag: *tag }),
                Verdict::Dead => {
                    let last = self.ticks.to_instant(w.last_rx);
                    out.push(RegistryEvent::Expired {
                        id: *id,
                        tag: *tag,
                        silent_for: now.saturating_duration_since(last),
                    });
                    dead.push(key);
                }
            }
        }
        for key in dead {
            self.live.remove(&key);
        }
        out
    }

    fn next_deadline(&self) -> Option<Instant> {
        let t = self
            .live
            .values()
            .map(|(_, w, _)| self.policy.deadline(w))
            .min()?;
        Some(self.ticks.to_instant(t))
    }
}

fn sorted(mut v: Vec<RegistryEvent>) -> Vec<RegistryEvent> {
    v.sort_by_key(|e| e.id().to_u64());
    v
}

struct Harness {
    reg: Registry,
    model: Model,
    now: Instant,
    issued: Vec<ConnId>,
    ends: HashMap<ConnId, u32>,
}

impl Harness {
    fn tick(&mut self, now: Instant) -> Result<(), TestCaseError> {
        if let Some(due) = self.model.next_deadline() {
            // A deadline already past (an insert dated back) is due now.
            let due = due.max(self.now);
            let next = self.reg.poll_timeout();
            prop_assert!(
                next.is_some_and(|t| t <= due),
                "poll_timeout {next:?} after {due:?}"
            );
        }
        self.now = now;
        self.reg.handle_timeout(now);
        let got = sorted(std::iter::from_fn(|| self.reg.poll_event()).collect());
        let want = sorted(self.model.handle_timeout(now));
        prop_assert_eq!(&got, &want);
        for e in got {
            if let RegistryEvent::Expired { id, .. } = e {
                *self.ends.entry(id).or_default() += 1;
            }
        }
        prop_assert_eq!(self.reg.len(), self.model.live.len());
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        let now = self.now;
        let origin = self.model.ticks.origin();
        let back = |b: u64| now.checked_sub(Duration::from_millis(b)).unwrap_or(origin);
        match op {
            Op::Insert { tag, back: b } => {
                let at = back(b);
                let id = self.reg.insert(at, tag).unwrap();
                prop_assert_ne!(id.to_u64(), 0);
                prop_assert!(!self.ends.contains_key(&id), "id {id} issued twice");
                self.ends.insert(id, 0);
                self.issued.push(id);
                let w = Watch::new(self.model.ticks.from_instant(at));
                self.model.live.insert(id.to_u64(), (id, w, tag));
            }
            Op::Touch { pick, back: b } if !self.issued.is_empty() => {
                self.touch(pick, back(b))?;
            }
            Op::TouchAhead { pick, ahead } if !self.issued.is_empty() => {
                self.touch(pick, now + Duration::from_millis(ahead))?;
            }
            Op::Skip { ms } => self.now += Duration::from_millis(ms),
            Op::Remove { pick } if !self.issued.is_empty() => {
                let id = self.issued[pick % self.issued.len()];
                let want = match self.model.live.remove(&id.to_u64()) {
                    Some((_, _, tag)) => Ok(tag),
                    None => Err(HandleError::Stale),
                };
                let got = self.reg.remove(id);
                prop_assert_eq!(got, want);
                if got.is_ok() {
                    *self.ends.get_mut(&id).unwrap() += 1;
                }
            }
            Op::Advance { ms } => self.tick(self.now + Duration::from_millis(ms))?,
            Op::WakeUp => {
                if let Some(t) = self.reg.poll_timeout() {
                    self.tick(t.max(self.now))?;
                }
            }
            Op::Touch { .. } | Op::TouchAhead { .. } | Op::Remove { .. } => {}
        }
        Ok(())
    }

    fn touch(&mut self, pick: usize, at: Instant) -> Result<(), TestCaseError> {
        let id = self.issued[pick % self.issued.len()];
        let tick = self.model.ticks.from_instant(at);
        let want = match self.model.live.get_mut(&id.to_u64()) {
            Some((_, w, _)) => {
                w.touch(tick);
                Ok(())
            }
            None => Err(HandleError::Stale),
        };
        prop_assert_eq!(self.reg.touch(id, at), want);
        Ok(())
    }
}

fn run(policy: Policy, ops: Vec<Op>) -> Result<(), TestCaseError> {
    // Start late enough that `back` never reaches before the origin.
    let origin = Instant::now();
    let mut h = Harness {
        reg: Registry::new(policy, origin).unwrap(),
        model: Model {
            policy,
            ticks: Ticks::new(origin),
            live: BTreeMap::new(),
        },
        now: origin + Duration::from_secs(1),
        issued: vec![],
        ends: HashMap::new(),
    };
    for op in ops {
        h.apply(op)?;
    }
    // Silence from here on: everything still registered must expire.
    for _ in 0..100_000 {
        let Some(t) = h.reg.poll_timeout() else { break };
        h.tick(t.max(h.now))?;
    }
    prop_assert!(h.reg.is_empty());
    prop_assert!(h.model.live.is_empty());
    for (id, n) in &h.ends {
        prop_assert_eq!(*n, 1, "connection {} ended {} times", id, n);
        prop_assert_eq!(h.reg.remove(*id), Err(HandleError::Stale));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn registry_matches_the_reference_model(
        policy in policy(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        run(policy, ops)?;
    }

    #[test]
    fn registry_matches_the_reference_model_with_far_apart_clocks(
        policy in any_policy(),
        ops in prop::collection::vec(far_op(), 1..300),
    ) {
        run(policy, ops)?;
    }
}
