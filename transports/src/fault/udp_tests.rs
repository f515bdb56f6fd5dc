//! The UDP proxy on real loopback sockets: client sockets send to the
//! proxy and the test holds the upstream socket directly.

use super::tests::{wait_for, SILENCE, SOON};
use super::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};

/// An upstream socket, a proxy in front of it and one connected client.
async fn rig() -> (UdpFaultProxy, UdpSocket, UdpSocket) {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let proxy = UdpFaultProxy::start(server.local_addr().unwrap())
        .await
        .unwrap();
    let client = client_of(&proxy).await;
    (proxy, server, client)
}

async fn client_of(proxy: &UdpFaultProxy) -> UdpSocket {
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(proxy.local_addr()).await.unwrap();
    client
}

async fn recv_from(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = timeout(SOON, sock.recv_from(&mut buf))
        .await
        .expect("no datagram arrived")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

async fn assert_silent(sock: &UdpSocket) {
    let mut buf = [0u8; 2048];
    if let Ok(r) = timeout(SILENCE, sock.recv_from(&mut buf)).await {
        panic!("expected silence, got {r:?}");
    }
}

/// Receives datagrams until `quiet` passes without one.
async fn collect(sock: &UdpSocket, quiet: Duration) -> Vec<Vec<u8>> {
    let mut got = vec![];
    let mut buf = [0u8; 2048];
    while let Ok(Ok(n)) = timeout(quiet, sock.recv(&mut buf)).await {
        got.push(buf[..n].to_vec());
    }
    got
}

#[tokio::test]
async fn passes_datagrams_both_ways_with_one_mapping_per_client() {
    let (proxy, server, client) = rig().await;
    let other = client_of(&proxy).await;
    client.send(b"one").await.unwrap();
    let (data, from_one) = recv_from(&server).await;
    assert_eq!(data, b"one");
    other.send(b"two").await.unwrap();
    let (data, from_two) = recv_from(&server).await;
    assert_eq!(data, b"two");
    assert_ne!(from_one, from_two, "each client has its own mapping");

    server.send_to(b"back to one", from_one).await.unwrap();
    server.send_to(b"back to two", from_two).await.unwrap();
    let (data, from) = recv_from(&client).await;
    assert_eq!(data, b"back to one");
    assert_eq!(
        from,
        proxy.local_addr(),
        "replies come from the front socket"
    );
    assert_eq!(recv_from(&other).await.0, b"back to two");

    let stats = proxy.stats();
    assert_eq!(stats.clients, 2);
    assert_eq!(stats.active, 2);
    assert_eq!(stats.datagrams_upstream, 2);
    assert_eq!(stats.datagrams_downstream, 2);
    assert_eq!(stats.datagrams_dropped, 0);
    assert_eq!(proxy.client_count(), 2);
}

#[tokio::test]
async fn black_hole_drops_both_ways_until_lifted() {
    let (proxy, server, client) = rig().await;
    client.send(b"hello").await.unwrap();
    let (_, mapping) = recv_from(&server).await;
    proxy.set_fault(Fault::BlackHole);
    assert_eq!(proxy.fault(), Fault::BlackHole);
    client.send(b"void").await.unwrap();
    server.send_to(b"void", mapping).await.unwrap();
    assert_silent(&server).await;
    assert_silent(&client).await;
    wait_for("dropped datagrams", || proxy.stats().datagrams_dropped == 2).await;

    proxy.set_fault(Fault::Pass);
    client.send(b"back").await.unwrap();
    assert_eq!(recv_from(&server).await, (b"back".to_vec(), mapping));
}

#[tokio::test]
async fn cut_drops_one_direction_only() {
    let (proxy, server, client) = rig().await;
    client.send(b"open").await.unwrap();
    let (_, mapping) = recv_from(&server).await;

    proxy.set_fault(Fault::Cut(Direction::Downstream));
    client.send(b"heard").await.unwrap();
    server.send_to(b"lost", mapping).await.unwrap();
    assert_eq!(recv_from(&server).await.0, b"heard");
    assert_silent(&client).await;

    proxy.set_fault(Fault::Cut(Direction::Upstream));
    client.send(b"lost").await.unwrap();
    server.send_to(b"heard", mapping).await.unwrap();
    assert_eq!(recv_from(&client).await.0, b"heard");
    assert_silent(&server).await;
}

/// Sends `n` numbered datagrams through a fresh proxy with `loss` percent
/// and `seed`; returns the numbers that arrived.
async fn survivors(loss: f64, seed: u64, n: u32) -> Vec<u32> {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let proxy = UdpFaultProxy::start(server.local_addr().unwrap())
        .await
        .unwrap();
    proxy.set_seed(seed);
    proxy.set_loss(loss).unwrap();
    assert!((proxy.loss() - loss).abs() < 1e-9);
    let client = client_of(&proxy).await;
    // Read while sending: a burst would overflow the receive buffer.
    let server = std::sync::Arc::new(server);
    let reader = tokio::spawn({
        let server = server.clone();
        async move { collect(&server, Duration::from_millis(300)).await }
    });
    for i in 0..n {
        client.send(&i.to_be_bytes()).await.unwrap();
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let got = reader.await.unwrap();
    let stats = proxy.stats();
    assert_eq!(
        stats.datagrams_upstream + stats.datagrams_dropped,
        u64::from(n),
        "{stats:?}"
    );
    got.iter()
        .map(|d| u32::from_be_bytes(d[..4].try_into().unwrap()))
        .collect()
}

#[tokio::test]
async fn loss_drops_the_given_share_and_replays_with_a_seed() {
    let first = survivors(30.0, 42, 1000).await;
    assert!(
        (600..=800).contains(&first.len()),
        "{} of 1000 arrived with 30 % loss",
        first.len()
    );
    assert!(first.windows(2).all(|w| w[0] < w[1]), "loss never reorders");
    assert_eq!(
        first,
        survivors(30.0, 42, 1000).await,
        "same seed, same losses"
    );
    assert_eq!(survivors(0.0, 42, 100).await.len(), 100);
    assert!(survivors(100.0, 42, 100).await.is_empty());
}

#[tokio::test]
async fn bad_loss_values_are_rejected_with_the_field_name() {
    let (proxy, _server, _client) = rig().await;
    for bad in [-1.0, 100.5, f64::NAN, f64::INFINITY] {
        let err = proxy.set_loss(bad).unwrap_err();
        assert_eq!(err.field, "fault.loss");
    }
    assert_eq!(proxy.loss(), 0.0, "a rejected value changes nothing");
}

#[tokio::test]
async fn delay_with_jitter_adds_latency_and_keeps_order() {
    let (proxy, server, client) = rig().await;
    proxy.set_seed(7);
    let base = Duration::from_millis(60);
    proxy.set_fault(Fault::Delay {
        base,
        jitter: Duration::from_millis(40),
    });
    let start = Instant::now();
    for i in 0..50u8 {
        client.send(&[i]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (first, _) = recv_from(&server).await;
    assert!(start.elapsed() >= base, "arrived before the delay");
    let mut got = vec![first];
    got.extend(collect(&server, Duration::from_millis(300)).await);
    let expected: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i]).collect();
    assert_eq!(got, expected, "order must be kept under jitter");
}

#[tokio::test]
async fn pause_buffers_and_resume_delivers_in_order() {
    let (proxy, server, client) = rig().await;
    client.send(b"open").await.unwrap();
    let (_, mapping) = recv_from(&server).await;
    proxy.pause();
    assert!(proxy.is_paused());
    for i in 0..5u8 {
        client.send(&[i]).await.unwrap();
    }
    server.send_to(b"held", mapping).await.unwrap();
    assert_silent(&server).await;
    assert_silent(&client).await;
    proxy.resume();
    assert!(!proxy.is_paused());
    let got = collect(&server, Duration::from_millis(200)).await;
    assert_eq!(got, (0..5u8).map(|i| vec![i]).collect::<Vec<_>>());
    assert_eq!(recv_from(&client).await.0, b"held");
    assert_eq!(proxy.stats().datagrams_dropped, 0);
}

#[tokio::test]
async fn forget_clients_opens_new_mappings_and_drops_replies_to_old_ones() {
    let (proxy, server, client) = rig().await;
    client.send(b"before").await.unwrap();
    let (_, old) = recv_from(&server).await;
    assert_eq!(proxy.forget_clients(), 1);
    assert_eq!(proxy.client_count(), 0);

    // The old mapping is gone: a reply to it reaches nobody, silently.
    server.send_to(b"to the old mapping", old).await.unwrap();
    assert_silent(&client).await;
    wait_for("the stale reply to be dropped", || {
        proxy.stats().datagrams_dropped == 1
    })
    .await;

    // The client's next datagram arrives from a new address.
    client.send(b"after").await.unwrap();
    let (data, new) = recv_from(&server).await;
    assert_eq!(data, b"after");
    assert_ne!(new, old, "a forgotten client gets a new source port");
    server.send_to(b"reply", new).await.unwrap();
    assert_eq!(recv_from(&client).await.0, b"reply");
    let stats = proxy.stats();
    assert_eq!((stats.clients, stats.active, stats.forgotten), (2, 1, 1));
}

#[tokio::test]
async fn set_upstream_and_forget_move_clients_to_a_restarted_server() {
    let (proxy, old_server, client) = rig().await;
    client.send(b"one").await.unwrap();
    recv_from(&old_server).await;
    let new_server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    proxy.set_upstream(new_server.local_addr().unwrap());
    assert_eq!(proxy.upstream(), new_server.local_addr().unwrap());
    client.send(b"still old").await.unwrap();
    assert_eq!(recv_from(&old_server).await.0, b"still old");
    proxy.forget_clients();
    client.send(b"new").await.unwrap();
    assert_eq!(recv_from(&new_server).await.0, b"new");
    assert_silent(&old_server).await;
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_front_socket() {
    let (proxy, server, client) = rig().await;
    client.send(b"hi").await.unwrap();
    recv_from(&server).await;
    drop(proxy);
    // The port is closed: the kernel answers with ICMP port unreachable,
    // which a connected UDP socket reports as ECONNREFUSED.
    let mut refused = false;
    for _ in 0..20 {
        let _ = client.send(b"anyone?").await;
        let mut buf = [0u8; 16];
        if let Ok(Err(e)) = timeout(Duration::from_millis(50), client.recv(&mut buf)).await {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
            refused = true;
            break;
        }
    }
    assert!(refused, "the front socket is still open");
}
