//! `tether drill`: per transport, a server, a fault proxy and several
//! clients in one process; faults one after another; a verdict per fault.

mod check;
mod faults;
mod options;
mod phase;
mod progress;
mod proxy;
mod report;
mod transport;
mod world;

pub use options::{parse, Parsed, HELP};
pub use report::{event_json, event_text};

use options::DrillOptions;
use progress::Progress;
use report::{DrillReport, TransportReport};
use std::time::{Duration, Instant};
use tether_core::supervisor::Lifecycle;
use tether_transports::Scheme;
use transport::{is_datagram, Secrets};
use world::World;

/// Runs the drill; returns the process exit code (0 passed, 1 failed).
pub async fn run(opts: DrillOptions) -> i32 {
    let started = Instant::now();
    let progress = Progress::new(opts.json);
    let hb = &opts.heartbeat;
    let names: Vec<&str> = opts.transports.iter().map(|s| s.as_str()).collect();
    progress.line(&format!(
        "tether drill over {}: {} clients each; heartbeat every {} of silence, reply within {}, \
         dead after {} missed (detection bound {}); backoff {} x{} up to {}, full jitter",
        names.join(", "),
        opts.clients,
        crate::fmt::short(hb.interval),
        crate::fmt::short(hb.timeout),
        hb.max_missed,
        crate::fmt::short(hb.detection_bound()),
        crate::fmt::short(opts.backoff.initial),
        opts.backoff.multiplier,
        crate::fmt::short(opts.backoff.max_delay),
    ));
    let secrets = match Secrets::create() {
        Ok(secrets) => secrets,
        Err(e) => {
            eprintln!("tether drill: {e}");
            return 1;
        }
    };
    let mut sections = Vec::new();
    for &scheme in &opts.transports {
        sections.push(run_transport(scheme, &opts, &secrets, &progress).await);
    }
    drop(secrets);

    let report = DrillReport {
        sections,
        elapsed: started.elapsed(),
    };
    if opts.json {
        println!("{}", report.json(&opts));
    } else {
        print!("{}", report.text(&opts));
    }
    if report.ok() {
        0
    } else {
        1
    }
}

/// The whole drill over one transport, with a world of its own.
async fn run_transport(
    scheme: Scheme,
    opts: &DrillOptions,
    secrets: &Secrets,
    progress: &Progress,
) -> TransportReport {
    let started = Instant::now();
    let name = scheme.as_str();
    let mut report = TransportReport {
        scheme,
        phases: Vec::new(),
        skipped: Vec::new(),
        other_problems: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut world = match World::start(scheme, opts, secrets).await {
        Ok(world) => world,
        Err(e) => {
            progress.line(&format!("{name}: {e}"));
            report.other_problems.push(e);
            report.elapsed = started.elapsed();
            return report;
        }
    };
    progress.line(&format!(
        "{name}: server on {}, {} fault proxy on {} in front of it",
        world
            .server
            .as_ref()
            .map_or("?".into(), |s| s.addr.to_string()),
        if is_datagram(scheme) { "UDP" } else { "TCP" },
        world.proxy.local_addr()
    ));

    let hb = &opts.heartbeat;
    let connect_within = opts.backoff.min_connect_timeout + Duration::from_secs(5);
    if world
        .pump_until(Instant::now() + connect_within, World::all_connected)
        .await
    {
        progress.line(&format!("{name}: {0}/{0} clients connected", opts.clients));
    } else {
        report
            .other_problems
            .push("not every client connected at startup".to_string());
    }
    // Let heartbeats flow before the first fault.
    world.pump_for(hb.interval + hb.timeout).await;

    let mut windows = Vec::new();
    for &fault in &opts.faults {
        if let Some(why) = fault.skipped_on(scheme) {
            progress.line(&format!("{name}: {}: skipped: {why}", fault.title()));
            report.skipped.push((fault, why));
            continue;
        }
        let (phase, window) = phase::run(&mut world, fault, opts, progress).await;
        report.phases.push(phase);
        windows.push(window);
    }

    if world.close_clients(Duration::from_secs(3)).await {
        progress.line(&format!("{name}: {0}/{0} clients closed", opts.clients));
    } else {
        report
            .other_problems
            .push("not every client reported `closed` after close()".to_string());
    }
    // Anything reported after the end would be a violation: give it a chance.
    world.pump_for(Duration::from_millis(50)).await;
    world.stop_server().await;

    // Violations outside every fault's window belong to startup or teardown.
    for (i, log) in world.clients.iter().enumerate() {
        for v in &log.check.violations {
            let in_phase = windows
                .iter()
                .any(|w| v.index >= w.marks[i] && v.index < w.ends[i]);
            if !in_phase {
                report
                    .other_problems
                    .push(format!("client {i}: lifecycle: {}", v.what));
            }
        }
        if !matches!(log.events.last(), Some((_, Lifecycle::Closed))) {
            report.other_problems.push(format!(
                "client {i}: event stream did not end with `closed`"
            ));
        }
    }
    report.elapsed = started.elapsed();
    report
}
