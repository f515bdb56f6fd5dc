//! QUIC transport end to end, in one process: supervised exchange, a quiet
//! connection that stays up, 0-RTT on reconnect, rebinding to a new socket,
//! oversized messages, and configuration errors.
#![cfg(feature = "quic")]

mod common;
mod quic_support;

use common::*;
use quic_support::{loopback, Pki};
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, Server};
use tether_transports::endpoint::{self, TransportOptions};
use tether_transports::quic::{QuicAcceptor, QuicConnector, QuicLiveness, QuicServerOptions};

/// QUIC liveness mapped from the test heartbeat (100 ms keep-alive, 300 ms
/// idle timeout).
fn fast_liveness() -> QuicLiveness {
    QuicLiveness::from_heartbeat(&fast_heartbeat())
}

async fn start(options: QuicServerOptions) -> EchoServer {
    let acceptor = QuicAcceptor::bind(loopback(), &options.with_liveness(fast_liveness()))
        .await
        .unwrap();
    EchoServer::spawn(Server::spawn(acceptor, fast_server()).unwrap())
}

fn connector(pki: &Pki, server: &EchoServer) -> QuicConnector {
    QuicConnector::new(
        "127.0.0.1",
        server.addr.port(),
        &pki.quic_client(fast_liveness()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_exchange_and_quiet_connection_stays_alive() {
    let pki = Pki::generate();
    let mut server = start(pki.quic_server()).await;
    let mut client = Client::spawn(connector(&pki, &server), fast_client()).unwrap();
    let mut seen = vec![];
    assert_eq!(wait_connected(&mut client, &mut seen).await, 1);
    for i in 0..20u32 {
        echo(&mut client, &mut seen, format!("message {i}").as_bytes()).await;
    }
    // Quiet for 10x the detection bound (300 ms): heartbeats and QUIC
    // keep-alives keep both sides up.
    drain(&mut client, &mut seen, Duration::from_secs(3)).await;
    echo(&mut client, &mut seen, b"still here").await;
    assert_eq!(
        names(&seen),
        ["connecting", "connected"],
        "quiet connection must stay up: {seen:?}"
    );
    let mut server_seen = server.drain();
    assert_eq!(server_accepts(&server_seen), 1, "{server_seen:?}");
    assert_eq!(server_closes(&server_seen), [], "{server_seen:?}");

    // An orderly close from the client is the server's PeerClosed.
    client.close();
    wait_for(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Closed)
    })
    .await;
    let (_, reason) = wait_closed(&mut server, &mut server_seen, Duration::from_secs(5)).await;
    assert_eq!(reason, DisconnectReason::PeerClosed);
    assert_eq!(
        names(&seen),
        ["connecting", "connected", "disconnected", "closed"]
    );
    assert_eq!(
        disconnects(&seen),
        [(1, DisconnectReason::ClosedLocally)],
        "{seen:?}"
    );
}

/// Connects, lets the session ticket arrive, has the server close the
/// connection, and waits for the reconnect. Returns the connector's stats.
async fn reconnect_once(zero_rtt_allowed: bool) -> tether_transports::quic::QuicStats {
    let pki = Pki::generate();
    let mut server = start(pki.quic_server().with_zero_rtt(zero_rtt_allowed)).await;
    let conn = connector(&pki, &server);
    let stats = conn.clone();
    let mut client = Client::spawn(conn, fast_client()).unwrap();
    let mut seen = vec![];
    assert_eq!(wait_connected(&mut client, &mut seen).await, 1);
    echo(&mut client, &mut seen, b"first").await;
    let id = wait_accepted(&mut server, &mut vec![]).await;
    server.close(id);
    let lost = wait_disconnected(&mut client, &mut seen, Duration::from_secs(5)).await;
    assert_eq!(lost, (1, DisconnectReason::PeerClosed));
    assert_eq!(wait_connected(&mut client, &mut seen).await, 2);
    echo(&mut client, &mut seen, b"second").await;
    assert_exactly_once(&seen);
    client.close();
    stats.stats()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_rtt_is_used_on_reconnect_when_the_server_allows_it() {
    let stats = reconnect_once(true).await;
    assert_eq!(stats.full_handshakes, 1, "{stats:?}");
    assert_eq!(stats.zero_rtt_handshakes, 1, "{stats:?}");
    assert_eq!(stats.zero_rtt_rejected, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_zero_rtt_when_the_server_refuses_it() {
    let stats = reconnect_once(false).await;
    assert_eq!(stats.zero_rtt_handshakes, 0, "{stats:?}");
    assert_eq!(stats.full_handshakes, 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebind_keeps_the_connection() {
    let pki = Pki::generate();
    let mut server = start(pki.quic_server()).await;
    let conn = connector(&pki, &server);
    let handle = conn.clone();
    let mut client = Client::spawn(conn, fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    echo(&mut client, &mut seen, b"before").await;
    let before = handle.local_addr().unwrap();

    let socket = std::net::UdpSocket::bind(loopback()).unwrap();
    handle.rebind(socket).unwrap();
    let after = handle.local_addr().unwrap();
    assert_ne!(before, after);
    for i in 0..10u32 {
        echo(&mut client, &mut seen, format!("after {i}").as_bytes()).await;
    }
    // Several detection bounds later the connection is still the first one.
    drain(&mut client, &mut seen, Duration::from_secs(1)).await;
    echo(&mut client, &mut seen, b"later").await;
    assert_eq!(names(&seen), ["connecting", "connected"], "{seen:?}");
    let server_seen = server.drain();
    assert_eq!(server_closes(&server_seen), [], "{server_seen:?}");
    assert_eq!(server_accepts(&server_seen), 1, "{server_seen:?}");
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_dropped_and_counted_not_fatal() {
    let pki = Pki::generate();
    let server = start(pki.quic_server()).await;
    let conn = connector(&pki, &server);
    let stats = conn.clone();
    let mut client = Client::spawn(conn, fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    client
        .handle()
        .send(vec![7u8; 64 * 1024].into())
        .await
        .unwrap();
    echo(&mut client, &mut seen, b"small").await;
    assert_eq!(stats.stats().oversized_dropped, 1);
    // A payload just under the datagram limit still goes through.
    echo(&mut client, &mut seen, &[1u8; 1000]).await;
    assert_eq!(names(&seen), ["connecting", "connected"], "{seen:?}");
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_fails_the_handshake() {
    let pki = Pki::generate();
    let server = start(pki.quic_server()).await;
    // Trusts only a CA that signed nothing we use.
    let options = pki.quic_client(fast_liveness()).with_ca_file(&pki.other_ca);
    let conn = QuicConnector::new("127.0.0.1", server.addr.port(), &options).unwrap();
    let stats = conn.clone();
    let mut client = Client::spawn(conn, fast_client()).unwrap();
    let mut seen = vec![];
    let reason = wait_connect_failed(&mut client, &mut seen).await;
    assert_eq!(reason, DisconnectReason::TlsCertificate, "{seen:?}");
    assert!(stats.stats().failed_handshakes >= 1);
    client.close();
}

#[tokio::test]
async fn configuration_errors_are_clear() {
    let pki = Pki::generate();
    let quic = |url: &str| url.parse::<endpoint::Endpoint>().unwrap();

    // No certificate configured.
    let err = endpoint::acceptor(&quic("quic://127.0.0.1:0"), &TransportOptions::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("quic_server.cert_file"), "{err}");

    // A certificate file that does not exist: the path is in the message.
    let mut options = TransportOptions {
        quic_server: QuicServerOptions::new(pki.path("missing.pem"), &pki.server_key),
        ..TransportOptions::default()
    };
    let err = endpoint::acceptor(&quic("quic://127.0.0.1:0"), &options)
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(err.to_string().contains("missing.pem"), "{err}");

    // A reset-key file in a directory that does not exist.
    options.quic_server = pki
        .quic_server()
        .with_reset_key_file(pki.path("no/such/dir/reset.key"));
    let err = endpoint::acceptor(&quic("quic://127.0.0.1:0"), &options)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("reset key file"), "{err}");

    // A CA file that does not exist.
    options.quic_client = pki
        .quic_client(fast_liveness())
        .with_ca_file(pki.path("nope.pem"));
    let err = endpoint::connector(&quic("quic://127.0.0.1:4433"), &options)
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope.pem"), "{err}");

    // Keep-alive not below the idle timeout.
    options.quic_client = pki.quic_client(QuicLiveness {
        keep_alive: Some(Duration::from_secs(5)),
        idle_timeout: Duration::from_secs(1),
    });
    let err = endpoint::connector(&quic("quic://127.0.0.1:4433"), &options)
        .err()
        .unwrap();
    assert!(err.to_string().contains("quic.keep_alive"), "{err}");

    // The happy path through the shared address syntax.
    options.quic_client = pki.quic_client(fast_liveness());
    options.quic_server = pki.quic_server();
    let acceptor = endpoint::acceptor(&quic("quic://127.0.0.1:0"), &options)
        .await
        .unwrap();
    let port = acceptor.local_addr().unwrap().port();
    let server = EchoServer::spawn(Server::spawn(acceptor, fast_server()).unwrap());
    let url = format!("quic://127.0.0.1:{port}");
    let conn = endpoint::connector(&quic(&url), &options).unwrap();
    assert_eq!(conn.peer(), url);
    let mut client = Client::spawn(conn, fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    echo(&mut client, &mut seen, b"via endpoint").await;
    client.close();
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_named() {
    let pki = Pki::generate();
    let server = start(pki.quic_server()).await;
    let options = pki
        .quic_client(fast_liveness())
        .with_server_name("db.internal");
    let conn = QuicConnector::new("127.0.0.1", server.addr.port(), &options).unwrap();
    let mut client = Client::spawn(conn, fast_client()).unwrap();
    let mut seen = vec![];
    let step = wait_for(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::ConnectFailed { .. })
    })
    .await;
    client.close();
    let (reason, detail) = step.cause().unwrap();
    assert_eq!(reason, DisconnectReason::TlsNameMismatch, "{detail}");
    assert!(detail.as_str().contains("db.internal"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_lasts_the_connect_timeout_even_with_a_short_idle_timeout() {
    // A port that takes datagrams and never answers; QUIC's idle timeout
    // (300 ms here) is far shorter than the connect timeout.
    let silent = std::net::UdpSocket::bind(loopback()).unwrap();
    let pki = Pki::generate();
    let options = pki.quic_client(quic_support::liveness(
        Duration::from_millis(100),
        Duration::from_millis(300),
    ));
    let conn =
        QuicConnector::new("127.0.0.1", silent.local_addr().unwrap().port(), &options).unwrap();
    let connect_timeout = Duration::from_millis(1500);
    let mut config = fast_client();
    config.backoff = config.backoff.with_min_connect_timeout(connect_timeout);
    // Taken before the client starts dialing, which it does at once.
    let started = std::time::Instant::now();
    let mut client = Client::spawn(conn, config).unwrap();
    let mut seen = vec![];
    let reason = wait_connect_failed(&mut client, &mut seen).await;
    let took = started.elapsed();
    client.close();
    assert_eq!(reason, DisconnectReason::ConnectTimeout, "{seen:?}");
    assert!(took >= connect_timeout, "gave up after {took:?}");
}
