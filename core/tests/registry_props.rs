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
        let back = |b: u64| now - Duration::from_millis(b);
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
                let id = self.issued[pick % self.issued.len()];
                let at = back(b);
                let tick = self.model.ticks.from_instant(at);
                let want = match self.model.live.get_mut(&id.to_u64()) {
                    Some((_, w, _)) => {
                        w.touch(tick);
                        Ok(())
                    }
                    None => Err(HandleError::Stale),
                };
                prop_assert_eq!(self.reg.touch(id, at), want);
            }
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
            Op::Touch { .. } | Op::Remove { .. } => {}
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn registry_matches_the_reference_model(
        policy in policy(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        // Start late enough that `back` never reaches before the origin.
        let origin = Instant::now();
        let mut h = Harness {
            reg: Registry::new(policy, origin).unwrap(),
            model: Model { policy, ticks: Ticks::new(origin), live: BTreeMap::new() },
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
    }
}
