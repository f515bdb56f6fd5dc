//! Scenario S1: the end of a connection is classified — an orderly close
//! (FIN) and a reset (RST) are different reasons — and reported once.

mod common;

use common::*;
use socket2::SockRef;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{ServerConfig, ServerEvent};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);

/// A plain server that accepts one connection and ends it with FIN or RST.
async fn client_sees(reset: bool) -> Vec<Lifecycle> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = tcp_client(port, fast_client());
    let (stream, _) = listener.accept().await.unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    if reset {
        SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    drop(stream);
    drop(listener);
    wait_disconnected(&mut client, &mut seen, LIMIT).await;
    // Let any duplicate show up before judging.
    drain(&mut client, &mut seen, Duration::from_millis(300)).await;
    client.close();
    seen
}

#[tokio::test]
async fn client_reports_orderly_close_once() {
    let seen = client_sees(false).await;
    assert_eq!(disconnects(&seen), [(1, DisconnectReason::PeerClosed)]);
    assert_exactly_once(&seen);
}

#[tokio::test]
async fn client_reports_reset_once() {
    let seen = client_sees(true).await;
    assert_eq!(disconnects(&seen), [(1, DisconnectReason::Reset)]);
    assert_exactly_once(&seen);
}

/// A supervised server watching plain clients that leave with FIN or RST.
#[tokio::test]
async fn server_tells_fin_from_rst_once_each() {
    let mut server = tcp_server(ServerConfig::default()).await;
    let addr = server.local_addr();
    let mut seen = vec![];

    for reset in [false, true] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let id = wait_accepted(&mut server, &mut seen).await;
        if reset {
            SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        } else {
            // Half-close and wait for the server's side to go, like a polite client.
            stream.shutdown_std();
        }
        drop(stream);
        let closed = wait_for(
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
    drain(&mut server, &mut seen, Duration::from_millis(300)).await;
    assert_eq!(
        server_closes(&seen),
        [DisconnectReason::PeerClosed, DisconnectReason::Reset],
        "{seen:?}"
    );
}

/// `close(id)` right after queueing messages: the client receives every
/// one of them, then an orderly close, reported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_delivers_what_was_queued_first() {
    const COUNT: usize = 500;
    let mut server = tcp_server(ServerConfig::default()).await;
    let mut client = tcp_client(server.local_addr().port(), fast_client());
    let mut seen = vec![];
    let mut server_seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    let id = wait_accepted(&mut server, &mut server_seen).await;
    for i in 0..COUNT {
        let msg = format!("message {i} {}", "x".repeat(2000));
        server.send(id, msg.into()).await.unwrap();
    }
    server.close(id).unwrap();
    assert!(matches!(
        server.send(id, "too late".into()).await,
        Err(tether_transports::driver::ServerSendError::Handle(
            tether_core::HandleError::Stale
        ))
    ));
    for i in 0..COUNT {
        let msg = format!("message {i} {}", "x".repeat(2000));
        expect_message(&mut client, &mut seen, msg.as_bytes()).await;
    }
    let (_, reason) = wait_disconnected(&mut client, &mut seen, LIMIT).await;
    assert_eq!(reason, DisconnectReason::PeerClosed);
    let closed = wait_closed(&mut server, &mut server_seen, LIMIT).await;
    assert_eq!(closed, (id, DisconnectReason::ClosedLocally));
    client.close();
    drain(&mut client, &mut seen, Duration::from_millis(200)).await;
    assert_exactly_once(&seen);
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
