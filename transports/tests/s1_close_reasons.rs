//! Scenario S1: the end of a connection is classified — an orderly close
//! (FIN) and a reset (RST) are different reasons — and reported once.

mod common;

use common::*;
use socket2::SockRef;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, Server, ServerConfig, ServerEvent};
use tether_transports::tcp::{TcpAcceptor, TcpConnector, TcpOptions};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);

/// A plain server that accepts one connection and ends it with FIN or RST.
async fn client_sees(reset: bool) -> Vec<Lifecycle> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connector = TcpConnector::new("127.0.0.1", port, TcpOptions::default());
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, LIMIT, |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    if reset {
        SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    drop(stream);
    drop(listener);
    wait_lifecycle(&mut client, &mut seen, LIMIT, |e| {
        matches!(e, Lifecycle::Disconnected { .. })
    })
    .await;
    // Let any duplicate show up before judging.
    drain_lifecycle(&mut client, &mut seen, Duration::from_millis(300)).await;
    client.close();
    seen
}

fn disconnect_reasons(seen: &[Lifecycle]) -> Vec<DisconnectReason> {
    seen.iter()
        .filter_map(|e| match e {
            Lifecycle::Disconnected {
                generation: 1,
                reason,
            } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn client_reports_orderly_close_once() {
    let seen = client_sees(false).await;
    assert_eq!(
        disconnect_reasons(&seen),
        vec![DisconnectReason::PeerClosed]
    );
    assert_each_disconnect_once(&seen);
}

#[tokio::test]
async fn client_reports_reset_once() {
    let seen = client_sees(true).await;
    assert_eq!(disconnect_reasons(&seen), vec![DisconnectReason::Reset]);
    assert_each_disconnect_once(&seen);
}

/// A supervised server watching plain clients that leave with FIN or RST.
#[tokio::test]
async fn server_tells_fin_from_rst_once_each() {
    let acceptor = TcpAcceptor::bind("127.0.0.1:0".parse().unwrap(), TcpOptions::default())
        .await
        .unwrap();
    let mut server = Server::spawn(acceptor, ServerConfig::default()).unwrap();
    let addr = server.local_addr();
    let mut seen = vec![];

    for reset in [false, true] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let accepted = wait_server(&mut server, &mut seen, LIMIT, |e| {
            matches!(e, ServerEvent::Accepted { .. })
        })
        .await;
        let ServerEvent::Accepted { id, .. } = accepted else {
            unreachable!()
        };
        if reset {
            SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        } else {
            // Half-close and wait for the server's side to go, like a polite client.
            stream.shutdown_std();
        }
        drop(stream);
        let closed = wait_server(
            &mut server,
            &mut seen,
            LIMIT,
            |e| matches!(e, ServerEvent::Closed { id: c, .. } if *c == id),
        )
        .await;
        let expected = if reset {
            DisconnectReason::Reset
        } else {
            DisconnectReason::PeerClosed
        };
        assert_eq!(
            closed,
            ServerEvent::Closed {
                id,
                reason: expected
            }
        );
        assert_eq!(server.close(id), Err(tether_core::HandleError::Stale));
    }
    drain_server(&mut server, &mut seen, Duration::from_millis(300)).await;
    let closes = seen
        .iter()
        .filter(|e| matches!(e, ServerEvent::Closed { .. }))
        .count();
    assert_eq!(closes, 2, "{seen:?}");
}

trait ShutdownStd {
    fn shutdown_std(&mut self);
}

impl ShutdownStd for TcpStream {
    fn shutdown_std(&mut self) {
        SockRef::from(&*self)
            .shutdown(std::net::Shutdown::Write)
            .unwrap();
    }
}

/// Reading the server's side after the client's FIN returns 0 bytes: the
/// property the classification rests on, checked on a raw socket.
#[tokio::test]
async fn raw_fin_reads_zero() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (mut server_side, _) = listener.accept().await.unwrap();
    drop(client);
    let mut buf = [0u8; 8];
    assert_eq!(server_side.read(&mut buf).await.unwrap(), 0);
}
