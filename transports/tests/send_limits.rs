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
