//! Scenario S1 under TLS: close_notify is an orderly close (`PeerClosed`);
//! TCP closed under the TLS layer without close_notify (a truncation) or
//! reset is abrupt (`Reset`). Each is reported once, on either side.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, Server, ServerConfig, ServerEvent};
use tls_support::Pki;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A bare rustls server (not ours) so the test controls exactly what goes
/// on the wire after the handshake.
fn raw_server_config(pki: &Pki) -> tokio_rustls::TlsAcceptor {
    let certs = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn raw_client_config(pki: &Pki) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&pki.ca).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[derive(Clone, Copy)]
enum End {
    /// TLS close_notify, then TCP FIN.
    CloseNotify,
    /// TCP FIN without close_notify.
    Fin,
    /// TCP RST (SO_LINGER 0).
    Rst,
}

/// Accepts one TLS connection on a bare rustls server, then ends it as
/// told; keeps the socket until the returned sender is dropped.
async fn raw_server_ending_with(pki: &Pki, end: End) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = raw_server_config(pki);
    let (keep_tx, keep_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut stream = tls.accept(tcp).await.unwrap();
        welcome(&mut stream).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        match end {
            End::CloseNotify => {
                stream.shutdown().await.unwrap();
                let _ = keep_rx.await;
            }
            End::Fin => {
                // Drop the TLS session without close_notify, keep TCP.
                let (mut tcp, _session) = stream.into_inner();
                tcp.shutdown().await.unwrap();
                let _ = keep_rx.await;
            }
            End::Rst => {
                let (tcp, _session) = stream.into_inner();
                tcp.set_zero_linger().unwrap();
                drop(tcp);
                let _ = keep_rx.await;
            }
        }
    });
    (port, keep_tx)
}

async fn client_sees(end: End) -> DisconnectReason {
    let pki = Pki::generate();
    let (port, _keep) = raw_server_ending_with(&pki, end).await;
    let mut client =
        Client::spawn(pki.connector(port, &pki.client_options()), fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    let (generation, reason) =
        wait_disconnected(&mut client, &mut seen, Duration::from_secs(5)).await;
    drain(&mut client, &mut seen, Duration::from_millis(200)).await;
    assert_exactly_once(&seen);
    client.close();
    assert_eq!(generation, 1);
    reason
}

#[tokio::test]
async fn close_notify_is_an_orderly_close() {
    assert_eq!(
        client_sees(End::CloseNotify).await,
        DisconnectReason::PeerClosed
    );
}

#[tokio::test]
async fn tcp_fin_without_close_notify_is_a_reset() {
    assert_eq!(client_sees(End::Fin).await, DisconnectReason::Reset);
}

#[tokio::test]
async fn tcp_rst_under_tls_is_a_reset() {
    assert_eq!(client_sees(End::Rst).await, DisconnectReason::Reset);
}

#[tokio::test]
async fn our_server_closing_sends_close_notify() {
    let pki = Pki::generate();
    let mut server = Server::spawn(
        pki.acceptor(&pki.server_options()).await,
        ServerConfig::default(),
    )
    .unwrap();
    let mut client = Client::spawn(
        pki.connector(server.local_addr().port(), &pki.client_options()),
        fast_client(),
    )
    .unwrap();
    let id = wait_accepted(&mut server, &mut vec![]).await;
    server.close(id).unwrap();
    let mut seen = vec![];
    let lost = wait_disconnected(&mut client, &mut seen, Duration::from_secs(5)).await;
    assert_eq!(lost, (1, DisconnectReason::PeerClosed), "{seen:?}");
    client.close();
}

/// Connects a bare TLS client to our server and ends it as told; returns
/// the reason our server reports.
async fn server_sees(end: End) -> DisconnectReason {
    let pki = Pki::generate();
    let mut server = Server::spawn(
        pki.acceptor(&pki.server_options()).await,
        ServerConfig::default(),
    )
    .unwrap();
    let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = raw_client_config(&pki).connect(name, tcp).await.unwrap();
    hello(&mut stream).await;
    let mut seen = vec![];
    wait_accepted(&mut server, &mut seen).await;
    // Whatever must stay open until the server has reported.
    let _keep: Box<dyn std::any::Any> = match end {
        End::CloseNotify => {
            stream.shutdown().await.unwrap();
            Box::new(stream)
        }
        End::Fin => {
            // rustls is sans-IO: dropping the session sends nothing.
            let (mut tcp, _session) = stream.into_inner();
            tcp.shutdown().await.unwrap();
            Box::new(tcp)
        }
        End::Rst => {
            let (tcp, _session) = stream.into_inner();
            tcp.set_zero_linger().unwrap();
            drop(tcp);
            Box::new(())
        }
    };
    finish_server(&mut server, &mut seen).await
}

async fn finish_server(server: &mut Server, seen: &mut Vec<ServerEvent>) -> DisconnectReason {
    let (_, reason) = wait_closed(server, seen, Duration::from_secs(5)).await;
    drain(server, seen, Duration::from_millis(200)).await;
    assert_eq!(server_closes(seen), [reason], "{seen:?}");
    reason
}

#[tokio::test]
async fn server_side_classifies_the_same_way() {
    assert_eq!(
        server_sees(End::CloseNotify).await,
        DisconnectReason::PeerClosed
    );
    assert_eq!(server_sees(End::Fin).await, DisconnectReason::Reset);
    assert_eq!(server_sees(End::Rst).await, DisconnectReason::Reset);
}
