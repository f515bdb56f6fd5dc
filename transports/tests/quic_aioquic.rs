//! Our QUIC client against a QUIC stack that is not ours: an aioquic echo
//! server (tests/peers/aioquic_echo.py, `python3 -m pip install aioquic`).
//! Messages round-trip as datagrams; the Python server is then killed and
//! restarted on the same port, and the client notices within its bound
//! (aioquic sends no stateless reset, so by timeout), reconnects, and
//! reports each step exactly once. Skipped, with the reason printed, when
//! aioquic cannot be imported.
#![cfg(feature = "quic")]

mod common;
mod quic_support;

use common::*;
use quic_support::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tether_core::liveness::HeartbeatConfig;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, ClientConfig};
use tether_transports::quic::{QuicConnector, QuicLiveness};

/// Why aioquic cannot be used here, if it cannot.
fn aioquic_missing() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import aioquic"])
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Some(format!("cannot run python3: {e}")),
    }
}

/// The Python echo server, killed on drop.
struct PyServer {
    child: Child,
    port: u16,
}

impl PyServer {
    fn start(certs: &TestCerts, port: u16) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/aioquic_echo.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--cert")
            .arg(&certs.cert)
            .arg("--key")
            .arg(&certs.key)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("aioquic server exited before READY")
                .expect("read aioquic stdout");
            if let Some(port) = line.strip_prefix("READY ") {
                break port.trim().parse().expect("port number");
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, port }
    }

    /// SIGKILL: all connection state is gone.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Heartbeat 200 ms / 300 ms / 2 misses: dead within 800 ms of silence;
/// QUIC keep-alive and idle timeout mapped from it.
fn heartbeat() -> HeartbeatConfig {
    HeartbeatConfig::new(Duration::from_millis(200), Duration::from_millis(300), 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioquic_echo_peer_round_trips_and_restart_is_survived() {
    if let Some(why) = aioquic_missing() {
        eprintln!("SKIPPED: aioquic is not importable ({why}); python3 -m pip install aioquic");
        return;
    }
    let certs = TestCerts::new("aioquic");
    let server = PyServer::start(&certs, 0);
    let port = server.port;
    let bound = heartbeat().detection_bound();
    let connector = QuicConnector::new(
        "127.0.0.1",
        port,
        &certs.client(QuicLiveness::from_heartbeat(&heartbeat())),
    )
    .unwrap();
    let stats = connector.clone();
    let config = ClientConfig {
        heartbeat: heartbeat(),
        ..fast_client()
    };
    let mut client = Client::spawn(connector, config).unwrap();
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    for i in 0..10u32 {
        echo(
            &mut client,
            &mut seen,
            format!("hello aioquic {i}").as_bytes(),
        )
        .await;
    }
    // Quiet for several detection bounds: our pings come back echoed and
    // count as traffic, so the connection stays up.
    drain_lifecycle(&mut client, &mut seen, bound * 4).await;
    echo(&mut client, &mut seen, b"still here").await;
    assert_eq!(names(&seen), ["connecting", "connected"], "{seen:?}");

    let killed = Instant::now();
    server.kill();
    let _server = PyServer::start(&certs, port);
    let lost = wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Disconnected { .. })
    })
    .await;
    let detected = killed.elapsed();
    eprintln!("aioquic restart: client reported {lost:?} after {detected:?} (bound {bound:?})");
    assert!(
        matches!(
            lost,
            Lifecycle::Disconnected {
                generation: 1,
                reason: DisconnectReason::Timeout | DisconnectReason::Reset
            }
        ),
        "{lost:?}"
    );
    // The bound counts from the last packet before the kill; the restart
    // itself (a Python start) runs concurrently with it.
    assert!(
        detected < bound + Duration::from_secs(3),
        "detected after {detected:?}, bound {bound:?}"
    );

    let back = wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    assert!(
        matches!(back, Lifecycle::Connected { generation: 2, .. }),
        "{back:?}"
    );
    echo(&mut client, &mut seen, b"after restart").await;
    drain_lifecycle(&mut client, &mut seen, Duration::from_millis(300)).await;
    assert_each_disconnect_once(&seen);
    let count = |name: &str| seen.iter().filter(|e| e.name() == name).count();
    assert_eq!(count("disconnected"), 1, "{seen:?}");
    assert_eq!(count("connected"), 2, "{seen:?}");
    assert_eq!(seen.last().map(|e| e.name()), Some("connected"), "{seen:?}");
    // aioquic issues no tickets to us by default: full handshakes only.
    assert_eq!(stats.stats().full_handshakes, 2, "{:?}", stats.stats());
    client.close();
}
