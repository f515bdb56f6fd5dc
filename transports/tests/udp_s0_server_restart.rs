//! Scenario S0 on UDP: the server process is SIGKILLed and started again on
//! the same port. It has lost every session, so it answers the client's
//! next packet with a verifiable "unknown session" signal: the client ends
//! the link with `Reset` far sooner than its heartbeat would, reconnects and
//! reports each step exactly once. A server that comes back with another
//! static key cannot prove anything, so the client falls back to the
//! heartbeat timeout.
#![cfg(feature = "udp")]

mod common;

use common::process::{serve_child_main, ChildConfig, ServerProcess};
use common::s0::{Lost, Proof, Restart, S0};
use common::scratch::ScratchDir;
use common::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tether_core::liveness::HeartbeatConfig;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::ClientConfig;
use tether_transports::udp::{UdpConnector, UdpOptions, UdpStats};

const PSK: &[u8; 32] = b"tether s0 udp pre-shared key 32b";

#[test]
#[ignore = "child-process entry point, started by the tests in this file"]
fn serve_child() {
    serve_child_main();
}

/// A UDP server process on `port` whose static key is in the file `key`.
fn start_server(port: u16, key: PathBuf) -> ServerProcess {
    let child = ChildConfig {
        udp: Some((PSK.to_vec(), key)),
        ..ChildConfig::default()
    };
    ServerProcess::start(&format!("udp://127.0.0.1:{port}"), &child)
}

/// Connects to `server` with `heartbeat`.
async fn connect(server: ServerProcess, heartbeat: HeartbeatConfig) -> (S0, Arc<UdpStats>) {
    let options = UdpOptions {
        probe_interval: Duration::from_millis(100),
        handshake_timeout: Some(Duration::from_secs(2)),
        ..UdpOptions::with_psk(PSK.to_vec())
    };
    let connector = UdpConnector::new("127.0.0.1", server.port, options).unwrap();
    let stats = connector.stats();
    let config = ClientConfig {
        heartbeat,
        ..fast_client()
    };
    let s0 = S0::connect(server, Proof::Echo, connector, config).await;
    (s0, stats)
}

/// Recovers, then checks the steps: Connecting, Connected, Disconnected,
/// Waiting, Connecting, Connected, each exactly once, in this order.
async fn recover_in_one_clean_cycle(s0: S0, lost: Lost) {
    let seen = s0.recover().await;
    let steps: Vec<String> = seen
        .iter()
        .map(|e| match e {
            Lifecycle::Connecting { generation, .. } => format!("connecting {generation}"),
            Lifecycle::Connected { generation, .. } => format!("connected {generation}"),
            Lifecycle::Disconnected {
                generation, reason, ..
            } => {
                format!("disconnected {generation} {reason}")
            }
            Lifecycle::Waiting { .. } => "waiting".to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        steps,
        [
            "connecting 1".to_string(),
            "connected 1".to_string(),
            format!("disconnected 1 {}", lost.reason),
            "waiting".to_string(),
            "connecting 2".to_string(),
            "connected 2".to_string(),
        ],
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_is_detected_by_the_verified_unknown_session_signal() {
    let dir = ScratchDir::new("udp-s0-same");
    let key = dir.join("static.key");
    let server = start_server(0, key.clone());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "static key file mode {mode:o}");
    }
    // A long heartbeat timeout: only the signal can be this fast.
    let heartbeat = HeartbeatConfig::new(Duration::from_millis(300), Duration::from_secs(5), 2);
    let bound = heartbeat.detection_bound();
    let (mut s0, stats) = connect(server, heartbeat).await;

    let lost = s0
        .kill_and_restart(Restart::AtOnce, bound, |port| start_server(port, key))
        .await;
    let (reason, took) = (lost.reason, lost.took);
    eprintln!("S0/udp: restart detected after {took:?} via {reason} (heartbeat bound {bound:?})");
    assert_eq!(reason, DisconnectReason::Reset);
    assert!(
        took < bound / 5,
        "detection took {took:?}, heartbeat bound {bound:?}"
    );
    assert_eq!(stats.resets_accepted(), 1);
    recover_in_one_clean_cycle(s0, lost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_another_static_key_falls_back_to_timeout() {
    let dir = ScratchDir::new("udp-s0-other");
    let server = start_server(0, dir.join("first.key"));
    let heartbeat = HeartbeatConfig::new(Duration::from_millis(200), Duration::from_millis(400), 2);
    let bound = heartbeat.detection_bound();
    let (mut s0, stats) = connect(server, heartbeat).await;

    let slack = Duration::from_millis(1500);
    let lost = s0
        .kill_and_restart(Restart::AtOnce, bound + slack, |port| {
            start_server(port, dir.join("second.key"))
        })
        .await;
    let (reason, took) = (lost.reason, lost.took);
    eprintln!("S0/udp other key: detected after {took:?} via {reason} (heartbeat bound {bound:?})");
    assert_eq!(reason, DisconnectReason::Timeout);
    assert!(
        took >= bound / 2,
        "{took:?} is too soon for a timeout of {bound:?}"
    );
    // The new server did answer "unknown session", with a token the client
    // could not verify.
    assert!(stats.resets_ignored() >= 1, "{}", stats.resets_ignored());
    assert_eq!(stats.resets_accepted(), 0);
    recover_in_one_clean_cycle(s0, lost).await;
}
