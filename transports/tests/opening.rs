//! The opening exchange on real sockets: a client counts as connected only
//! once a tether server answered its hello; a server reports a connection
//! only once its client said hello. A port the kernel accepts on but no
//! tether server serves is a failed attempt, not a connection.

mod common;

use common::*;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{ServerConfig, ServerEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn a_listener_that_never_answers_the_hello_is_a_failed_attempt() {
    // The kernel completes every connection (backlog); nobody answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = fast_client();
    config.backoff = config
        .backoff
        .with_min_connect_timeout(Duration::from_millis(300));
    let mut client = tcp_client(port, config);
    let mut seen = vec![];
    let failed = wait_for(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(
            e,
            Lifecycle::ConnectFailed { .. } | Lifecycle::Connected { .. }
        )
    })
    .await;
    match failed {
        Lifecycle::ConnectFailed { reason, detail, .. } => {
            assert_eq!(reason, DisconnectReason::ConnectTimeout);
            assert!(
                detail.to_string().contains("no welcome from the server"),
                "{detail}"
            );
        }
        other => panic!("a silent listener counted as connected: {other:?}"),
    }
    // It keeps trying, and never says connected.
    wait_for(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::ConnectFailed { generation: 2, .. })
    })
    .await;
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, Lifecycle::Connected { .. })),
        "{seen:?}"
    );
    assert_exactly_once(&seen);
    client.close();
    drop(listener);
}

#[tokio::test]
async fn a_peer_that_skips_the_hello_is_never_reported() {
    let mut server = tcp_server(ServerConfig::default()).await;
    // Data before any hello: not a tether client. The server drops the
    // socket without an event.
    let mut stranger = TcpStream::connect(server.local_addr()).await.unwrap();
    stranger.write_all(&data_frame(b"who am i")).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stranger.read(&mut buf))
        .await
        .expect("the server drops the stranger");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // A tether client next: the first event the server reports is its.
    let mut client = tcp_client(server.local_addr().port(), fast_client());
    let mut client_seen = vec![];
    wait_connected(&mut client, &mut client_seen).await;
    let first = tokio::time::timeout(Duration::from_secs(5), server.next_event())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, ServerEvent::Accepted { .. }), "{first:?}");
    let mut server_seen = vec![first];
    drain(&mut server, &mut server_seen, Duration::from_millis(200)).await;
    assert_eq!(server_closes(&server_seen), [], "{server_seen:?}");
    client.close();
}

#[tokio::test]
async fn the_first_message_right_after_the_welcome_arrives() {
    // A hand-made server that sends data in the same write as its welcome.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = tcp_client(port, fast_client());
    let (mut stream, _) = listener.accept().await.unwrap();
    match opening::read_frame(&mut stream).await {
        tether_core::codec::Frame::Hello(_) => {}
        other => panic!("expected a hello, got {other:?}"),
    }
    let mut wire = bytes::BytesMut::new();
    let welcome = tether_core::codec::Frame::Welcome(tether_core::codec::Hello::new(0));
    tether_core::codec::encode(&welcome, 1024, &mut wire).unwrap();
    wire.extend_from_slice(&data_frame(b"first"));
    stream.write_all(&wire).await.unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match client.next_event().await {
                Some(tether_transports::driver::ClientEvent::Message(m)) => return m,
                Some(_) => continue,
                None => panic!("the client ended"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&got[..], b"first");
    client.close();
}
