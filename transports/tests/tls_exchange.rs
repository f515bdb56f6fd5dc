//! TLS end to end: supervised client and server exchange messages inside
//! TLS, heartbeats keep a quiet connection up, and every way verification
//! can fail is classified (`TlsCertificate`, `TlsNameMismatch`, `ProtocolError`) and retried with backoff.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use bytes::Bytes;
use common::*;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, Server, ServerEvent};
use tether_transports::endpoint::{self, Endpoint, EndpointError, TransportOptions};
use tether_transports::tcp::TcpOptions;
use tether_transports::tls::{TlsAcceptor, TlsClientOptions, TlsServerOptions};
use tls_support::Pki;
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn client_and_server_exchange_messages_over_tls() {
    let pki = Pki::generate();
    let acceptor = pki.acceptor(&pki.server_options()).await;
    let server_counters = acceptor.counters();
    let mut server = Server::spawn(acceptor, fast_server()).unwrap();
    let connector = pki.connector(server.local_addr().port(), &pki.client_options());
    let counters = connector.counters();
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;

    client
        .handle()
        .send(Bytes::from_static(b"ping me"))
        .await
        .unwrap();
    let mut server_seen = vec![];
    let ServerEvent::Message { id, data } =
        wait_for(&mut server, &mut server_seen, Duration::from_secs(5), |e| {
            matches!(e, ServerEvent::Message { .. })
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(data, Bytes::from_static(b"ping me"));
    server.send(id, Bytes::from_static(b"reply")).await.unwrap();
    expect_message(&mut client, &mut seen, b"reply").await;
    assert_eq!(counters.snapshot().full_handshakes, 1);
    assert_eq!(server_counters.snapshot().full_handshakes, 1);
    assert_eq!(disconnects(&seen), [], "{seen:?}");
    client.close();
}

#[tokio::test]
async fn heartbeat_keeps_a_quiet_tls_connection_alive() {
    let pki = Pki::generate();
    let config = fast_server();
    let bound = config.policy.detection_bound();
    let mut server = Server::spawn(pki.acceptor(&pki.server_options()).await, config).unwrap();
    let connector = pki.connector(server.local_addr().port(), &pki.client_options());
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    // No application data for many detection bounds: only pings and pongs
    // (inside TLS) keep both sides convinced.
    let mut server_seen = vec![];
    let window = bound * 8;
    tokio::join!(
        drain(&mut client, &mut seen, window),
        drain(&mut server, &mut server_seen, window),
    );
    assert_eq!(disconnects(&seen), [], "{seen:?}");
    assert_eq!(server_closes(&server_seen), [], "{server_seen:?}");
    assert_eq!(server.connection_count(), 1);
    client.close();
}

/// Waits until the client has failed `n` attempts with `reason`, and checks
/// it never connected and waited between attempts.
async fn expect_failures(client: &mut Client, n: usize, reason: DisconnectReason) {
    let mut seen = vec![];
    for _ in 0..n {
        assert_eq!(
            wait_connect_failed(client, &mut seen).await,
            reason,
            "{seen:?}"
        );
    }
    assert!(
        count(&seen, "waiting") >= n - 1,
        "no backoff between attempts: {seen:?}"
    );
}

#[tokio::test]
async fn client_that_does_not_trust_the_ca_fails_and_keeps_retrying() {
    let pki = Pki::generate();
    let acceptor = pki.acceptor(&pki.server_options()).await;
    let server_counters = acceptor.counters();
    let mut server = Server::spawn(acceptor, fast_server()).unwrap();
    let options = TlsClientOptions::default().with_ca_file(&pki.other_ca);
    let connector = pki.connector(server.local_addr().port(), &options);
    let counters = connector.counters();
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    expect_failures(&mut client, 3, DisconnectReason::TlsCertificate).await;
    let stats = counters.snapshot();
    assert!(stats.failed_handshakes >= 3, "{stats:?}");
    assert_eq!(stats.full_handshakes + stats.resumed_handshakes, 0);
    // The server never saw a connection (its handshakes failed too).
    let mut server_seen = vec![];
    drain(&mut server, &mut server_seen, Duration::from_millis(100)).await;
    assert!(server_seen.is_empty(), "{server_seen:?}");
    assert!(server_counters.snapshot().failed_handshakes >= 1);
    client.close();
}

#[tokio::test]
async fn wrong_server_name_fails_verification() {
    let pki = Pki::generate();
    let server = Server::spawn(pki.acceptor(&pki.server_options()).await, fast_server()).unwrap();
    let options = pki
        .client_options()
        .with_server_name("not-this-server.test");
    let mut client = Client::spawn(
        pki.connector(server.local_addr().port(), &options),
        fast_client(),
    )
    .unwrap();
    expect_failures(&mut client, 2, DisconnectReason::TlsNameMismatch).await;
    client.close();

    // The right name given explicitly works (the address is an IP).
    let options = pki.client_options().with_server_name("localhost");
    let mut client = Client::spawn(
        pki.connector(server.local_addr().port(), &options),
        fast_client(),
    )
    .unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    client.close();
}

#[tokio::test]
async fn required_client_certificate_is_enforced() {
    let pki = Pki::generate();
    let server_options = pki.server_options().with_client_ca_file(&pki.ca);
    let acceptor = pki.acceptor(&server_options).await;
    let server_counters = acceptor.counters();
    let mut server = EchoServer::spawn(Server::spawn(acceptor, fast_server()).unwrap());
    let port = server.addr.port();

    // With a certificate from the CA: served.
    let with_cert = pki
        .client_options()
        .with_client_cert(&pki.client_cert, &pki.client_key);
    let mut good = Client::spawn(pki.connector(port, &with_cert), fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut good, &mut seen).await;
    echo(&mut good, &mut seen, b"authenticated").await;

    // Without one: the server rejects the handshake. Under TLS 1.3 the
    // client learns it from the server's alert just after its own side of
    // the handshake finished, so it is a ConnectFailed or an immediate
    // Disconnected, always TlsCertificate (the server's certificate_required
    // alert), and never a delivered message.
    let mut bad = Client::spawn(pki.connector(port, &pki.client_options()), fast_client()).unwrap();
    bad.handle()
        .send(Bytes::from_static(b"anonymous"))
        .await
        .unwrap();
    let mut bad_seen = vec![];
    for _ in 0..2 {
        let step = wait_for(&mut bad, &mut bad_seen, Duration::from_secs(5), |e| {
            matches!(
                e,
                Lifecycle::ConnectFailed { .. } | Lifecycle::Disconnected { .. }
            )
        })
        .await;
        assert!(
            matches!(
                step,
                Lifecycle::ConnectFailed {
                    reason: DisconnectReason::TlsCertificate,
                    ..
                } | Lifecycle::Disconnected {
                    reason: DisconnectReason::TlsCertificate,
                    ..
                }
            ),
            "{bad_seen:?}"
        );
    }
    assert_exactly_once(&bad_seen);
    assert!(server_counters.snapshot().failed_handshakes >= 2);
    bad.close();
    good.close();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Only the authenticated client's message reached the application.
    let server_seen = server.drain();
    let messages: Vec<_> = server_seen
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Message { data, .. } => Some(data.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(messages, [b"authenticated"], "{server_seen:?}");
}

#[tokio::test]
async fn a_silent_client_does_not_stall_other_handshakes() {
    let pki = Pki::generate();
    // A long handshake timeout: if handshakes ran on the accept loop, the
    // silent client below would hold up everyone for 30 s.
    let options = pki
        .server_options()
        .with_handshake_timeout(Duration::from_secs(30));
    let server = Server::spawn(pki.acceptor(&options).await, fast_server()).unwrap();
    let port = server.local_addr().port();
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _echo = EchoServer::spawn(server);
    let mut client =
        Client::spawn(pki.connector(port, &pki.client_options()), fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    echo(&mut client, &mut seen, b"not stalled").await;
    client.close();
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let pki = Pki::generate();
    let options = pki
        .server_options()
        .with_handshake_timeout(Duration::from_millis(200));
    let acceptor = pki.acceptor(&options).await;
    let counters = acceptor.counters();
    let server = Server::spawn(acceptor, fast_server()).unwrap();
    let mut silent = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the server never dropped the silent client")
        .unwrap_or(0);
    assert_eq!(n, 0, "expected the connection to be closed");
    assert_eq!(counters.snapshot().failed_handshakes, 1);
}

#[tokio::test]
async fn endpoint_builds_tls_and_reports_bad_files_clearly() {
    let pki = Pki::generate();
    let options = TransportOptions {
        tls_server: pki.server_options(),
        tls_client: pki.client_options(),
        ..TransportOptions::default()
    };
    let listen: Endpoint = "tls://127.0.0.1:0".parse().unwrap();
    let acceptor = endpoint::acceptor(&listen, &options).await.unwrap();
    let server = EchoServer::spawn(Server::spawn(acceptor, fast_server()).unwrap());
    let port = server.addr.port();
    let dial: Endpoint = format!("tls://127.0.0.1:{port}").parse().unwrap();
    let connector = endpoint::connector(&dial, &options).unwrap();
    assert_eq!(
        tether_transports::Reconnect::peer(&connector),
        format!("tls://127.0.0.1:{port}")
    );
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    echo(&mut client, &mut seen, b"via endpoint").await;
    client.close();

    // A CA file that does not exist: the error names the path.
    let missing = pki.path("no-such-ca.pem");
    let mut bad = options.clone();
    bad.tls_client.ca_file = Some(missing.clone());
    let err = endpoint::connector(&dial, &bad).err().expect("must fail");
    assert!(matches!(err, EndpointError::BadOptions("tls", _)), "{err}");
    assert!(err.to_string().contains("no-such-ca.pem"), "{err}");

    // A server without a certificate configured.
    let err = endpoint::acceptor(&listen, &TransportOptions::default())
        .await
        .err()
        .expect("must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("tls_server.cert_file"), "{err}");

    // A key file that holds a certificate, not a key.
    let wrong_key = TlsServerOptions::new(&pki.server_cert, &pki.server_cert);
    let err = TlsAcceptor::bind(
        "127.0.0.1:0".parse().unwrap(),
        TcpOptions::default(),
        &wrong_key,
    )
    .await
    .expect_err("must fail");
    assert!(err.to_string().contains("server.pem"), "{err}");

    // A key that does not belong to the certificate.
    let mismatched = TlsServerOptions::new(&pki.server_cert, &pki.client_key);
    assert!(TlsAcceptor::check_options(&mismatched).is_err());

    // A client certificate without its key.
    let mut half = pki.client_options();
    half.client_cert_file = Some(pki.client_cert.clone());
    let err =
        tether_transports::tls::TlsConnector::new("127.0.0.1", 1, TcpOptions::default(), &half)
            .expect_err("must fail");
    assert!(err.to_string().contains("client_key_file"), "{err}");
}

#[tokio::test]
async fn verification_is_on_by_default_with_platform_roots() {
    let pki = Pki::generate();
    let server = Server::spawn(pki.acceptor(&pki.server_options()).await, fast_server()).unwrap();
    // No CA file: the platform's roots, which do not include our test CA.
    let connector = match tether_transports::tls::TlsConnector::new(
        "127.0.0.1",
        server.local_addr().port(),
        TcpOptions::default(),
        &TlsClientOptions::default(),
    ) {
        Ok(c) => c,
        Err(e @ tether_transports::tls::TlsConfigError::NoPlatformRoots(_)) => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    expect_failures(&mut client, 2, DisconnectReason::TlsCertificate).await;
    client.close();
}

#[tokio::test]
async fn alpn_must_match_when_the_server_requires_one() {
    let pki = Pki::generate();
    let options = pki.server_options().with_alpn(["tether/1"]);
    let server =
        EchoServer::spawn(Server::spawn(pki.acceptor(&options).await, fast_server()).unwrap());
    let port = server.addr.port();

    let wrong = pki.client_options().with_alpn(["h2"]);
    let mut client = Client::spawn(pki.connector(port, &wrong), fast_client()).unwrap();
    expect_failures(&mut client, 2, DisconnectReason::ProtocolError).await;
    client.close();

    let right = pki.client_options().with_alpn(["h2", "tether/1"]);
    let mut client = Client::spawn(pki.connector(port, &right), fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    echo(&mut client, &mut seen, b"alpn ok").await;
    client.close();
}

/// The first failed attempt's reason and detail.
async fn first_failure(client: &mut Client) -> (DisconnectReason, String) {
    let mut seen = vec![];
    let step = wait_for(client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::ConnectFailed { .. })
    })
    .await;
    let (reason, detail) = step.cause().expect("a failure has a cause");
    (reason, detail.to_string())
}

#[tokio::test]
async fn every_certificate_failure_says_why() {
    let pki = Pki::generate();
    let server = Server::spawn(pki.acceptor(&pki.server_options()).await, fast_server()).unwrap();
    let port = server.local_addr().port();

    // An untrusted issuer.
    let untrusted = TlsClientOptions::default().with_ca_file(&pki.other_ca);
    let mut client = Client::spawn(pki.connector(port, &untrusted), fast_client()).unwrap();
    let (reason, detail) = first_failure(&mut client).await;
    client.close();
    assert_eq!(reason, DisconnectReason::TlsCertificate, "{detail}");
    assert!(detail.contains("UnknownIssuer"), "{detail}");
    assert!(detail.contains(&format!("127.0.0.1:{port}")), "{detail}");

    // A certificate for other names.
    let wrong = pki.client_options().with_server_name("db.internal");
    let mut client = Client::spawn(pki.connector(port, &wrong), fast_client()).unwrap();
    let (reason, detail) = first_failure(&mut client).await;
    client.close();
    assert_eq!(reason, DisconnectReason::TlsNameMismatch, "{detail}");
    assert!(detail.contains("db.internal"), "{detail}");
}

#[tokio::test]
async fn a_ca_certificate_served_as_the_server_certificate_is_named() {
    // A self-signed certificate with CA:TRUE used as an end entity, as
    // quick set-ups often make: rustls refuses it (CaUsedAsEndEntity).
    let pki = Pki::generate();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_file = pki.dir.write("ca-as-leaf.pem", &cert.pem());
    let key_file = pki.dir.write("ca-as-leaf.key", &key.serialize_pem());
    let acceptor = pki
        .acceptor(&TlsServerOptions::new(&cert_file, &key_file))
        .await;
    let server = Server::spawn(acceptor, fast_server()).unwrap();
    let options = TlsClientOptions::default().with_ca_file(&cert_file);
    let mut client = Client::spawn(
        pki.connector(server.local_addr().port(), &options),
        fast_client(),
    )
    .unwrap();
    let (reason, detail) = first_failure(&mut client).await;
    client.close();
    assert_eq!(reason, DisconnectReason::TlsCertificate, "{detail}");
    assert!(detail.contains("CaUsedAsEndEntity"), "{detail}");
}
