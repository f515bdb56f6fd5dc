//! Helpers shared by the end-to-end tests: fast timings and event waiting.
#![allow(dead_code)]

pub mod process;

use std::time::Duration;
use tether_core::backoff::BackoffConfig;
use tether_core::liveness::HeartbeatConfig;
use tether_core::supervisor::Lifecycle;
use tether_transports::driver::{Client, ClientConfig, ClientEvent, Server, ServerEvent};

/// Heartbeat: ping after 100 ms of silence, 100 ms to answer, 2 misses.
pub fn fast_heartbeat() -> HeartbeatConfig {
    HeartbeatConfig::new(Duration::from_millis(100), Duration::from_millis(100), 2)
}

pub fn fast_client() -> ClientConfig {
    ClientConfig {
        heartbeat: fast_heartbeat(),
        backoff: BackoffConfig::default()
            .with_initial(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(200))
            .with_healthy_after(Duration::from_millis(200))
            .with_seed(7),
        max_pending: 64,
    }
}

/// Waits for the first lifecycle event matching `pred`, collecting every
/// event seen on the way. Panics after `limit`.
pub async fn wait_lifecycle(
    client: &mut Client,
    seen: &mut Vec<Lifecycle>,
    limit: Duration,
    pred: impl Fn(&Lifecycle) -> bool,
) -> Lifecycle {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let ev = tokio::time::timeout_at(deadline, client.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out; events so far: {seen:?}"))
            .expect("event stream ended");
        if let ClientEvent::Lifecycle(step) = ev {
            seen.push(step);
            if pred(&step) {
                return step;
            }
        }
    }
}

/// Collects the lifecycle events that arrive within `window`.
pub async fn drain_lifecycle(client: &mut Client, seen: &mut Vec<Lifecycle>, window: Duration) {
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, client.next_event()).await {
        if let ClientEvent::Lifecycle(step) = ev {
            seen.push(step);
        }
    }
}

/// Waits for a server event matching `pred`, collecting all events seen.
pub async fn wait_server(
    server: &mut Server,
    seen: &mut Vec<ServerEvent>,
    limit: Duration,
    pred: impl Fn(&ServerEvent) -> bool,
) -> ServerEvent {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let ev = tokio::time::timeout_at(deadline, server.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out; server events so far: {seen:?}"))
            .expect("server event stream ended");
        seen.push(ev.clone());
        if pred(&ev) {
            return ev;
        }
    }
}

/// Collects the server events that arrive within `window`.
pub async fn drain_server(server: &mut Server, seen: &mut Vec<ServerEvent>, window: Duration) {
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, server.next_event()).await {
        seen.push(ev);
    }
}

/// Counts `Disconnected` events per generation; every count must be 1.
pub fn assert_each_disconnect_once(seen: &[Lifecycle]) {
    let mut gens = std::collections::HashMap::new();
    for step in seen {
        if let Lifecycle::Disconnected { generation, .. } = step {
            *gens.entry(*generation).or_insert(0) += 1;
        }
    }
    for (generation, n) in gens {
        assert_eq!(
            n, 1,
            "generation {generation} disconnected {n} times: {seen:?}"
        );
    }
}
