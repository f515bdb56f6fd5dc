//! No tether object stops silently: a panic inside a driver task (here
//! provoked by a transport that panics, as a buggy third-party acceptor or
//! connector would) ends the object with a `Failed` event (reason
//! `Internal`, the panic message as detail), after the end of every
//! connection it served was reported once.

mod common;

use async_trait::async_trait;
use common::*;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_core::{ConnectError, DisconnectReason};
use tether_transports::driver::{Acceptor, Client, ClientEvent, Server, ServerEvent};
use tether_transports::link::BoxLink;
use tether_transports::tcp::{TcpAcceptor, TcpConnector, TcpOptions};
use tether_transports::Reconnect;
use tokio::sync::Notify;

/// Accepts real TCP connections, and panics on the second accept once the
/// test released it (after the first connection's opening was done).
struct PanickyAcceptor {
    inner: TcpAcceptor,
    accepted: u32,
    release: Arc<Notify>,
}

#[async_trait]
impl Acceptor for PanickyAcceptor {
    async fn accept(&mut self) -> io::Result<(BoxLink, SocketAddr)> {
        if self.accepted == 1 {
            self.release.notified().await;
            panic!("acceptor bug after {} connection", self.accepted);
        }
        let accepted = self.inner.accept().await?;
        self.accepted += 1;
        Ok(accepted)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

async fn next_server_event(server: &mut Server) -> ServerEvent {
    tokio::time::timeout(Duration::from_secs(10), server.next_event())
        .await
        .expect("a server event within 10 s")
        .expect("the stream ends only after Failed")
}

#[tokio::test]
async fn a_panic_in_the_server_closes_its_connections_and_reports_failed() {
    let inner = TcpAcceptor::bind("127.0.0.1:0".parse().unwrap(), TcpOptions::default())
        .await
        .unwrap();
    let release = Arc::new(Notify::new());
    let acceptor = PanickyAcceptor {
        inner,
        accepted: 0,
        release: release.clone(),
    };
    let mut server = Server::spawn(acceptor, fast_server()).unwrap();
    let port = server.local_addr().port();
    let mut client = tcp_client(port, fast_client());
    let id = match next_server_event(&mut server).await {
        ServerEvent::Accepted { id, .. } => id,
        other => panic!("expected Accepted, got {other:?}"),
    };
    release.notify_one();
    // The accept after the first one panics: the open connection is closed
    // as `Internal`, then the server reports `Failed`, then nothing.
    match next_server_event(&mut server).await {
        ServerEvent::Closed {
            id: closed,
            reason,
            detail,
        } => {
            assert_eq!(closed, id);
            assert_eq!(reason, DisconnectReason::Internal);
            assert!(
                detail.as_str().contains("acceptor bug after 1 connection"),
                "{detail}"
            );
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    match next_server_event(&mut server).await {
        ServerEvent::Failed(cause) => {
            assert_eq!(cause.reason, DisconnectReason::Internal);
            assert!(
                cause.detail.as_str().contains("internal panic in tether"),
                "{cause}"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(server.connection_count(), 0);
    // The client saw its connection end and is trying again.
    let mut seen = vec![];
    wait_disconnected(&mut client, &mut seen, Duration::from_secs(10)).await;
    client.close();
}

/// Dials real TCP connections, and panics on the second dial.
struct PanickyConnector {
    inner: TcpConnector,
    dials: AtomicU32,
}

#[async_trait]
impl Reconnect for PanickyConnector {
    type Conn = BoxLink;

    async fn connect(&self) -> Result<BoxLink, ConnectError> {
        if self.dials.fetch_add(1, Ordering::SeqCst) == 1 {
            panic!("connector bug on the second dial");
        }
        self.inner.connect().await
    }

    fn peer(&self) -> String {
        self.inner.peer()
    }
}

#[tokio::test]
async fn a_panic_in_the_client_reports_the_disconnect_then_failed() {
    let server = tcp_server(fast_server()).await;
    let port = server.local_addr().port();
    let connector = PanickyConnector {
        inner: TcpConnector::new("127.0.0.1", port, TcpOptions::default()),
        dials: AtomicU32::new(0),
    };
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    drop(server); // the connection ends; the next dial panics
    let mut rest = vec![];
    let failed = loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next_event())
            .await
            .expect("an event within 10 s")
            .expect("the stream ends only after Failed")
        {
            ClientEvent::Failed(cause) => break cause,
            ClientEvent::Lifecycle(step) => rest.push(step),
            ClientEvent::Message(_) => {}
        }
    };
    assert_eq!(failed.reason, DisconnectReason::Internal);
    assert!(
        failed
            .detail
            .as_str()
            .contains("connector bug on the second dial"),
        "{failed}"
    );
    // Every step before it happened once, in order; nothing after it.
    assert!(
        matches!(rest[0], Lifecycle::Disconnected { generation: 1, .. }),
        "{rest:?}"
    );
    assert!(
        matches!(
            rest.last(),
            Some(Lifecycle::Connecting { generation: 2, .. })
        ),
        "{rest:?}"
    );
    assert!(client.next_event().await.is_none());
    assert!(client.handle().is_closed());
}

/// Accepts one real connection, then reports that it is finished, as the
/// UDP and QUIC acceptors do when their receive task ends.
struct FinishedAcceptor {
    inner: TcpAcceptor,
    accepted: u32,
    release: Arc<Notify>,
}

#[async_trait]
impl Acceptor for FinishedAcceptor {
    async fn accept(&mut self) -> io::Result<(BoxLink, SocketAddr)> {
        if self.accepted == 1 {
            self.release.notified().await;
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the receive task has stopped",
            ));
        }
        self.accepted += 1;
        self.inner.accept().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[tokio::test]
async fn a_finished_acceptor_fails_the_server_instead_of_retrying_forever() {
    let inner = TcpAcceptor::bind("127.0.0.1:0".parse().unwrap(), TcpOptions::default())
        .await
        .unwrap();
    let release = Arc::new(Notify::new());
    let acceptor = FinishedAcceptor {
        inner,
        accepted: 0,
        release: release.clone(),
    };
    let mut server = Server::spawn(acceptor, fast_server()).unwrap();
    let client = tcp_client(server.local_addr().port(), fast_client());
    assert!(matches!(
        next_server_event(&mut server).await,
        ServerEvent::Accepted { .. }
    ));
    release.notify_one();
    assert!(matches!(
        next_server_event(&mut server).await,
        ServerEvent::Closed {
            reason: DisconnectReason::Internal,
            ..
        }
    ));
    match next_server_event(&mut server).await {
        ServerEvent::Failed(cause) => {
            assert!(
                cause.detail.as_str().contains("the acceptor stopped"),
                "{cause}"
            )
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    client.close();
}
