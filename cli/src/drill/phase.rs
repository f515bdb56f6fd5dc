//! One fault, start to finish: inject it, wait until every client noticed,
//! lift it, wait until every client is back, then judge what each reported.

use super::faults::FaultKind;
use super::options::DrillOptions;
use super::progress::Progress;
use super::proxy::Proxy;
use super::world::World;
use crate::fmt;
use std::time::{Duration, Instant};
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::fault::Fault;
use tether_transports::Scheme;

/// What one client went through during one fault.
#[derive(Debug, Clone)]
pub struct ClientOutcome {
    pub client: usize,
    /// The generation that was up when the fault was injected.
    pub generation_before: Option<u64>,
    /// The generation up at the end of the phase.
    pub generation_after: Option<u64>,
    /// From the fault to the `disconnected` of `generation_before`.
    pub detect: Option<Duration>,
    pub reason: Option<DisconnectReason>,
    /// What the client said about that disconnect, in words.
    pub detail: Option<String>,
    /// From the fault to the `connected` of `generation_after` (the first
    /// one after the fault, unless that connection failed again).
    pub reconnect: Option<Duration>,
    /// Every lifecycle event of the phase, in order, with its time since
    /// the fault.
    pub events: Vec<(Duration, Lifecycle)>,
    /// Failed checks; empty means this client passed.
    pub problems: Vec<String>,
}

/// The result of one fault.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    pub scheme: Scheme,
    pub fault: FaultKind,
    /// What was done, for humans.
    pub injected: String,
    pub bound: Duration,
    pub margin: Duration,
    pub clients: Vec<ClientOutcome>,
    /// Reasons of the connections the server saw end during the phase.
    pub server_closed: Vec<DisconnectReason>,
}

impl PhaseReport {
    pub fn ok(&self) -> bool {
        self.clients.iter().all(|c| c.problems.is_empty())
    }
}

/// Where each client's events of a phase start.
pub struct Window {
    pub marks: Vec<usize>,
    pub ends: Vec<usize>,
}

pub async fn run(
    world: &mut World,
    fault: FaultKind,
    opts: &DrillOptions,
    progress: &Progress,
) -> (PhaseReport, Window) {
    let title = format!("{}: {}", world.scheme.as_str(), fault.title());
    let bound = opts.heartbeat.detection_bound();
    let settle = opts.heartbeat.interval + opts.heartbeat.timeout;
    let reconnect_within = opts.backoff.max_delay + opts.backoff.min_connect_timeout + bound;

    if !world
        .pump_until(
            Instant::now() + Duration::from_secs(5),
            World::all_connected,
        )
        .await
    {
        progress.line(&format!(
            "{title}: not every client is connected; injecting anyway"
        ));
    }
    let live: Vec<Option<u64>> = world.clients.iter().map(|c| c.check.connected()).collect();
    let marks: Vec<usize> = world.clients.iter().map(|c| c.events.len()).collect();
    let server_mark = world.server_closed.len();

    let t0 = Instant::now();
    let injected = inject(world, fault).await;
    progress.line(&format!("{title}: {injected}"));

    let detected = |w: &World| {
        w.clients
            .iter()
            .zip(&marks)
            .zip(&live)
            .all(|((c, &mark), &g)| find_disconnect(&c.events[mark..], g).is_some())
    };
    let all = world
        .pump_until(t0 + bound + opts.margin + Duration::from_secs(2), detected)
        .await;
    let times: Vec<Duration> = world
        .clients
        .iter()
        .zip(&marks)
        .zip(&live)
        .filter_map(|((c, &mark), &g)| find_disconnect(&c.events[mark..], g).map(|(at, _)| at - t0))
        .collect();
    progress.line(&format!(
        "{title}: {}/{} clients detected it{}",
        times.len(),
        live.len(),
        slowest(&times, all)
    ));

    if fault == FaultKind::BlackHole {
        world.proxy.set_fault(Fault::Pass);
        progress.line(&format!("{title}: lifted, traffic passes again"));
    }

    let back = |w: &World| {
        w.clients
            .iter()
            .zip(&live)
            .all(|(c, &g)| c.check.connected().is_some_and(|now| Some(now) > g))
    };
    let all = world
        .pump_until(Instant::now() + reconnect_within, back)
        .await;
    let times: Vec<Duration> = world
        .clients
        .iter()
        .zip(&marks)
        .zip(&live)
        .filter_map(|((c, &mark), &g)| {
            let now = c.check.connected().filter(|&now| Some(now) > g);
            find_connected(&c.events[mark..], now).map(|at| at - t0)
        })
        .collect();
    progress.line(&format!(
        "{title}: {}/{} clients reconnected{}",
        times.len(),
        live.len(),
        slowest(&times, all)
    ));

    // Watch the new connections for a heartbeat round, to catch a relapse.
    world.pump_for(settle).await;

    let ends: Vec<usize> = world.clients.iter().map(|c| c.events.len()).collect();
    let clients = (0..world.clients.len())
        .map(|i| judge(world, i, fault, t0, live[i], marks[i], bound, opts.margin))
        .collect();
    let report = PhaseReport {
        scheme: world.scheme,
        fault,
        injected,
        bound,
        margin: opts.margin,
        clients,
        server_closed: world.server_closed[server_mark..]
            .iter()
            .map(|(_, r)| *r)
            .collect(),
    };
    (report, Window { marks, ends })
}

/// Injects `fault`; returns what was done, for humans.
async fn inject(world: &mut World, fault: FaultKind) -> String {
    match fault {
        FaultKind::Restart => return restart(world).await,
        FaultKind::Close if matches!(world.proxy, Proxy::Datagram(_)) => {
            let n = world.close_all_on_server().await;
            return format!("server closed {} (Server::close)", count(n, "connection"));
        }
        _ => {}
    }
    match (fault, &world.proxy) {
        (FaultKind::Close, Proxy::Stream(proxy)) => {
            let n = proxy.close_all();
            format!("proxy closed {} with FIN", count(n, "connection"))
        }
        (FaultKind::Reset, Proxy::Stream(proxy)) => {
            let n = proxy.reset_all();
            format!("proxy reset {} (RST)", count(n, "connection"))
        }
        (FaultKind::BlackHole, proxy) => {
            proxy.set_fault(Fault::BlackHole);
            match proxy {
                Proxy::Stream(p) => format!(
                    "proxy black-holes all traffic of {}, sockets open",
                    count(p.connection_count(), "connection")
                ),
                Proxy::Datagram(_) => {
                    let up = world
                        .clients
                        .iter()
                        .filter(|c| c.check.connected().is_some());
                    format!(
                        "proxy black-holes every datagram of {}, both ways",
                        count(up.count(), "connection")
                    )
                }
            }
        }
        // Skipped before injection (see FaultKind::skipped_on).
        (FaultKind::Reset, Proxy::Datagram(_)) => "nothing: a datagram proxy has no RST".into(),
        (FaultKind::Close | FaultKind::Restart, _) => unreachable!("handled above"),
    }
}

async fn restart(world: &mut World) -> String {
    match world.restart_server().await {
        Ok(r) => match r.blackout {
            None => format!(
                "server on {} dropped; new server on {}, proxy redirected",
                r.old, r.new
            ),
            Some(blackout) => format!(
                "proxy black-holed while the server on {} was dropped (its goodbyes lost, as in \
                 a crash); new server on the same port with the same reset key; traffic passes \
                 again after {}",
                r.old,
                fmt::duration(blackout)
            ),
        },
        Err(e) => format!("restart failed: {e}"),
    }
}

fn count(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

fn slowest(times: &[Duration], all: bool) -> String {
    let suffix = if all { "" } else { " (gave up waiting)" };
    match times.iter().max() {
        Some(max) => format!(", slowest after {}{suffix}", fmt::duration(*max)),
        None => suffix.to_string(),
    }
}

/// The `disconnected` of generation `g`, if reported.
fn find_disconnect(
    events: &[(Instant, Lifecycle)],
    g: Option<u64>,
) -> Option<(Instant, DisconnectReason)> {
    events.iter().find_map(|(at, e)| match *e {
        Lifecycle::Disconnected {
            generation, reason, ..
        } if Some(generation) == g => Some((*at, reason)),
        _ => None,
    })
}

/// The `connected` of generation `g`, if reported.
fn find_connected(events: &[(Instant, Lifecycle)], g: Option<u64>) -> Option<Instant> {
    events.iter().find_map(|(at, e)| match *e {
        Lifecycle::Connected { generation, .. } if Some(generation) == g => Some(*at),
        _ => None,
    })
}

#[allow(clippy::too_many_arguments)]
fn judge(
    world: &World,
    client: usize,
    fault: FaultKind,
    t0: Instant,
    live: Option<u64>,
    mark: usize,
    bound: Duration,
    margin: Duration,
) -> ClientOutcome {
    let log = &world.clients[client];
    let window = &log.events[mark..];
    let mut problems = Vec::new();
    let expected = fault.expected(world.scheme);

    let disconnect = find_disconnect(window, live);
    let detect = disconnect.map(|(at, _)| at.saturating_duration_since(t0));
    let reason = disconnect.map(|(_, r)| r);
    let detail = window.iter().find_map(|(_, e)| match e {
        Lifecycle::Disconnected {
            generation, detail, ..
        } if Some(*generation) == live => Some(detail.to_string()),
        _ => None,
    });
    let after = log.check.connected().filter(|&g| Some(g) > live);
    let reconnect = find_connected(window, after).map(|at| at.saturating_duration_since(t0));

    match (live, detect, reason) {
        (None, _, _) => problems.push("was not connected when the fault was injected".into()),
        (Some(_), None, _) => problems.push("did not detect the fault".into()),
        (Some(_), Some(d), Some(r)) => {
            if !expected.contains(&r) {
                problems.push(format!(
                    "reason {r} ({}), expected {}",
                    detail.as_deref().unwrap_or(""),
                    fault.expected_text(world.scheme)
                ));
            }
            if d > bound + margin {
                problems.push(format!(
                    "detected after {}, beyond the bound {} + margin {}",
                    fmt::duration(d),
                    fmt::duration(bound),
                    fmt::duration(margin)
                ));
            }
        }
        (Some(_), Some(_), None) => unreachable!("a detection always has a reason"),
    }
    for (_, e) in window {
        if let Lifecycle::Disconnected {
            generation,
            reason,
            detail,
        } = e
        {
            if Some(*generation) != live && !expected.contains(reason) {
                problems.push(format!(
                    "connection #{generation} dropped again: {reason} ({detail})"
                ));
            }
        }
    }
    if live.is_some() && reconnect.is_none() {
        problems.push("not reconnected at the end of the phase".into());
    }
    for v in &log.check.violations {
        if v.index >= mark {
            problems.push(format!("lifecycle: {}", v.what));
        }
    }
    ClientOutcome {
        client,
        generation_before: live,
        generation_after: after,
        detect,
        reason,
        detail,
        reconnect,
        events: window
            .iter()
            .map(|(at, e)| (at.saturating_duration_since(t0), e.clone()))
            .collect(),
        problems,
    }
}
