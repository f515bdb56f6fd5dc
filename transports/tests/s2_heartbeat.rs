//! Scenario S2: heartbeats instead of a sweeper thread. The server drops a
//! client that stops answering; the client detects a server that went
//! silent — even while it keeps writing — and reconnects.

mod common;

use bytes::Bytes;
use common::*;
use std::time::{Duration, Instant};
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::ServerConfig;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// Real-time bounds are generous: the precise bound is asserted in
/// simulated time by the core's tests; here we check the order of magnitude
/// on real sockets (the configured bound is 300 ms).
const SLACK: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn server_drops_a_client_that_stops_answering() {
    let bound = fast_server().policy.detection_bound();
    let mut server = tcp_server(fast_server()).await;
    // A client process that hangs: connected, reads nothing, answers nothing.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    hello(&mut stream).await;
    let mut seen = vec![];
    let started = Instant::now();
    wait_accepted(&mut server, &mut seen).await;
    let (_, reason) = wait_closed(&mut server, &mut seen, bound + SLACK).await;
    assert_eq!(reason, DisconnectReason::Timeout);
    assert!(started.elapsed() >= bound, "dropped before the bound");
    drain(&mut server, &mut seen, Duration::from_millis(300)).await;
    assert_eq!(server_closes(&seen), [reason], "{seen:?}");
    drop(stream);
}

#[tokio::test]
async fn server_keeps_a_quiet_client_that_answers_pings() {
    let bound = fast_server().policy.detection_bound();
    let mut server = tcp_server(fast_server()).await;
    // A supervised client that sends no application data at all.
    let mut client = tcp_client(server.local_addr().port(), fast_client());
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    let mut server_seen = vec![];
    let id = wait_accepted(&mut server, &mut server_seen).await;
    // Ten detection bounds of application silence: nobody may be dropped.
    drain(&mut server, &mut server_seen, bound * 10).await;
    drain(&mut client, &mut seen, Duration::from_millis(1)).await;
    assert_eq!(server_closes(&server_seen), [], "{server_seen:?}");
    assert_eq!(disconnects(&seen), [], "{seen:?}");
    // Both ends pinged the silent other and measured the round trip.
    let server_rtt = server
        .rtt(id)
        .unwrap()
        .expect("the server measured no round trip");
    let client_rtt = client
        .handle()
        .rtt()
        .expect("the client measured no round trip");
    assert!(
        server_rtt < bound && client_rtt < bound,
        "{server_rtt:?} {client_rtt:?}"
    );
    client.close();
}

/// A server whose process hangs after the opening: it accepted, keeps the
/// socket open and even reads (so the kernel acknowledges everything), but
/// never answers.
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
    let mut client = tcp_client(port, config);
    let (mut sink, _) = listener.accept().await.unwrap();
    welcome(&mut sink).await;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sink.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
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
    let lost = wait_disconnected(&mut client, &mut seen, bound + SLACK).await;
    assert_eq!(lost, (1, DisconnectReason::Timeout));
    assert!(started.elapsed() <= bound + SLACK);
    // It keeps trying: the next attempt is announced.
    wait_for(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Connecting { generation: 2, .. })
    })
    .await;
    assert_exactly_once(&seen);
    client.close();
    writer.abort();
}

#[tokio::test]
async fn client_messages_written_while_down_arrive_after_reconnect() {
    // Nothing listens yet: the client queues while it retries.
    let port = unused_port().await;
    let mut client = tcp_client(port, fast_client());
    let mut seen = vec![];
    wait_connect_failed(&mut client, &mut seen).await;
    let sent: Vec<Bytes> = (0..10u8).map(|i| Bytes::from(vec![i])).collect();
    for msg in &sent {
        client.handle().send(msg.clone()).await.unwrap();
    }
    let mut server = tcp_server_on(port, ServerConfig::default()).await;
    assert_eq!(wait_messages(&mut server, &mut vec![], 10).await, sent);
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
    let mut client = tcp_client(port, config);
    let (mut stuck, _) = listener.accept().await.unwrap();
    welcome(&mut stuck).await;
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
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
    wait_for(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Closed)
    })
    .await;
    assert!(closing.elapsed() < Duration::from_secs(5));
    assert_eq!(
        disconnects(&seen),
        [(1, DisconnectReason::ClosedLocally)],
        "{seen:?}"
    );
}

#[tokio::test]
async fn server_drops_a_client_that_talks_but_never_reads() {
    use tether_core::codec::{encode, Frame};
    use tether_transports::driver::ServerEvent;
    use tokio::io::AsyncWriteExt;
    let bound = fast_server().policy.detection_bound();
    let mut server = tcp_server(fast_server()).await;
    // A client that keeps pinging (so it is never silent) but never reads
    // what the server writes: only the server's write-stall bound ends it.
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    hello(&mut stream).await;
    let talker = tokio::spawn(async move {
        let mut wire = bytes::BytesMut::new();
        for n in 0u64.. {
            wire.clear();
            encode(&Frame::Ping(n), 1024, &mut wire).unwrap();
            if stream.write_all(&wire).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut seen = vec![];
    let id = wait_accepted(&mut server, &mut seen).await;
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let started = Instant::now();
    // Fill the socket buffers; the queue then stays full.
    while server.try_send(id, chunk.clone()).is_ok() {}
    let (_, reason) = wait_closed(&mut server, &mut seen, bound * 4 + SLACK).await;
    assert_eq!(reason, DisconnectReason::Timeout, "{seen:?}");
    assert!(started.elapsed() >= bound, "dropped before the bound");
    let detail = seen.iter().find_map(|e| match e {
        ServerEvent::Closed { detail, .. } => Some(detail.to_string()),
        _ => None,
    });
    assert!(
        detail
            .as_deref()
            .is_some_and(|d| d.contains("stopped reading")),
        "{detail:?}"
    );
    talker.abort();
}
