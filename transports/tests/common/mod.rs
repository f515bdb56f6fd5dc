//! Helpers shared by the end-to-end tests: fast timings, waiting on events,
//! exactly-once assertions, echo servers, server processes and scenario S0.
//!
//! `tls_support` and `quic_support` include `scratch.rs`, `certs.rs`,
//! `events.rs` and `echo_server.rs` by path instead of using this module,
//! so that crates which include them without `common` (the cross-transport
//! tests) keep working.
#![allow(dead_code)]

pub mod echo_server;
pub mod events;
pub mod opening;
pub mod process;
pub mod s0;
pub mod scratch;

// Not every test file uses each of them.
#[allow(unused_imports)]
pub use echo_server::EchoServer;
#[allow(unused_imports)]
pub use events::*;
#[allow(unused_imports)]
pub use opening::{data_frame, hello, welcome};

use bytes::Bytes;
use std::collections::HashSet;
use std::time::Duration;
use tether_core::backoff::BackoffConfig;
use tether_core::liveness::{HeartbeatConfig, Policy};
use tether_core::registry::ConnId;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, ClientConfig, ServerConfig, ServerEvent};

/// Heartbeat: ping after 100 ms of silence, 100 ms to answer, 2 misses.
pub fn fast_heartbeat() -> HeartbeatConfig {
    HeartbeatConfig::new(Duration::from_millis(100), Duration::from_millis(100), 2)
}

/// The fast heartbeat; reconnects after 20 ms, backing off to 200 ms.
pub fn fast_client() -> ClientConfig {
    ClientConfig {
        heartbeat: fast_heartbeat(),
        backoff: BackoffConfig::default()
            .with_initial(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(200))
            .with_healthy_after(Duration::from_millis(200))
            .with_seed(7),
        max_pending: 64,
        ..ClientConfig::default()
    }
}

/// A server that pings silent clients with the fast heartbeat.
pub fn fast_server() -> ServerConfig {
    ServerConfig {
        policy: Policy::Heartbeat(fast_heartbeat()),
        ..ServerConfig::default()
    }
}

pub fn is_connected(e: &Lifecycle) -> bool {
    matches!(e, Lifecycle::Connected { .. })
}

pub fn is_disconnected(e: &Lifecycle) -> bool {
    matches!(e, Lifecycle::Disconnected { .. })
}

/// Waits (up to 10 s) for the client's next `Connected`; returns its
/// generation.
pub async fn wait_connected(client: &mut Client, seen: &mut Vec<Lifecycle>) -> u64 {
    match wait_for(client, seen, Duration::from_secs(10), is_connected).await {
        Lifecycle::Connected { generation, .. } => generation,
        _ => unreachable!(),
    }
}

/// Waits up to `limit` for the client's next `Disconnected`; returns its
/// generation and reason.
pub async fn wait_disconnected(
    client: &mut Client,
    seen: &mut Vec<Lifecycle>,
    limit: Duration,
) -> (u64, DisconnectReason) {
    match wait_for(client, seen, limit, is_disconnected).await {
        Lifecycle::Disconnected {
            generation, reason, ..
        } => (generation, reason),
        _ => unreachable!(),
    }
}

/// Waits (up to 10 s) for the client's next `ConnectFailed`; returns its
/// reason. A `Connected` first is a failure.
pub async fn wait_connect_failed(
    client: &mut Client,
    seen: &mut Vec<Lifecycle>,
) -> DisconnectReason {
    let step = wait_for(client, seen, Duration::from_secs(10), |e| {
        matches!(
            e,
            Lifecycle::ConnectFailed { .. } | Lifecycle::Connected { .. }
        )
    })
    .await;
    match step {
        Lifecycle::ConnectFailed { reason, .. } => reason,
        _ => panic!("connected instead of failing: {seen:?}"),
    }
}

/// How many steps named `name` (see `Lifecycle::name`) were seen.
pub fn count(seen: &[Lifecycle], name: &str) -> usize {
    seen.iter().filter(|e| e.name() == name).count()
}

/// Generation and reason of every `Disconnected`, in order.
pub fn disconnects(seen: &[Lifecycle]) -> Vec<(u64, DisconnectReason)> {
    seen.iter()
        .filter_map(|e| match e {
            Lifecycle::Disconnected {
                generation, reason, ..
            } => Some((*generation, *reason)),
            _ => None,
        })
        .collect()
}

/// Exactly once per generation: at most one `Connected`, at most one
/// `Disconnected`, and a `Disconnected` only after its `Connected`.
pub fn assert_exactly_once(seen: &[Lifecycle]) {
    let mut connected = HashSet::new();
    let mut disconnected = HashSet::new();
    for step in seen {
        match step {
            Lifecycle::Connected { generation, .. } => assert!(
                connected.insert(*generation),
                "generation {generation} connected twice: {seen:?}"
            ),
            Lifecycle::Disconnected { generation, .. } => {
                assert!(
                    connected.contains(generation),
                    "generation {generation} disconnected before connecting: {seen:?}"
                );
                assert!(
                    disconnected.insert(*generation),
                    "generation {generation} disconnected twice: {seen:?}"
                );
            }
            _ => {}
        }
    }
}

/// Waits (up to 10 s) for the server to accept a connection; returns its id.
pub async fn wait_accepted<S: Events<Event = ServerEvent>>(
    server: &mut S,
    seen: &mut Vec<ServerEvent>,
) -> ConnId {
    let accepted = wait_for(server, seen, Duration::from_secs(10), |e| {
        matches!(e, ServerEvent::Accepted { .. })
    })
    .await;
    match accepted {
        ServerEvent::Accepted { id, .. } => id,
        _ => unreachable!(),
    }
}

/// Waits up to `limit` for the server to report a connection closed;
/// returns its id and reason.
pub async fn wait_closed<S: Events<Event = ServerEvent>>(
    server: &mut S,
    seen: &mut Vec<ServerEvent>,
    limit: Duration,
) -> (ConnId, DisconnectReason) {
    let closed = wait_for(server, seen, limit, |e| {
        matches!(e, ServerEvent::Closed { .. })
    })
    .await;
    match closed {
        ServerEvent::Closed { id, reason, .. } => (id, reason),
        _ => unreachable!(),
    }
}

/// Waits for `n` messages (each within 10 s); returns them in order.
pub async fn wait_messages<S: Events<Event = ServerEvent>>(
    server: &mut S,
    seen: &mut Vec<ServerEvent>,
    n: usize,
) -> Vec<Bytes> {
    let mut got = vec![];
    while got.len() < n {
        let message = wait_for(server, seen, Duration::from_secs(10), |e| {
            matches!(e, ServerEvent::Message { .. })
        })
        .await;
        if let ServerEvent::Message { data, .. } = message {
            got.push(data);
        }
    }
    got
}

/// The reasons of the server's `Closed` events, in order.
pub fn server_closes(seen: &[ServerEvent]) -> Vec<DisconnectReason> {
    seen.iter()
        .filter_map(|e| match e {
            ServerEvent::Closed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// How many connections the server accepted.
pub fn server_accepts(seen: &[ServerEvent]) -> usize {
    seen.iter()
        .filter(|e| matches!(e, ServerEvent::Accepted { .. }))
        .count()
}

/// A loopback port nobody listens on (bound by the kernel, then released).
pub async fn unused_port() -> u16 {
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    probe.local_addr().unwrap().port()
}

/// A supervised TCP server on a kernel-chosen loopback port.
#[cfg(feature = "tcp")]
pub async fn tcp_server(config: ServerConfig) -> tether_transports::driver::Server {
    tcp_server_on(0, config).await
}

/// A supervised TCP server on loopback `port`.
#[cfg(feature = "tcp")]
pub async fn tcp_server_on(port: u16, config: ServerConfig) -> tether_transports::driver::Server {
    use tether_transports::tcp::{TcpAcceptor, TcpOptions};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let acceptor = TcpAcceptor::bind(addr, TcpOptions::default())
        .await
        .unwrap();
    tether_transports::driver::Server::spawn(acceptor, config).unwrap()
}

/// A supervised TCP client of loopback `port` with default socket options.
#[cfg(feature = "tcp")]
pub fn tcp_client(port: u16, config: ClientConfig) -> Client {
    use tether_transports::tcp::{TcpConnector, TcpOptions};
    Client::spawn(
        TcpConnector::new("127.0.0.1", port, TcpOptions::default()),
        config,
    )
    .unwrap()
}
