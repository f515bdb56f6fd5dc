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
    let (mut stream, _) = listener.accept().await.unwrap();
    welcome(&mut stream).await;
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
        hello(&mut stream).await;
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
        match closed {
            ServerEvent::Closed {
                id: got,
                reason,
                detail,
            } => {
                assert_eq!((got, reason), (id, expected));
                assert!(!detail.is_empty(), "a close says why in words");
            }
            other => panic!("expected Closed, got {other:?}"),
        }
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

/// A raw tether data frame: kind 0x01, big-endian length, payload.
/// Reads raw frames until the end of stream; returns the data payloads.
async fn read_all_frames(mut stream: TcpStream) -> Vec<Vec<u8>> {
    let mut payloads = vec![];
    let mut header = [0u8; 5];
    while stream.read_exact(&mut header).await.is_ok() {
        let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.unwrap();
        if header[0] == 0x01 {
            payloads.push(payload);
        }
    }
    payloads
}

/// `close(id)` while the server is stuck writing to a client that does not
/// read yet: once the client reads, it gets every queued message, in order
/// and without a gap (the batch cut short by the close included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_during_a_blocked_write_leaves_no_gap() {
    const COUNT: usize = 10_000;
    let mut server = tcp_server(ServerConfig {
        send_queue: COUNT,
        ..ServerConfig::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    hello(&mut stream).await;
    let mut seen = vec![];
    let id = wait_accepted(&mut server, &mut seen).await;
    for i in 0..COUNT {
        let mut msg = vec![0xAB; 2048];
        msg[..8].copy_from_slice(&(i as u64).to_be_bytes());
        server.try_send(id, msg.into()).unwrap();
    }
    // Let the socket buffers fill and the write block mid-batch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.close(id).unwrap();
    let payloads = read_all_frames(stream).await;
    let numbers: Vec<u64> = payloads
        .iter()
        .map(|p| u64::from_be_bytes(p[..8].try_into().unwrap()))
        .collect();
    assert_eq!(numbers.len(), COUNT, "every queued message arrives");
    assert!(
        numbers.iter().enumerate().all(|(i, &n)| n == i as u64),
        "in order, no gap"
    );
    let closed = wait_closed(&mut server, &mut seen, LIMIT).await;
    assert_eq!(closed, (id, DisconnectReason::ClosedLocally));
}

/// Messages the server read ahead while its write was blocked are still
/// reported, before `Closed`, when the connection is closed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_read_during_a_blocked_write_are_reported_on_close() {
    let mut server = tcp_server(ServerConfig::default()).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(32 * 1024).unwrap();
    let mut stream = socket.connect(server.local_addr()).await.unwrap();
    hello(&mut stream).await;
    let mut seen = vec![];
    let id = wait_accepted(&mut server, &mut seen).await;
    // Far more than the client's buffers: the server's write blocks.
    server.send(id, vec![7u8; 8 << 20].into()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for msg in [&b"one"[..], b"two", b"three"] {
        tokio::io::AsyncWriteExt::write_all(&mut stream, &data_frame(msg))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.close(id).unwrap();
    let closed = wait_closed(&mut server, &mut seen, LIMIT).await;
    assert_eq!(closed.0, id);
    let messages: Vec<&[u8]> = seen
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Message { data, .. } => Some(&data[..]),
            _ => None,
        })
        .collect();
    assert_eq!(messages, [&b"one"[..], b"two", b"three"], "{seen:?}");
    drop(stream);
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
