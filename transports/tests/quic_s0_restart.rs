//! Scenario S0 on QUIC: the server process is SIGKILLed and started again
//! on the same port. With the stateless-reset key persisted in a file, the
//! restarted server answers the client's next packet with a stateless reset
//! and the client reports `Reset` long before its idle timeout; without it,
//! the client can only fall back to the timeout. Either way it reconnects
//! and reports every step exactly once.
#![cfg(feature = "quic")]

mod common;
mod quic_support;

use common::process::{serve_child_main, ChildConfig, ServerProcess};
use common::s0::{Lost, Proof, Restart, S0};
use common::*;
use quic_support::{liveness, Pki};
use std::time::Duration;
use tether_core::liveness::HeartbeatConfig;
use tether_core::DisconnectReason;
use tether_transports::driver::ClientConfig;
use tether_transports::quic::QuicConnector;

/// The QUIC idle timeout of the client: long, so that a fast detection can
/// only come from the stateless reset.
const IDLE: Duration = Duration::from_secs(5);

#[test]
#[ignore = "child-process entry point, started by the tests in this file"]
fn serve_child() {
    serve_child_main();
}

/// The client's heartbeat bound (7 s) is above the QUIC idle timeout, so a
/// silent server is noticed by the idle timeout first.
fn client_config() -> ClientConfig {
    ClientConfig {
        heartbeat: HeartbeatConfig::new(Duration::from_millis(500), Duration::from_secs(3), 2),
        ..fast_client()
    }
}

/// Kills and restarts the server (with the reset key in a file when
/// `persist_reset_key`); returns how the client noticed.
async fn restart_and_detect(persist_reset_key: bool) -> Lost {
    let pki = Pki::generate();
    let child = ChildConfig {
        cert: Some((pki.server_cert.clone(), pki.server_key.clone())),
        quic_reset_key: persist_reset_key.then(|| pki.path("reset.key")),
        ..ChildConfig::default()
    };
    let start = |port: u16| ServerProcess::start(&format!("quic://127.0.0.1:{port}"), &child);
    let server = start(0);
    let options = pki.quic_client(liveness(Duration::from_millis(250), IDLE));
    let connector = QuicConnector::new("127.0.0.1", server.port, &options).unwrap();
    let mut s0 = S0::connect(server, Proof::Echo, connector, client_config()).await;
    let lost = s0
        .kill_and_restart(Restart::AtOnce, Duration::from_secs(15), start)
        .await;
    s0.recover().await;
    eprintln!(
        "QUIC S0 ({}): detected {} after {:?}",
        if persist_reset_key {
            "persisted reset key"
        } else {
            "random reset key"
        },
        lost.reason,
        lost.took
    );
    lost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_server_resets_the_client_at_once_with_a_persisted_key() {
    let lost = restart_and_detect(true).await;
    assert_eq!(lost.reason, DisconnectReason::Reset);
    assert!(
        lost.took < Duration::from_secs(3),
        "reset took {:?} (idle timeout {IDLE:?})",
        lost.took
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_persisted_key_only_the_idle_timeout_notices() {
    let lost = restart_and_detect(false).await;
    assert_eq!(lost.reason, DisconnectReason::Timeout);
    // The idle timer counts from the last packet received before the kill
    // (at most a keep-alive interval earlier).
    assert!(
        lost.took >= IDLE - Duration::from_secs(1),
        "timeout after only {:?} (idle timeout {IDLE:?})",
        lost.took
    );
}
