//! Scenario S0 on TLS: the server process is SIGKILLed and started again on
//! the same port. The client sees the TLS connection truncated (`Reset`),
//! backs off while the port refuses, reconnects with a fresh handshake (the
//! new process has new ticket keys, so resumption falls back to a full
//! handshake), reports each step exactly once, and its queued messages get
//! through.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use common::process::{serve_child_main, ChildConfig, ServerProcess};
use common::s0::{Proof, Restart, S0};
use common::*;
use std::time::Duration;
use tether_core::DisconnectReason;
use tls_support::Pki;

#[test]
#[ignore = "child-process entry point, started by the tests in this file"]
fn serve_child() {
    serve_child_main();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_recovers_after_server_is_killed_and_restarted() {
    let pki = Pki::generate();
    let child = ChildConfig {
        cert: Some((pki.server_cert.clone(), pki.server_key.clone())),
        ..ChildConfig::default()
    };
    let start = |port: u16| ServerProcess::start(&format!("tls://127.0.0.1:{port}"), &child);
    let server = start(0);
    let connector = pki.connector(server.port, &pki.client_options());
    let counters = connector.counters();
    let mut s0 = S0::connect(server, Proof::Echo, connector, fast_client()).await;
    let lost = s0
        .kill_and_restart(Restart::AfterRefusal, Duration::from_secs(5), start)
        .await;
    // The dead process's kernel closes TCP under the TLS layer without a
    // close_notify: a truncation, reported as an abrupt end.
    assert_eq!(lost.reason, DisconnectReason::Reset, "{:?}", s0.seen);
    s0.recover().await;
    // The restarted process cannot know the old tickets: full handshake.
    let stats = counters.snapshot();
    assert_eq!(stats.full_handshakes, 2, "{stats:?}");
}
