//! Our TLS client against a TLS server that is not ours: `openssl s_server`.
//! Scenario S0 with it: the client connects (handshake, certificate
//! verification, data written inside TLS), notices when s_server is killed,
//! reports it once, and reconnects when s_server is started again on the
//! same port; a message queued while it was down reaches the new one.
//!
//! Skipped (with a message) when the `openssl` command is missing; CI
//! installs the `openssl` package.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use common::process::ServerProcess;
use common::s0::{Proof, Restart, S0};
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;
use tether_core::liveness::HeartbeatConfig;
use tether_core::DisconnectReason;
use tls_support::Pki;

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `openssl s_server` on `port` (0: the kernel picks one; s_server
/// prints it) and waits until it listens. It prints the application data it
/// decrypts, which is how the test sees our messages arrive.
fn s_server(pki: &Pki, port: u16) -> ServerProcess {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_server")
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&pki.server_cert)
        .arg("-key")
        .arg(&pki.server_key)
        .args(["-tls1_3", "-ign_eof"])
        // Keep stdin open: s_server sends what it reads there.
        .stdin(Stdio::piped())
        .stderr(Stdio::null());
    // "ACCEPT" or "ACCEPT 127.0.0.1:PORT" once it listens.
    ServerProcess::spawn(cmd, move |line| {
        let rest = line.trim().strip_prefix("ACCEPT")?;
        Some(
            rest.rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(port),
        )
    })
}

#[tokio::test]
async fn our_client_against_openssl_s_server_survives_its_restart() {
    if !have_openssl() {
        eprintln!("skipped: the openssl command is not installed");
        return;
    }
    let pki = Pki::generate();
    let server = s_server(&pki, 0);
    // s_server does not speak tether, so it never answers our pings: a
    // long heartbeat keeps the liveness rule out of the way, and the end
    // of the connection is what we observe; nor does it answer a hello,
    // so the client skips the opening exchange (a plain server).
    let mut config = fast_client();
    config.opening = tether_core::connection::Opening::Raw;
    config.heartbeat = HeartbeatConfig::new(Duration::from_secs(60), Duration::from_secs(10), 2);
    let connector = pki.connector(server.port, &pki.client_options());
    let counters = connector.counters();
    let mut s0 = S0::connect(server, Proof::Printed, connector, config).await;
    assert_eq!(counters.snapshot().full_handshakes, 1);

    let lost = s0
        .kill_and_restart(Restart::AfterRefusal, Duration::from_secs(5), |port| {
            s_server(&pki, port)
        })
        .await;
    // Killed without close_notify: truncation (or RST), abrupt either way.
    assert_eq!(lost.reason, DisconnectReason::Reset, "{:?}", s0.seen);
    s0.recover().await;
}
