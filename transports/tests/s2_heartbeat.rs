//! Scenario S2: heartbeats instead of a sweeper thread. The server drops a
//! client that stops answering; the client detects a server that went
//! silent — even while it keeps writing — and reconnects.

mod common;

use bytes::Bytes;
use common::*;
use std::time::{Duration, Instant};
use tether_core::liveness::Policy;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, Server, ServerConfig, ServerEvent};
use tether_transports::tcp::{TcpAcceptor, TcpConnector, TcpOptions};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// Real-time bounds are generous: the precise bound is asserted in
/// simulated time by the core's tests; here we check the order of magnitude
/// on real sockets (the configured bound is 300 ms).
const SLACK: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn server_drops_a_client_that_stops_answering() {
    let acceptor = TcpAcceptor::bind("127.0.0.1:0".parse().unwrap(), TcpOptions::default())
        .await
        .unwrap();
    let config = ServerConfig {
        policy: Policy::Heartbeat(fast_heartbeat()),
        ..ServerConfig::default()
    };
    let bound = config.policy.detection_bound();
    let mut server = Server::spawn(acceptor, config).unwrap();
    // A client process that hangs: connected, reads nothing, answers nothing.
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut seen = vec![];
    let started = Instant::now();
    wait_server(&mut server, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, ServerEvent::Accepted { .. })
    })
    .await;
    let closed = wait_server(&mut server, &mut seen, bound + SLACK, |e| {
        matches!(e, ServerEvent::Closed { .. })
    })
    .await;
    let ServerEvent::Closed { reason, .. } = closed else {
        unreachable!()
    };
    assert_eq!(reason, DisconnectReason::Timeout);
    assert!(started.elapsed() >= bound, "dropped before the bound");
    drain_server(&mut server, &mut seen, Duration::from_millis(300)).await;
    let closes = seen
        .iter()
        .filter(|e| matches!(e, ServerEvent::Closed { .. }))
        .count();
    assert_eq!(closes, 1, "{seen:?}");
    drop(stream);
}

#[tokio::test]
async fn server_keeps_a_quiet_client_that_answers_pings() {
    let acceptor = TcpAcceptor::bind("127.0.0.1:0".parse().unwrap(), TcpOptions::default())
        .await
        .unwrap();
    let config = ServerConfig {
        policy: Policy::Heartbeat(fast_heartbeat()),
        ..ServerConfig::default()
    };
    let bound = config.policy.detection_bound();
    let mut server = Server::spawn(acceptor, config).unwrap();
    let port = server.local_addr().port();
    // A supervised client that sends no application data at all.
    let mut client = Client::spawn(
        TcpConnector::new("127.0.0.1", port, TcpOptions::default()),
        fast_client(),
    )
    .unwrap();
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    // Ten detection bounds of application silence: nobody may be dropped.
    let mut server_seen = vec![];
    drain_server(&mut server, &mut server_seen, bound * 10).await;
    drain_lifecycle(&mut client, &mut seen, Duration::from_millis(1)).await;
    assert!(
        !server_seen
            .iter()
            .any(|e| matches!(e, ServerEvent::Closed { .. })),
        "{server_seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, Lifecycle::Disconnected { .. })),
        "{seen:?}"
    );
    client.close();
}

/// A server whose process hangs: it accepted, keeps the socket open and
/// even reads (so the kernel acknowledges everything), but never answers.
async fn silent_server() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[tokio::test]
async fn client_detects_a_silent_server_while_writing() {
    let (listener, port) = silent_server().await;
    let config = fast_client();
    let bound = config.heartbeat.detection_bound();
    let mut client = Client::spawn(
        TcpConnector::new("127.0.0.1", port, TcpOptions::default()),
        config,
    )
    .unwrap();
    let (mut sink, _) = listener.accept().await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sink.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    // Keep writing the whole time: sending must not count as proof of life.
    let handle = client.handle();
    let writer = tokio::spawn(async move {
        for i in 0u32.. {
            if handle
                .send(Bytes::from(i.to_be_bytes().to_vec()))
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let started = Instant::now();
    let lost = wait_lifecycle(&mut client, &mut seen, bound + SLACK, |e| {
        matches!(e, Lifecycle::Disconnected { .. })
    })
    .await;
    assert_eq!(
        lost,
        Lifecycle::Disconnected {
            generation: 1,
            reason: DisconnectReason::Timeout
        }
    );
    assert!(started.elapsed() <= bound + SLACK);
    // It keeps trying: the next attempt is announced.
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Connecting { generation: 2, .. })
    })
    .await;
    assert_each_disconnect_once(&seen);
    client.close();
    writer.abort();
}

#[tokio::test]
async fn client_messages_written_while_down_arrive_after_reconnect() {
    // Nothing listens yet: the client queues while it retries.
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let mut client = Client::spawn(
        TcpConnector::new("127.0.0.1", addr.port(), TcpOptions::default()),
        fast_client(),
    )
    .unwrap();
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::ConnectFailed { .. })
    })
    .await;
    for i in 0..10u8 {
        client.handle().send(Bytes::from(vec![i])).await.unwrap();
    }
    let acceptor = TcpAcceptor::bind(addr, TcpOptions::default())
        .await
        .unwrap();
    let mut server = Server::spawn(acceptor, ServerConfig::default()).unwrap();
    let mut server_seen = vec![];
    let mut got = vec![];
    while got.len() < 10 {
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
    assert_eq!(got, (0..10).collect::<Vec<u8>>());
    client.close();
}

#[tokio::test]
async fn close_is_prompt_while_a_write_is_stuck() {
    // The server accepts and never reads: our writes fill the socket
    // buffers and block. Closing must not wait for the (long) bound.
    let (listener, port) = silent_server().await;
    let mut config = fast_client();
    config.heartbeat = tether_core::liveness::HeartbeatConfig::new(
        Duration::from_secs(60),
        Duration::from_secs(60),
        1,
    );
    let mut client = Client::spawn(
        TcpConnector::new("127.0.0.1", port, TcpOptions::default()),
        config,
    )
    .unwrap();
    let (_stuck, _) = listener.accept().await.unwrap();
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    let handle = client.handle();
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    // Far more than the kernel buffers hold.
    for _ in 0..256 {
        if handle.try_send(chunk.clone()).is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let closing = Instant::now();
    client.close();
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Closed)
    })
    .await;
    assert!(closing.elapsed() < Duration::from_secs(5));
    let lost: Vec<_> = seen
        .iter()
        .filter(|e| matches!(e, Lifecycle::Disconnected { .. }))
        .collect();
    assert_eq!(
        lost,
        vec![&Lifecycle::Disconnected {
            generation: 1,
            reason: DisconnectReason::ClosedLocally
        }]
    );
}
