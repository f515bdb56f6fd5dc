//! Our QUIC client against a QUIC stack that is not ours: an aioquic echo
//! server (tests/peers/aioquic_echo.py, `python3 -m pip install aioquic`).
//! Messages round-trip as datagrams; then scenario S0: the Python server is
//! killed and restarted on the same port, and the client notices within its
//! bound (aioquic sends no stateless reset, so by timeout), reconnects, and
//! reports each step exactly once. Skipped, with the reason printed, when
//! aioquic cannot be imported.
#![cfg(feature = "quic")]

mod common;
mod quic_support;

use common::process::ServerProcess;
use common::s0::{Proof, Restart, S0};
use common::*;
use quic_support::Pki;
use std::process::{Command, Stdio};
use std::time::Duration;
use tether_core::liveness::HeartbeatConfig;
use tether_core::DisconnectReason;
use tether_transports::driver::ClientConfig;
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

/// The Python echo server on `port` (0: the kernel picks one).
fn py_server(pki: &Pki, port: u16) -> ServerProcess {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/aioquic_echo.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--cert")
        .arg(&pki.server_cert)
        .arg("--key")
        .arg(&pki.server_key)
        .stderr(Stdio::inherit());
    ServerProcess::spawn(cmd, |line| {
        Some(line.strip_prefix("READY ")?.trim().parse().expect("port"))
    })
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
    let pki = Pki::generate();
    let server = py_server(&pki, 0);
    let bound = heartbeat().detection_bound();
    let options = pki.quic_client(QuicLiveness::from_heartbeat(&heartbeat()));
    let connector = QuicConnector::new("127.0.0.1", server.port, &options).unwrap();
    let stats = connector.clone();
    // An echo peer would send our hello back, not a welcome: no opening.
    let config = ClientConfig {
        heartbeat: heartbeat(),
        opening: tether_core::connection::Opening::Raw,
        ..fast_client()
    };
    let mut s0 = S0::connect(server, Proof::Echo, connector, config).await;
    for i in 0..10u32 {
        s0.prove(format!("hello aioquic {i}").as_bytes()).await;
    }
    // Quiet for several detection bounds: our pings come back echoed and
    // count as traffic, so the connection stays up.
    drain(&mut s0.client, &mut s0.seen, bound * 4).await;
    s0.prove(b"still here").await;
    assert_eq!(
        names(&s0.seen),
        ["connecting", "connected"],
        "{:?}",
        s0.seen
    );

    let lost = s0
        .kill_and_restart(Restart::AtOnce, Duration::from_secs(10), |port| {
            py_server(&pki, port)
        })
        .await;
    eprintln!(
        "aioquic restart: client reported {} after {:?} (bound {bound:?})",
        lost.reason, lost.took
    );
    assert!(
        matches!(
            lost.reason,
            DisconnectReason::Timeout | DisconnectReason::Reset
        ),
        "{lost:?}"
    );
    // The bound counts from the last packet before the kill; the restart
    // itself (a Python start) runs concurrently with it.
    assert!(
        lost.took < bound + Duration::from_secs(3),
        "detected after {:?}, bound {bound:?}",
        lost.took
    );
    s0.recover().await;
    // aioquic issues no tickets to us by default: full handshakes only.
    assert_eq!(stats.stats().full_handshakes, 2, "{:?}", stats.stats());
}
