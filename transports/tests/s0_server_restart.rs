//! Scenario S0 on TCP: the server process is SIGKILLed and started again on
//! the same port; the client notices, backs off with jitter, reconnects,
//! reports each step exactly once, and its queued messages get through.

mod common;

use bytes::Bytes;
use common::process::{serve_child_main, ServerProcess};
use common::*;
use std::time::Duration;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, ClientEvent};
use tether_transports::endpoint::TransportOptions;
use tether_transports::tcp::{TcpConnector, TcpOptions};

#[test]
#[ignore = "child-process entry point, started by the tests in this file"]
fn serve_child() {
    serve_child_main(TransportOptions::default());
}

async fn echo(client: &mut Client, seen: &mut Vec<Lifecycle>, msg: &'static [u8]) {
    client.handle().send(Bytes::from_static(msg)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, client.next_event()).await {
            Ok(Some(ClientEvent::Message(m))) if m == msg => return,
            Ok(Some(ClientEvent::Lifecycle(step))) => seen.push(step),
            Ok(Some(_)) => {}
            other => panic!("no echo of {msg:?}: {other:?}; events {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_recovers_after_server_is_killed_and_restarted() {
    let server = ServerProcess::start("tcp://127.0.0.1:0", &[]);
    let port = server.port;
    let mut client = Client::spawn(
        TcpConnector::new("127.0.0.1", port, TcpOptions::default()),
        fast_client(),
    )
    .unwrap();
    let mut seen = vec![];
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    echo(&mut client, &mut seen, b"before").await;

    server.kill();
    let lost = wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Lifecycle::Disconnected { .. })
    })
    .await;
    // The kernel of a killed process closes its sockets: FIN (or RST if
    // data was pending), never a silent hang.
    assert!(
        matches!(
            lost,
            Lifecycle::Disconnected {
                generation: 1,
                reason: DisconnectReason::PeerClosed | DisconnectReason::Reset
            }
        ),
        "{lost:?}"
    );
    // While it is down, attempts are refused and spaced by backoff.
    wait_lifecycle(&mut client, &mut seen, Duration::from_secs(5), |e| {
        matches!(
            e,
            Lifecycle::ConnectFailed {
                reason: DisconnectReason::ConnectRefused,
                ..
            }
        )
    })
    .await;
    client
        .handle()
        .send(Bytes::from_static(b"while down"))
        .await
        .unwrap();

    let _server = ServerProcess::start(&format!("tcp://127.0.0.1:{port}"), &[]);
    let back = wait_lifecycle(&mut client, &mut seen, Duration::from_secs(10), |e| {
        matches!(e, Lifecycle::Connected { .. })
    })
    .await;
    let Lifecycle::Connected { generation, .. } = back else {
        unreachable!()
    };
    assert!(generation >= 2);
    // The message queued while down arrives (echoed back).
    echo(&mut client, &mut seen, b"while down").await;
    echo(&mut client, &mut seen, b"after").await;

    // Each generation: one Connecting and one ConnectFailed or Connected,
    // one Disconnected per Connected; waits in between.
    assert_each_disconnect_once(&seen);
    let waits: Vec<Duration> = seen
        .iter()
        .filter_map(|e| match e {
            Lifecycle::Waiting { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert!(!waits.is_empty());
    assert!(
        waits.iter().all(|d| *d <= Duration::from_millis(200)),
        "{waits:?}"
    );
    client.close();
}
