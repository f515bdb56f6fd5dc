//! Scenario S0 on QUIC: the server process is SIGKILLed and started again
//! on the same port. With the stateless-reset key persisted in a file, the
//! restarted server answers the client's next packet with a stateless reset
//! and the client reports `Reset` long before its idle timeout; without it,
//! the client can only fall back to the timeout. Either way it reconnects
//! and reports every step exactly once.
#![cfg(feature = "quic")]

mod common;
mod quic_support;

use common::process::{serve_child_main, ServerProcess};
use common::*;
use quic_support::*;
use std::time::{Duration, Instant};
use tether_core::liveness::HeartbeatConfig;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, ClientConfig};
use tether_transports::endpoint::TransportOptions;
use tether_transports::quic::{QuicConnector, QuicServerOptions};

const CERT_ENV: &str = "TETHER_QUIC_CERT";
const KEY_ENV: &str = "TETHER_QUIC_KEY";
const RESET_KEY_ENV: &str = "TETHER_QUIC_RESET_KEY";

/// The QUIC idle timeout of the client: long, so that a fast detection can
/// only come from the stateless reset.
const IDLE: Duration = Duration::from_secs(5);

#[test]
#[ignore = "child-process entry point, started by the tests in this file"]
fn serve_child() {
    let (Ok(cert), Ok(key)) = (std::env::var(CERT_ENV), std::env::var(KEY_ENV)) else {
        return;
    };
    let mut server = QuicServerOptions::new(cert, key);
    if let Ok(path) = std::env::var(RESET_KEY_ENV) {
        server = server.with_reset_key_file(path);
    }
    serve_child_main(TransportOptions {
        quic_server: server,
        ..TransportOptions::default()
    });
}

fn env(certs: &TestCerts, reset_key: Option<&std::path::Path>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (CERT_ENV, certs.cert.display().to_string()),
        (KEY_ENV, certs.key.display().to_string()),
    ];
    if let Some(path) = reset_key {
        env.push((RESET_KEY_ENV, path.display().to_string()));
    }
    env
}

/// The client's heartbeat bound (7 s) is above the QUIC idle timeout, so a
/// silent server is noticed by the idle timeout first.
fn client_config() -> ClientConfig {
    ClientConfig {
        heartbeat: HeartbeatConfig::new(Duration::from_millis(500), Duration::from_secs(3), 2),
        ..fast_client()
    }
}

/// Kills and restarts the server; returns the reason of the client's
/// disconnect and how long after the kill it was reported.
async fn restart_and_detect(reset_key: Option<&std::path::Path>) -> (DisconnectReason, Duration) {
    let certs = TestCerts::new("s0");
    let key_path = reset_key.map(|name| certs.path(&name.display().to_string()));
    let server = ServerProcess::start("quic://127.0.0.1:0", &env(&certs, key_path.as_deref()));
    let port = server.port;
    let options = certs.client(liveness(Duration::from_millis(250), IDLE));
    let mut client = Client::spawn(
        QuicConnector::new("127.0.0.1", port, &options).unwrap(),
        client_config(),
    )
    .unwrap();
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    echo(&mut client, &mut seen, b"before").await;

    let killed = Instant::now();
    server.kill();
    let url = format!("quic://127.0.0.1:{port}");
    let _server = ServerProcess::start(&url, &env(&certs, key_path.as_deref()));
    let lost = wait_lifecycle(&mut client, &mut seen, Duration::from_secs(15), |e| {
        matches!(e, Lifecycle::Disconnected { .. })
    })
    .await;
    let detected = killed.elapsed();
    let Lifecycle::Disconnected { generation, reason } = lost else {
        unreachable!()
    };
    assert_eq!(generation, 1);

    let back = wait_lifecycle(&mut client, &mut seen, Duration::from_secs(15), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    assert!(
        matches!(back, Lifecycle::Connected { generation: 2, .. }),
        "{back:?}"
    );
    echo(&mut client, &mut seen, b"after").await;
    drain_lifecycle(&mut client, &mut seen, Duration::from_millis(300)).await;

    // Exactly once each: connecting, connected, disconnected, (failed
    // attempts and waits), connected again; nothing after it.
    assert_each_disconnect_once(&seen);
    let count = |name: &str| seen.iter().filter(|e| e.name() == name).count();
    assert_eq!(count("disconnected"), 1, "{seen:?}");
    assert_eq!(count("connected"), 2, "{seen:?}");
    assert_eq!(seen.last().map(|e| e.name()), Some("connected"), "{seen:?}");
    client.close();
    eprintln!(
        "QUIC S0 ({}): detected {reason} after {detected:?}",
        if reset_key.is_some() {
            "persisted reset key"
        } else {
            "random reset key"
        }
    );
    (reason, detected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_server_resets_the_client_at_once_with_a_persisted_key() {
    let (reason, detected) = restart_and_detect(Some(std::path::Path::new("reset.key"))).await;
    assert_eq!(reason, DisconnectReason::Reset);
    assert!(
        detected < Duration::from_secs(3),
        "reset took {detected:?} (idle timeout {IDLE:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_persisted_key_only_the_idle_timeout_notices() {
    let (reason, detected) = restart_and_detect(None).await;
    assert_eq!(reason, DisconnectReason::Timeout);
    // The idle timer counts from the last packet received before the kill
    // (at most a keep-alive interval earlier).
    assert!(
        detected >= IDLE - Duration::from_secs(1),
        "timeout after only {detected:?} (idle timeout {IDLE:?})"
    );
}
