//! An oversized message is refused when queued, with the limit, and the
//! connection carries on; it never becomes a reconnect loop.

mod common;

use bytes::Bytes;
use common::*;
use std::time::Duration;
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
    let got = wait_for(&mut server, &mut seen, Duration::from_secs(5), |e| {
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
    drain(&mut client, &mut steps, Duration::from_millis(300)).await;
    assert_eq!(disconnects(&steps), [], "{steps:?}");
    client.close();
}

#[tokio::test]
async fn while_down_exactly_max_pending_messages_are_kept() {
    // Nothing listens: the client stays disconnected.
    let port = unused_port().await;
    let mut config = fast_client();
    config.max_pending = 5;
    let mut client = tcp_client(port, config);
    let mut seen = vec![];
    wait_connect_failed(&mut client, &mut seen).await;
    let handle = client.handle();
    let sent: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i])).collect();
    for msg in &sent {
        handle.try_send(msg.clone()).unwrap();
    }
    // Let the driver run a few retry cycles; it must not take more.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        handle.try_send(Bytes::from_static(b"x")),
        Err(SendError::Full)
    );
    // The server comes up: all five arrive, in order.
    let mut server = tcp_server_on(port, ServerConfig::default()).await;
    assert_eq!(wait_messages(&mut server, &mut vec![], 5).await, sent);
    client.close();
}
