//! Streams through a supervised client and an echoing supervised server,
//! every echo checked in order:
//!
//! * both ends writing more than the network buffers hold, at the same time:
//!   the client streams 48 MiB while the server echoes every message and the
//!   client application reads nothing until it has sent it all. A driver
//!   that stopped reading while its write waits would wedge both ends until
//!   the write timeout declared a healthy peer dead; the connection must
//!   never drop.
//! * a quarter of a million tiny messages, so that the drivers' batched
//!   reads and writes run at their limits many times over.

#![cfg(feature = "tcp")]

mod common;

use bytes::Bytes;
use common::{tcp_client, tcp_server, wait_connected, EchoServer};
use std::time::Duration;
use tether_core::liveness::{HeartbeatConfig, Policy};
use tether_transports::driver::{ClientConfig, ClientEvent, ServerConfig};

/// Writes that cannot finish within 3 s count as a dead peer: a wedge
/// shows up as a `Timeout` disconnect well within the test's limits, while
/// a loaded machine's scheduling delays stay far below the bound.
fn heartbeat() -> HeartbeatConfig {
    HeartbeatConfig::new(Duration::from_secs(1), Duration::from_secs(1), 2)
}

/// Sends `count` messages of `len` bytes (numbered, with a fill pattern)
/// through a fresh TCP pair, and only then checks every echo.
async fn stream_and_check(count: usize, len: usize) {
    let server = tcp_server(ServerConfig {
        policy: Policy::Heartbeat(heartbeat()),
        send_queue: 64,
        ..ServerConfig::default()
    })
    .await;
    let port = server.local_addr().port();
    let _echo = EchoServer::spawn(server);
    let mut client = tcp_client(
        port,
        ClientConfig {
            heartbeat: heartbeat(),
            max_pending: 64,
            // Room for the whole echo: the application reading nothing
            // is not what this test holds back.
            max_received: tether_core::limits::MAX_QUEUE,
            ..ClientConfig::default()
        },
    );
    let mut seen = Vec::new();
    wait_connected(&mut client, &mut seen).await;

    let handle = client.handle();
    let sender = tokio::spawn(async move {
        for i in 0..count {
            let mut msg = vec![(i % 251) as u8; len];
            msg[..8].copy_from_slice(&(i as u64).to_be_bytes());
            handle.send(Bytes::from(msg)).await.expect("send");
        }
    });
    tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .expect("the client could send everything")
        .expect("sender");

    let mut next = 0usize;
    let mut events = Vec::new();
    while next < count {
        let n = tokio::time::timeout(
            Duration::from_secs(30),
            client.next_events(&mut events, 512),
        )
        .await
        .unwrap_or_else(|_| panic!("echo {next} of {count} never came"));
        assert!(n > 0, "client events ended");
        for event in events.drain(..) {
            match event {
                ClientEvent::Message(m) => {
                    assert_eq!(m.len(), len);
                    let i = u64::from_be_bytes(m[..8].try_into().unwrap()) as usize;
                    assert_eq!(i, next, "echoes arrive in order, none lost");
                    assert!(m[8..].iter().all(|&b| b == (i % 251) as u8));
                    next += 1;
                }
                ClientEvent::Lifecycle(step) => panic!("the connection changed: {step:?}"),
                ClientEvent::Failed(cause) => panic!("the client failed: {cause}"),
            }
        }
    }
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_of_a_bulk_stream_never_wedges_either_end() {
    stream_and_check(3072, 16 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarter_million_small_messages_all_echoed_in_order() {
    stream_and_check(250_000, 16).await;
}
