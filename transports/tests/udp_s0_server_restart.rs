//! Scenario S0 on UDP: the server process is SIGKILLed and started again on
//! the same port. It has lost every session, so it answers the client's
//! next packet with a verifiable "unknown session" signal: the client ends
//! the link with `Reset` far sooner than its heartbeat would, reconnects and
//! reports each step exactly once. A server that comes back with another
//! static key cannot prove anything, so the client falls back to the
//! heartbeat timeout.
#![cfg(feature = "udp")]

mod common;

use bytes::Bytes;
use common::process::{serve_child_main, ServerProcess};
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tether_core::liveness::HeartbeatConfig;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, ClientConfig, ClientEvent};
use tether_transports::endpoint::TransportOptions;
use tether_transports::udp::{StaticKey, UdpConnector, UdpOptions, UdpStats};

const PSK: &[u8; 32] = b"tether s0 udp pre-shared key 32b";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The child reads its PSK and static key path from the environment.
#[test]
#[ignore = "child-process entry point, started by the tests in this file"]
fn serve_child() {
    let (Ok(psk), Ok(key)) = (
        std::env::var("TETHER_UDP_PSK"),
        std::env::var("TETHER_UDP_KEY"),
    ) else {
        return;
    };
    serve_child_main(TransportOptions {
        udp: UdpOptions {
            static_key: StaticKey::File(key.into()),
            ..UdpOptions::with_psk(unhex(&psk))
        },
        ..TransportOptions::default()
    });
}

fn start_server(port: u16, key: &Path) -> ServerProcess {
    ServerProcess::start(
        &format!("udp://127.0.0.1:{port}"),
        &[
            ("TETHER_UDP_PSK", hex(PSK)),
            ("TETHER_UDP_KEY", key.display().to_string()),
        ],
    )
}

/// A fresh directory for static key files.
fn key_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "tether-udp-s0-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn client(port: u16, heartbeat: HeartbeatConfig) -> (Client, std::sync::Arc<UdpStats>) {
    let options = UdpOptions {
        probe_interval: Duration::from_millis(100),
        handshake_timeout: Duration::from_secs(2),
        ..UdpOptions::with_psk(PSK.to_vec())
    };
    let connector = UdpConnector::new("127.0.0.1", port, options).unwrap();
    let stats = connector.stats();
    let config = ClientConfig {
        heartbeat,
        ..fast_client()
    };
    (Client::spawn(connector, config).unwrap(), stats)
}

async fn echo(client: &mut Client, seen: &mut Vec<Lifecycle>, msg: &'static [u8]) {
    client.handle().send(Bytes::from_static(msg)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, client.next_event()).await {
            Ok(Some(ClientEvent::Message(m))) if m == msg => return,
            Ok(Some(ClientEvent::Lifecycle(step))) => seen.push(step),
            Ok(Some(_)) => {}
            other => panic!("no echo of {msg:?}: {other:?}; events {seen:?}"),
        }
    }
}

/// Kills the server, restarts it on the same port with `new_key`, and
/// returns the reason and the time from the kill to the client's
/// `Disconnected`.
async fn kill_and_restart(
    server: ServerProcess,
    new_key: &Path,
    client: &mut Client,
    seen: &mut Vec<Lifecycle>,
    limit: Duration,
) -> (DisconnectReason, Duration, ServerProcess) {
    let port = server.port;
    let killed = Instant::now();
    server.kill();
    let restarted = start_server(port, new_key);
    let lost = wait_lifecycle(client, seen, limit, |e| {
        matches!(e, Lifecycle::Disconnected { .. })
    })
    .await;
    let Lifecycle::Disconnected { generation, reason } = lost else {
        unreachable!()
    };
    assert_eq!(generation, 1);
    (reason, killed.elapsed(), restarted)
}

/// Connecting, Connected, Disconnected, Waiting, Connecting, Connected:
/// each exactly once, in this order.
fn assert_one_clean_cycle(seen: &[Lifecycle], reason: DisconnectReason) {
    let steps: Vec<String> = seen
        .iter()
        .map(|e| match e {
            Lifecycle::Connecting { generation, .. } => format!("connecting {generation}"),
            Lifecycle::Connected { generation, .. } => format!("connected {generation}"),
            Lifecycle::Disconnected { generation, reason } => {
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
            format!("disconnected 1 {reason}"),
            "waiting".to_string(),
            "connecting 2".to_string(),
            "connected 2".to_string(),
        ],
        "{seen:?}"
    );
    assert_each_disconnect_once(seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_is_detected_by_the_verified_unknown_session_signal() {
    let dir = key_dir("same");
    let key = dir.join("static.key");
    let server = start_server(0, &key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "static key file mode {mode:o}");
    }
    // A long heartbeat timeout: only the signal can be this fast.
    let heartbeat = HeartbeatConfig::new(Duration::from_millis(300), Duration::from_secs(5), 2);
    let bound = heartbeat.detection_bound();
    let (mut client, stats) = client(server.port, heartbeat);
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    echo(&mut client, &mut seen, b"before").await;

    let (reason, took, _server) =
        kill_and_restart(server, &key, &mut client, &mut seen, bound).await;
    eprintln!("S0/udp: restart detected after {took:?} via {reason} (heartbeat bound {bound:?})");
    assert_eq!(reason, DisconnectReason::Reset);
    assert!(
        took < bound / 5,
        "detection took {took:?}, heartbeat bound {bound:?}"
    );
    assert_eq!(stats.resets_accepted(), 1);

    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    echo(&mut client, &mut seen, b"after").await;
    drain_lifecycle(&mut client, &mut seen, Duration::from_millis(300)).await;
    assert_one_clean_cycle(&seen, DisconnectReason::Reset);
    client.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_another_static_key_falls_back_to_timeout() {
    let dir = key_dir("other");
    let server = start_server(0, &dir.join("first.key"));
    let heartbeat = HeartbeatConfig::new(Duration::from_millis(200), Duration::from_millis(400), 2);
    let bound = heartbeat.detection_bound();
    let (mut client, stats) = client(server.port, heartbeat);
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    echo(&mut client, &mut seen, b"before").await;

    let slack = Duration::from_millis(1500);
    let (reason, took, _server) = kill_and_restart(
        server,
        &dir.join("second.key"),
        &mut client,
        &mut seen,
        bound + slack,
    )
    .await;
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

    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    echo(&mut client, &mut seen, b"after").await;
    drain_lifecycle(&mut client, &mut seen, Duration::from_millis(300)).await;
    assert_one_clean_cycle(&seen, DisconnectReason::Timeout);
    client.close();
    let _ = std::fs::remove_dir_all(&dir);
}
