//! Property tests of the supervisor's event grammar: whatever the driver
//! reports, in whatever order and however late, the lifecycle events form
//! the documented language and every connection ends exactly once.

use proptest::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tether_core::backoff::{BackoffConfig, ExponentialBackoff};
use tether_core::supervisor::{Action, Lifecycle, Supervisor};
use tether_core::DisconnectReason;

#[derive(Debug, Clone)]
enum Input {
    Advance(u64),
    Connected { stale: bool },
    ConnectFailed { stale: bool, reason: u32 },
    Disconnected { stale: bool, reason: u32 },
    Close,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (0u64..40_000).prop_map(Input::Advance),
        any::<bool>().prop_map(|stale| Input::Connected { stale }),
        (any::<bool>(), 1u32..=10)
            .prop_map(|(stale, reason)| Input::ConnectFailed { stale, reason }),
        (any::<bool>(), 1u32..=10)
            .prop_map(|(stale, reason)| Input::Disconnected { stale, reason }),
        Just(Input::Close),
    ]
}

/// Checks the grammar; returns a description of the first violation.
fn check(events: &[Lifecycle]) -> Result<(), String> {
    #[derive(PartialEq, Debug)]
    enum G {
        Connecting,
        Connected,
        Ended,
    }
    let mut gens: HashMap<u64, G> = HashMap::new();
    let mut last_gen = 0;
    let mut terminal = false;
    let mut live: Option<u64> = None;
    for (i, e) in events.iter().enumerate() {
        if terminal {
            return Err(format!("event {i} {e:?} after the terminal event"));
        }
        match *e {
            Lifecycle::Connecting {
                generation,
                attempt,
            } => {
                if generation != last_gen + 1 || attempt == 0 {
                    return Err(format!("bad connecting {e:?} after gen {last_gen}"));
                }
                if live.is_some() || gens.values().any(|g| *g != G::Ended) {
                    return Err(format!("connecting {e:?} while another is open"));
                }
                last_gen = generation;
                gens.insert(generation, G::Connecting);
            }
            Lifecycle::Connected { generation, .. } => {
                if gens.get(&generation) != Some(&G::Connecting) {
                    return Err(format!("connected {e:?} without connecting"));
                }
                gens.insert(generation, G::Connected);
                live = Some(generation);
            }
            Lifecycle::ConnectFailed { generation, .. } => {
                if gens.get(&generation) != Some(&G::Connecting) {
                    return Err(format!("connect_failed {e:?} not after connecting"));
                }
                gens.insert(generation, G::Ended);
            }
            Lifecycle::Disconnected { generation, .. } => {
                if gens.get(&generation) != Some(&G::Connected) {
                    return Err(format!("disconnected {e:?} not after connected (twice?)"));
                }
                gens.insert(generation, G::Ended);
                live = None;
            }
            Lifecycle::Waiting { attempt, .. } => {
                if gens.values().any(|g| *g != G::Ended) || attempt < 2 {
                    return Err(format!("waiting {e:?} with an open generation"));
                }
            }
            Lifecycle::Closed | Lifecycle::GaveUp { .. } => {
                if gens.values().any(|g| *g != G::Ended) {
                    return Err(format!("terminal {e:?} with an open generation"));
                }
                terminal = true;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lifecycle_grammar_holds(
        inputs in proptest::collection::vec(input(), 0..200),
        seed in any::<u64>(),
        max_attempts in proptest::option::of(1u32..6),
    ) {
        let mut cfg = BackoffConfig::default()
            .with_initial(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_min_connect_timeout(Duration::from_secs(2))
            .with_healthy_after(Duration::from_secs(3))
            .with_seed(seed);
        if let Some(n) = max_attempts {
            cfg = cfg.with_max_attempts(n);
        }
        let mut sup = Supervisor::new(ExponentialBackoff::new(cfg).unwrap());
        let mut now = Instant::now();
        let mut events = vec![];
        let mut dialing: Option<u64> = None;
        let mut connected: Option<u64> = None;
        let mut last_dialed = 0;
        sup.start(now);
        for input in inputs {
            while let Some(a) = sup.poll_action() {
                match a {
                    Action::Dial { generation, timeout } => {
                        prop_assert!(timeout >= Duration::from_secs(2));
                        dialing = Some(generation);
                        last_dialed = generation;
                    }
                    Action::AbortDial { generation } => {
                        prop_assert_eq!(dialing, Some(generation));
                        dialing = None;
                    }
                    Action::CloseLink { generation } => {
                        prop_assert_eq!(connected, Some(generation));
                        connected = None;
                    }
                }
            }
            events.extend(std::iter::from_fn(|| sup.poll_event()));
            let stale_gen = last_dialed.saturating_sub(1);
            let r = |v| DisconnectReason::from_u32(v).unwrap();
            match input {
                Input::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    sup.handle_timeout(now);
                }
                Input::Connected { stale } => {
                    let g = if stale { stale_gen } else { dialing.unwrap_or(stale_gen) };
                    if sup.handle_connected(g, now) {
                        prop_assert_eq!(dialing, Some(g));
                        dialing = None;
                        connected = Some(g);
                    }
                }
                Input::ConnectFailed { stale, reason } => {
                    let g = if stale { stale_gen } else { dialing.unwrap_or(stale_gen) };
                    if sup.handle_connect_failed(g, r(reason), now) {
                        dialing = None;
                    }
                }
                Input::Disconnected { stale, reason } => {
                    let g = if stale { stale_gen } else { connected.unwrap_or(stale_gen) };
                    if sup.handle_disconnected(g, r(reason), now) {
                        connected = None;
                    }
                }
                Input::Close => sup.handle_close(now),
            }
        }
        events.extend(std::iter::from_fn(|| sup.poll_event()));
        sup.handle_close(now);
        sup.handle_close(now);
        events.extend(std::iter::from_fn(|| sup.poll_event()));
        if let Err(msg) = check(&events) {
            prop_assert!(false, "{}\nevents: {:?}", msg, events);
        }
        let terminals = events.iter().filter(|e| e.is_terminal()).count();
        prop_assert_eq!(terminals, 1);
        prop_assert!(sup.is_terminal());
        prop_assert_eq!(sup.poll_timeout(), None);
    }
}
