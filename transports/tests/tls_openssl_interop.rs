//! Our TLS client against a TLS server that is not ours: `openssl s_server`.
//! The client connects (handshake, certificate verification, data written
//! inside TLS), notices when s_server is killed, reports it once, and
//! reconnects when s_server is started again on the same port.
//!
//! Skipped (with a message) when the `openssl` command is missing; CI
//! installs the `openssl` package.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use bytes::Bytes;
use common::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tether_core::liveness::HeartbeatConfig;
use tether_core::supervisor::Lifecycle;
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

/// A running `openssl s_server`; killed on drop.
struct SServer {
    child: Child,
    port: u16,
    /// Everything s_server printed after its ACCEPT line (it prints the
    /// application data it receives).
    output: Arc<Mutex<Vec<u8>>>,
}

impl SServer {
    /// Starts s_server on `port` (0: the kernel picks one; s_server prints
    /// it) and waits until it listens.
    fn start(pki: &Pki, port: u16) -> Self {
        let mut child = Command::new("openssl")
            .arg("s_server")
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&pki.server_cert)
            .arg("-key")
            .arg(&pki.server_key)
            .args(["-tls1_3", "-ign_eof"])
            // Keep stdin open: s_server sends what it reads there.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_server");
        // Read s_server's output on a thread: it prints "ACCEPT" (with the
        // address when the port was 0) once it listens, then the data it
        // receives. The wait for ACCEPT is bounded.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match stdout.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                // "ACCEPT" or "ACCEPT 127.0.0.1:PORT"
                if let Some(rest) = line.trim().strip_prefix("ACCEPT") {
                    let bound = rest.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
                    let _ = ready_tx.send(bound.unwrap_or(port));
                    break;
                }
            }
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let port = match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("openssl s_server did not start listening on port {port}");
            }
        };
        assert_ne!(port, 0, "s_server did not say which port it bound");
        Self {
            child,
            port,
            output,
        }
    }

    fn received(&self, needle: &[u8]) -> bool {
        let out = self.output.lock().unwrap();
        out.windows(needle.len()).any(|w| w == needle)
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_received(server: &SServer, needle: &[u8]) {
    for _ in 0..100 {
        if server.received(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("s_server never printed {needle:?}");
}

#[tokio::test]
async fn our_client_against_openssl_s_server_survives_its_restart() {
    if !have_openssl() {
        eprintln!("skipped: the openssl command is not installed");
        return;
    }
    let pki = Pki::generate();
    let server = SServer::start(&pki, 0);
    let port = server.port;
    // s_server does not speak tether, so it never answers our pings: a
    // long heartbeat keeps the liveness rule out of the way, and the end
    // of the connection is what we observe.
    let mut config = fast_client();
    config.heartbeat = HeartbeatConfig::new(Duration::from_secs(60), Duration::from_secs(10), 2);
    let connector = pki.connector(port, &pki.client_options());
    let counters = connector.counters();
    let mut client = tether_transports::driver::Client::spawn(connector, config).unwrap();
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    assert_eq!(counters.snapshot().full_handshakes, 1);
    // Application data crosses TLS: s_server prints what it decrypts.
    client
        .handle()
        .send(Bytes::from_static(b"hello-openssl"))
        .await
        .unwrap();
    wait_received(&server, b"hello-openssl").await;

    server.kill();
    let lost = wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Disconnected { .. })
    })
    .await;
    // Killed without close_notify: truncation (or RST), abrupt either way.
    assert_eq!(
        lost,
        Lifecycle::Disconnected {
            generation: 1,
            reason: DisconnectReason::Reset
        },
        "{seen:?}"
    );
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(
            e,
            Lifecycle::ConnectFailed {
                reason: DisconnectReason::ConnectRefused,
                ..
            }
        )
    })
    .await;

    let server = SServer::start(&pki, port);
    assert_eq!(server.port, port);
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    client
        .handle()
        .send(Bytes::from_static(b"after-restart"))
        .await
        .unwrap();
    wait_received(&server, b"after-restart").await;
    drain_lifecycle(&mut client, &mut seen, Duration::from_millis(200)).await;

    assert_each_disconnect_once(&seen);
    let disconnects = seen
        .iter()
        .filter(|e| matches!(e, Lifecycle::Disconnected { .. }))
        .count();
    assert_eq!(disconnects, 1, "{seen:?}");
    client.close();
}
