//! Checks one client's lifecycle stream against the contract of
//! [`Lifecycle`]: per generation `connecting`, then `connect_failed` or
//! `connected` … `disconnected`, each at most once and in that order;
//! `waiting` between generations; generations counting up by one; one
//! terminal `closed` / `gave_up`, then silence.

use tether_core::supervisor::Lifecycle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing seen yet.
    Start,
    /// `connecting` for this generation seen.
    Dialing(u64),
    /// `connected` for this generation seen.
    Up(u64),
    /// The generation ended (`connect_failed` or `disconnected`).
    Ended(u64),
    /// `waiting` seen; the next generation may start.
    Waiting,
    /// `closed` or `gave_up` seen.
    Terminal,
}

/// A violation, with the index of the offending event in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub index: usize,
    pub what: String,
}

/// Feeds events one by one; remembers every violation.
#[derive(Debug, Clone)]
pub struct LifecycleCheck {
    stage: Stage,
    last_generation: u64,
    seen: usize,
    pub violations: Vec<Violation>,
}

impl Default for LifecycleCheck {
    fn default() -> Self {
        Self {
            stage: Stage::Start,
            last_generation: 0,
            seen: 0,
            violations: Vec::new(),
        }
    }
}

impl LifecycleCheck {
    /// The generation that is up, if any.
    pub fn connected(&self) -> Option<u64> {
        match self.stage {
            Stage::Up(g) => Some(g),
            _ => None,
        }
    }

    /// True once `closed` or `gave_up` was seen.
    pub fn is_terminal(&self) -> bool {
        self.stage == Stage::Terminal
    }

    /// Checks the next event.
    pub fn feed(&mut self, event: &Lifecycle) {
        let index = self.seen;
        self.seen += 1;
        if let Err(what) = self.step(event) {
            self.violations.push(Violation { index, what });
        }
    }

    fn step(&mut self, event: &Lifecycle) -> Result<(), String> {
        use Lifecycle as L;
        let stage = self.stage;
        let bad = |what: &str| Err(format!("{what} (after {})", describe(stage)));
        let next = match (event.clone(), stage) {
            (_, Stage::Terminal) => return bad(&format!("{} after the end", event.name())),
            (L::Connecting { generation, .. }, Stage::Start | Stage::Waiting) => {
                let want = self.last_generation + 1;
                if generation != want {
                    self.stage = Stage::Dialing(generation);
                    self.last_generation = generation;
                    return Err(format!(
                        "connecting#{generation} but generation {want} was next"
                    ));
                }
                self.last_generation = generation;
                Stage::Dialing(generation)
            }
            (L::Connected { generation, .. }, Stage::Dialing(g)) if g == generation => {
                Stage::Up(generation)
            }
            (L::ConnectFailed { generation, .. }, Stage::Dialing(g)) if g == generation => {
                Stage::Ended(generation)
            }
            (L::Disconnected { generation, .. }, Stage::Up(g)) if g == generation => {
                Stage::Ended(generation)
            }
            (L::Waiting { .. }, Stage::Ended(_)) => Stage::Waiting,
            (L::Closed, Stage::Start | Stage::Ended(_) | Stage::Waiting) => Stage::Terminal,
            (L::GaveUp { .. }, Stage::Ended(_)) => Stage::Terminal,
            (L::Connected { generation, .. }, _)
            | (L::ConnectFailed { generation, .. }, _)
            | (L::Disconnected { generation, .. }, _)
            | (L::Connecting { generation, .. }, _) => {
                return bad(&format!(
                    "{}#{generation} duplicate or out of order",
                    event.name()
                ))
            }
            (_, _) => return bad(&format!("{} out of order", event.name())),
        };
        self.stage = next;
        Ok(())
    }
}

fn describe(stage: Stage) -> String {
    match stage {
        Stage::Start => "the start".into(),
        Stage::Dialing(g) => format!("connecting#{g}"),
        Stage::Up(g) => format!("connected#{g}"),
        Stage::Ended(g) => format!("the end of generation {g}"),
        Stage::Waiting => "waiting".into(),
        Stage::Terminal => "the terminal event".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tether_core::DisconnectReason as R;

    fn run(events: &[Lifecycle]) -> LifecycleCheck {
        let mut c = LifecycleCheck::default();
        for e in events {
            c.feed(e);
        }
        c
    }

    const fn dial(generation: u64) -> Lifecycle {
        Lifecycle::Connecting {
            generation,
            attempt: 1,
        }
    }
    const fn up(generation: u64) -> Lifecycle {
        Lifecycle::Connected {
            generation,
            attempt: 1,
        }
    }
    const fn down(generation: u64) -> Lifecycle {
        Lifecycle::Disconnected {
            generation,
            reason: R::Reset,
            detail: tether_core::Detail::none(),
        }
    }
    const WAIT: Lifecycle = Lifecycle::Waiting {
        attempt: 1,
        delay: Duration::from_millis(10),
    };

    #[test]
    fn a_valid_stream_passes() {
        let failed = Lifecycle::ConnectFailed {
            generation: 2,
            attempt: 1,
            reason: R::ConnectRefused,
            detail: "refused".into(),
        };
        let c = run(&[
            dial(1),
            up(1),
            down(1),
            WAIT,
            dial(2),
            failed,
            WAIT,
            dial(3),
            up(3),
            Lifecycle::Disconnected {
                generation: 3,
                reason: R::ClosedLocally,
                detail: "closed by the application".into(),
            },
            Lifecycle::Closed,
        ]);
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        assert!(c.is_terminal());
    }

    #[test]
    fn duplicates_and_disorder_are_caught() {
        assert_eq!(run(&[dial(1), up(1), up(1)]).violations.len(), 1);
        assert_eq!(run(&[dial(1), up(1), down(1), down(1)]).violations.len(), 1);
        assert_eq!(run(&[dial(1), down(1)]).violations.len(), 1);
        assert_eq!(run(&[dial(1), up(1), down(1), dial(2)]).violations.len(), 1);
        let skipped = run(&[dial(1), up(1), down(1), WAIT, dial(3)]);
        assert_eq!(skipped.violations[0].index, 4);
        assert_eq!(
            run(&[dial(1), up(1), Lifecycle::Closed]).violations.len(),
            1
        );
        let after_end = run(&[Lifecycle::Closed, dial(1)]);
        assert_eq!(after_end.violations.len(), 1);
    }

    #[test]
    fn connected_generation_is_tracked() {
        let c = run(&[dial(1), up(1)]);
        assert_eq!(c.connected(), Some(1));
        let c = run(&[dial(1), up(1), down(1)]);
        assert_eq!(c.connected(), None);
    }
}
