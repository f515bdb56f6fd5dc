//! An oversized message is refused when queued, with the limit, and the
//! connection carries on; it never becomes a reconnect loop.

mod common;

use bytes::Bytes;
use common::*;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_transports::driver::{
    Client, SendError, Server, ServerConfig, ServerEvent, ServerSendError,
};
use tether_transports::tcp::{TcpAcceptor, TcpConnector, TcpOptions};

#[tokio::test]
async fn oversized_messages_are_refused_and_the_link_survives() {
    let acceptor = TcpAcceptor::bind("127.0.0.1:0".parse().unwrap(), TcpOptions::default())
        .await
        .unwrap()
        .with_max_frame(64);
    let mut server = Server::spawn(acceptor, ServerConfig::default()).unwrap();
    assert_eq!(server.max_message(), 64);
    let connector = TcpConnector::new(
        "127.0.0.1",
        server.local_addr().port(),
        TcpOptions::default(),
    )
    .with_max_frame(64);
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    let handle = client.handle();
    let big = Bytes::from(vec![1u8; 65]);
    assert_eq!(
        handle.try_send(big.clone()),
        Err(SendError::TooLarge { len: 65, max: 64 })
    );
    assert_eq!(
        handle.send(big.clone()).await,
        Err(SendError::TooLarge { len: 65, max: 64 })
    );
    handle.send(Bytes::from_static(b"fits")).await.unwrap();
    let mut seen = vec![];
    let got = wait_server(&mut server, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, ServerEvent::Message { .. })
    })
    .await;
    let ServerEvent::Message { id, data } = got else {
        unreachable!()
    };
    assert_eq!(&data[..], b"fits");
    assert_eq!(
        server.try_send(id, big),
        Err(ServerSendError::TooLarge { len: 65, max: 64 })
    );
    let mut steps = vec![];
    drain_lifecycle(&mut client, &mut steps, Duration::from_millis(300)).await;
    assert!(
        !steps
            .iter()
            .any(|e| matches!(e, Lifecycle::Disconnected { .. })),
        "{steps:?}"
    );
    client.close();
}

#[tokio::test]
async fn while_down_exactly_max_pending_messages_are_kept() {
    // Nothing listens: the client stays disconnected.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let mut config = fast_client();
    config.max_pending = 5;
    let mut client = Client::spawn(
        TcpConnector::new("127.0.0.1", port, TcpOptions::default()),
        config,
    )
    .unwrap();
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::ConnectFailed { .. })
    })
    .await;
    let handle = client.handle();
    for i in 0..5u8 {
        handle.try_send(Bytes::from(vec![i])).unwrap();
    }
    // Let the driver run a few retry cycles; it must not take more.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        handle.try_send(Bytes::from_static(b"x")),
        Err(SendError::Full)
    );
    // The server comes up: all five arrive, in order.
    let acceptor = TcpAcceptor::bind(
        format!("127.0.0.1:{port}").parse().unwrap(),
        TcpOptions::default(),
    )
    .await
    .unwrap();
    let mut server = Server::spawn(acceptor, ServerConfig::default()).unwrap();
    let mut got = vec![];
    let mut server_seen = vec![];
    while got.len() < 5 {
        let ev = wait_server(
            &mut server,
            &mut server_seen,
            Duration::from_secs(10),
            |e| matches!(e, ServerEvent::Message { .. }),
        )
        .await;
        if let ServerEvent::Message { data, .. } = ev {
            got.push(data[0]);
        }
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    client.close();
}
