//! `tether drill`: a server, a fault proxy and several clients in one
//! process; faults one after another; a verdict per fault.

mod check;
mod faults;
mod options;
mod phase;
mod progress;
mod report;
mod world;

pub use options::{parse, Parsed, HELP};
pub use report::{event_json, event_text};

use options::DrillOptions;
use progress::Progress;
use report::DrillReport;
use std::time::{Duration, Instant};
use world::World;

/// Runs the drill; returns the process exit code (0 passed, 1 failed).
pub async fn run(opts: DrillOptions) -> i32 {
    let started = Instant::now();
    let progress = Progress::new(opts.json);
    let hb = &opts.heartbeat;
    progress.line(&format!(
        "tether drill: {} clients; heartbeat every {} of silence, reply within {}, dead after {} \
         missed (detection bound {}); backoff {} x{} up to {}, full jitter",
        opts.clients,
        crate::fmt::short(hb.interval),
        crate::fmt::short(hb.timeout),
        hb.max_missed,
        crate::fmt::short(hb.detection_bound()),
        crate::fmt::short(opts.backoff.initial),
        opts.backoff.multiplier,
        crate::fmt::short(opts.backoff.max_delay),
    ));

    let mut world = match World::start(&opts).await {
        Ok(world) => world,
        Err(e) => {
            eprintln!("tether drill: {e}");
            return 1;
        }
    };
    progress.line(&format!(
        "server on {}, fault proxy on {} in front of it",
        world
            .server
            .as_ref()
            .map_or("?".into(), |s| s.addr.to_string()),
        world.proxy.local_addr()
    ));

    let mut other_problems = Vec::new();
    let connect_within = opts.backoff.min_connect_timeout + Duration::from_secs(5);
    if world
        .pump_until(Instant::now() + connect_within, World::all_connected)
        .await
    {
        progress.line(&format!("{0}/{0} clients connected", opts.clients));
    } else {
        other_problems.push("not every client connected at startup".to_string());
    }
    // Let heartbeats flow before the first fault.
    world.pump_for(hb.interval + hb.timeout).await;

    let mut phases = Vec::new();
    let mut windows = Vec::new();
    for &fault in &opts.faults {
        let (report, window) = phase::run(&mut world, fault, &opts, &progress).await;
        phases.push(report);
        windows.push(window);
    }

    if world.close_clients(Duration::from_secs(3)).await {
        progress.line(&format!("{0}/{0} clients closed", opts.clients));
    } else {
        other_problems.push("not every client reported `closed` after close()".to_string());
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
                other_problems.push(format!("client {i}: lifecycle: {}", v.what));
            }
        }
        if !matches!(
            log.events.last(),
            Some((_, tether_core::supervisor::Lifecycle::Closed))
        ) {
            other_problems.push(format!(
                "client {i}: event stream did not end with `closed`"
            ));
        }
    }

    let report = DrillReport {
        phases,
        other_problems,
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
