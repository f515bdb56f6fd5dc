//! Scenario S0 on TLS: the server process is SIGKILLed and started again on
//! the same port. The client sees the TLS connection truncated (`Reset`),
//! backs off while the port refuses, reconnects with a fresh handshake (the
//! new process has new ticket keys, so resumption falls back to a full
//! handshake), reports each step exactly once, and its queued messages get
//! through.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use bytes::Bytes;
use common::process::{serve_child_main, ServerProcess};
use common::*;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, ClientEvent};
use tether_transports::endpoint::TransportOptions;
use tether_transports::tls::TlsServerOptions;
use tls_support::Pki;

const CERT_ENV: &str = "TETHER_TEST_TLS_CERT";
const KEY_ENV: &str = "TETHER_TEST_TLS_KEY";

#[test]
#[ignore = "child-process entry point, started by the tests in this file"]
fn serve_child() {
    let mut options = TransportOptions::default();
    if let (Ok(cert), Ok(key)) = (std::env::var(CERT_ENV), std::env::var(KEY_ENV)) {
        options.tls_server = TlsServerOptions::new(cert, key);
    }
    serve_child_main(options);
}

fn start(pki: &Pki, port: u16) -> ServerProcess {
    ServerProcess::start(
        &format!("tls://127.0.0.1:{port}"),
        &[
            (CERT_ENV, pki.server_cert.display().to_string()),
            (KEY_ENV, pki.server_key.display().to_string()),
        ],
    )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_recovers_after_server_is_killed_and_restarted() {
    let pki = Pki::generate();
    let server = start(&pki, 0);
    let port = server.port;
    let connector = pki.connector(port, &pki.client_options());
    let counters = connector.counters();
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    echo(&mut client, &mut seen, b"before").await;

    server.kill();
    let lost = wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Disconnected { .. })
    })
    .await;
    // The dead process's kernel closes TCP under the TLS layer without a
    // close_notify: a truncation, reported as an abrupt end.
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
    client
        .handle()
        .send(Bytes::from_static(b"while down"))
        .await
        .unwrap();

    let _server = start(&pki, port);
    let back = wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    let Lifecycle::Connected { generation, .. } = back else {
        unreachable!()
    };
    assert!(generation >= 2);
    echo(&mut client, &mut seen, b"while down").await;
    echo(&mut client, &mut seen, b"after").await;
    drain_lifecycle(&mut client, &mut seen, Duration::from_millis(200)).await;

    // Exactly once: one Connected per successful generation, one
    // Disconnected (only generation 1 ended), waits between attempts.
    assert_each_disconnect_once(&seen);
    let disconnects = seen
        .iter()
        .filter(|e| matches!(e, Lifecycle::Disconnected { .. }))
        .count();
    assert_eq!(disconnects, 1, "{seen:?}");
    let mut connected = std::collections::HashSet::new();
    for e in &seen {
        if let Lifecycle::Connected { generation, .. } = e {
            assert!(connected.insert(*generation), "twice: {seen:?}");
        }
    }
    let waits: Vec<Duration> = seen
        .iter()
        .filter_map(|e| match e {
            Lifecycle::Waiting { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert!(!waits.is_empty());
    assert!(
        waits.iter().all(|d| *d <= Duration::from_millis(200)),
        "{waits:?}"
    );
    // The restarted process cannot know the old tickets: full handshake.
    let stats = counters.snapshot();
    assert_eq!(stats.full_handshakes, 2, "{stats:?}");
    client.close();
}
