//! Scenario S0's "resume the session" on TLS: the connector keeps its
//! rustls session cache across reconnects, so every reconnect after the
//! first connection is an abbreviated (resumed) TLS 1.3 handshake, not
//! just the first one.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use bytes::Bytes;
use common::*;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, Server, ServerConfig, ServerEvent};
use tls_support::Pki;

/// Sends `msg`, lets the server echo it, and returns the server's id for
/// this connection. Reading the echo also guarantees the client has read
/// the session tickets the server sent after the handshake.
async fn round_trip(
    client: &mut Client,
    server: &mut Server,
    seen: &mut Vec<Lifecycle>,
    msg: &'static [u8],
) -> tether_core::registry::ConnId {
    client.handle().send(Bytes::from_static(msg)).await.unwrap();
    let mut server_seen = vec![];
    let ServerEvent::Message { id, data } =
        wait_for(server, &mut server_seen, Duration::from_secs(5), |e| {
            matches!(e, ServerEvent::Message { .. })
        })
        .await
    else {
        unreachable!()
    };
    server.send(id, data).await.unwrap();
    expect_message(client, seen, msg).await;
    id
}

#[tokio::test]
async fn every_reconnect_resumes_the_tls_session() {
    let pki = Pki::generate();
    let acceptor = pki.acceptor(&pki.server_options()).await;
    let server_counters = acceptor.counters();
    let mut server = Server::spawn(acceptor, ServerConfig::default()).unwrap();
    let connector = pki.connector(server.local_addr().port(), &pki.client_options());
    let counters = connector.counters();
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;

    const CYCLES: u64 = 3;
    for _ in 0..CYCLES {
        let id = round_trip(&mut client, &mut server, &mut seen, b"hello").await;
        // The server ends the connection; the client reconnects.
        server.close(id).unwrap();
        wait_for(&mut client, &mut seen, Duration::from_secs(5), |e| {
            matches!(
                e,
                Lifecycle::Disconnected {
                    reason: DisconnectReason::PeerClosed,
                    ..
                }
            )
        })
        .await;
        wait_connected(&mut client, &mut seen).await;
    }
    round_trip(&mut client, &mut server, &mut seen, b"resumed").await;

    let stats = counters.snapshot();
    assert_eq!(stats.full_handshakes, 1, "{stats:?}");
    assert_eq!(stats.resumed_handshakes, CYCLES, "{stats:?}");
    assert_eq!(stats.failed_handshakes, 0, "{stats:?}");
    let server_stats = server_counters.snapshot();
    assert_eq!(server_stats.resumed_handshakes, CYCLES, "{server_stats:?}");
    assert_exactly_once(&seen);
    client.close();
}

#[tokio::test]
async fn a_server_without_resumption_gets_full_handshakes() {
    let pki = Pki::generate();
    let mut options = pki.server_options();
    options.session_resumption = false;
    let mut server = Server::spawn(pki.acceptor(&options).await, ServerConfig::default()).unwrap();
    let connector = pki.connector(server.local_addr().port(), &pki.client_options());
    let counters = connector.counters();
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    let id = round_trip(&mut client, &mut server, &mut seen, b"one").await;
    server.close(id).unwrap();
    assert_eq!(wait_connected(&mut client, &mut seen).await, 2, "{seen:?}");
    round_trip(&mut client, &mut server, &mut seen, b"two").await;
    let stats = counters.snapshot();
    assert_eq!((stats.full_handshakes, stats.resumed_handshakes), (2, 0));
    client.close();
}
