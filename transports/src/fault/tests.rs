//! The proxy on real loopback sockets: a client socket dials the proxy and
//! the test holds the upstream's accepted socket directly.

use super::*;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// How long "nothing arrives" is watched for.
pub(super) const SILENCE: Duration = Duration::from_millis(150);
/// Upper bound for anything that should happen promptly.
pub(super) const SOON: Duration = Duration::from_secs(5);

/// An upstream that hands every accepted socket to the test.
struct Upstream {
    addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<TcpStream>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, accepted) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                if tx.send(s).is_err() {
                    return;
                }
            }
        });
        Self { addr, accepted }
    }

    async fn next(&mut self) -> TcpStream {
        timeout(SOON, self.accepted.recv())
            .await
            .expect("upstream accepted nothing")
            .unwrap()
    }
}

/// A proxy, a client connected through it, and the upstream's end.
async fn pair() -> (FaultProxy, Upstream, TcpStream, TcpStream) {
    let mut upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    let client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let server = upstream.next().await;
    (proxy, upstream, client, server)
}

async fn read_exactly(sock: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    timeout(SOON, sock.read_exact(&mut buf))
        .await
        .expect("read timed out")
        .unwrap();
    buf
}

/// Asserts that nothing at all (no byte, no FIN, no RST) arrives.
async fn assert_silent(sock: &mut TcpStream) {
    let mut buf = [0u8; 64];
    if let Ok(r) = timeout(SILENCE, sock.read(&mut buf)).await {
        panic!("expected silence, got {r:?}");
    }
}

async fn read_result(sock: &mut TcpStream) -> std::io::Result<usize> {
    let mut buf = [0u8; 64];
    timeout(SOON, sock.read(&mut buf))
        .await
        .expect("neither data nor an end arrived")
}

/// Polls `cond` until it holds; fails after [`SOON`].
pub(super) async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < SOON, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn passes_bytes_both_ways() {
    let (proxy, _up, mut client, mut server) = pair().await;
    client.write_all(b"hello").await.unwrap();
    assert_eq!(read_exactly(&mut server, 5).await, b"hello");
    server.write_all(b"world!").await.unwrap();
    assert_eq!(read_exactly(&mut client, 6).await, b"world!");
    let stats = proxy.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.active, 1);
    assert_eq!(stats.bytes_upstream, 5);
    assert_eq!(stats.bytes_downstream, 6);
    assert_eq!(proxy.connection_count(), 1);
}

#[tokio::test]
async fn black_hole_drops_bytes_and_ends_but_keeps_sockets_open() {
    let (proxy, _up, mut client, mut server) = pair().await;
    proxy.set_fault(Fault::BlackHole);
    assert_eq!(proxy.fault(), Fault::BlackHole);
    client.write_all(b"into the void").await.unwrap();
    server.write_all(b"unheard").await.unwrap();
    assert_silent(&mut server).await;
    assert_silent(&mut client).await;
    wait_for("dropped bytes", || proxy.stats().bytes_dropped == 20).await;

    // The server's FIN vanishes too: the client sees silence, not a close.
    server.shutdown().await.unwrap();
    assert_silent(&mut client).await;

    // Once the hole lifts, the swallowed close is passed on.
    proxy.set_fault(Fault::Pass);
    assert_eq!(read_result(&mut client).await.unwrap(), 0);
}

#[tokio::test]
async fn black_hole_parks_new_connections_without_loss() {
    let mut upstream = Upstream::start().await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    proxy.set_fault(Fault::BlackHole);
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    client.write_all(b"early").await.unwrap();
    assert!(
        timeout(SILENCE, upstream.accepted.recv()).await.is_err(),
        "the upstream must not be dialed inside a black hole"
    );
    proxy.set_fault(Fault::Pass);
    let mut server = upstream.next().await;
    assert_eq!(read_exactly(&mut server, 5).await, b"early");
}

#[tokio::test]
async fn reset_all_sends_rst_to_both_sides() {
    let (proxy, mut upstream, mut client, mut server) = pair().await;
    assert_eq!(proxy.reset_all(), 1);
    assert_eq!(
        read_result(&mut client).await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
    assert_eq!(
        read_result(&mut server).await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
    assert_eq!(proxy.stats().reset, 1);
    wait_for("the connection to go", || proxy.connection_count() == 0).await;

    // One-shot: the next connection is served normally.
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut server = upstream.next().await;
    client.write_all(b"again").await.unwrap();
    assert_eq!(read_exactly(&mut server, 5).await, b"again");
    assert_eq!(proxy.reset_all(), 1);
}

#[tokio::test]
async fn close_all_sends_fin_to_both_sides() {
    let (proxy, _up, mut client, mut server) = pair().await;
    assert_eq!(proxy.close_all(), 1);
    assert_eq!(read_result(&mut client).await.unwrap(), 0);
    assert_eq!(read_result(&mut server).await.unwrap(), 0);
    assert_eq!(proxy.stats().closed, 1);
    drop(client);
    drop(server);
    wait_for("the connection to go", || proxy.connection_count() == 0).await;
    assert_eq!(proxy.close_all(), 0);
}

#[tokio::test]
async fn cut_drops_one_direction_only() {
    let (proxy, _up, mut client, mut server) = pair().await;
    proxy.set_fault(Fault::Cut(Direction::Upstream));
    client.write_all(b"lost").await.unwrap();
    server.write_all(b"heard").await.unwrap();
    assert_eq!(read_exactly(&mut client, 5).await, b"heard");
    assert_silent(&mut server).await;

    proxy.set_fault(Fault::Cut(Direction::Downstream));
    client.write_all(b"heard").await.unwrap();
    server.write_all(b"lost").await.unwrap();
    assert_eq!(read_exactly(&mut server, 5).await, b"heard");
    assert_silent(&mut client).await;
}

#[tokio::test]
async fn delay_adds_latency_and_keeps_order() {
    let (proxy, _up, mut client, mut server) = pair().await;
    proxy.set_seed(7);
    let base = Duration::from_millis(60);
    proxy.set_fault(Fault::Delay {
        base,
        jitter: Duration::from_millis(40),
    });
    let sent: Vec<u8> = (0..200u8).collect();
    let start = Instant::now();
    for chunk in sent.chunks(10) {
        client.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut first = [0u8; 1];
    timeout(SOON, server.read_exact(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(start.elapsed() >= base, "arrived before the delay");
    let mut got = first.to_vec();
    got.extend(read_exactly(&mut server, sent.len() - 1).await);
    assert_eq!(got, sent, "order must be kept under jitter");
}

#[tokio::test]
async fn a_black_hole_also_swallows_bytes_still_delayed() {
    let (proxy, _up, mut client, mut server) = pair().await;
    proxy.set_fault(Fault::Delay {
        base: Duration::from_millis(300),
        jitter: Duration::ZERO,
    });
    client.write_all(b"in flight").await.unwrap();
    // Read by the proxy, held by the delay.
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.set_fault(Fault::BlackHole);
    wait_for("dropped bytes", || proxy.stats().bytes_dropped == 9).await;
    proxy.set_fault(Fault::Pass);
    assert_silent(&mut server).await;
    assert_eq!(proxy.stats().bytes_upstream, 0);
}

#[tokio::test]
async fn pause_holds_everything_and_resume_delivers_it() {
    let (proxy, _up, mut client, mut server) = pair().await;
    proxy.pause();
    assert!(proxy.is_paused());
    client.write_all(b"held").await.unwrap();
    server.write_all(b"also held").await.unwrap();
    assert_silent(&mut server).await;
    assert_silent(&mut client).await;
    proxy.resume();
    assert_eq!(read_exactly(&mut server, 4).await, b"held");
    assert_eq!(read_exactly(&mut client, 9).await, b"also held");
    assert_eq!(proxy.stats().bytes_dropped, 0);
}

#[tokio::test]
async fn set_upstream_redirects_new_connections_only() {
    let (proxy, mut old, mut client, mut server) = pair().await;
    let mut new = Upstream::start().await;
    proxy.set_upstream(new.addr);
    assert_eq!(proxy.upstream(), new.addr);
    let mut client2 = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let mut server2 = new.next().await;
    client2.write_all(b"new").await.unwrap();
    assert_eq!(read_exactly(&mut server2, 3).await, b"new");
    client.write_all(b"old").await.unwrap();
    assert_eq!(read_exactly(&mut server, 3).await, b"old");
    assert!(old.accepted.try_recv().is_err());
}

#[tokio::test]
async fn refused_upstream_resets_the_client() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let proxy = FaultProxy::start(dead).await.unwrap();
    let mut client = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(
        read_result(&mut client).await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
    assert_eq!(proxy.stats().upstream_failures, 1);
}

#[tokio::test]
async fn a_reset_from_one_side_reaches_the_other() {
    let (_proxy, _up, mut client, server) = pair().await;
    // SO_LINGER 0 then close: an RST (zero linger never blocks).
    socket2::SockRef::from(&server)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(server);
    assert_eq!(
        read_result(&mut client).await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
}

#[tokio::test]
async fn half_close_is_passed_on() {
    let (_proxy, _up, mut client, mut server) = pair().await;
    server.shutdown().await.unwrap();
    assert_eq!(read_result(&mut client).await.unwrap(), 0);
    // The other direction still works.
    client.write_all(b"still here").await.unwrap();
    assert_eq!(read_exactly(&mut server, 10).await, b"still here");
    client.shutdown().await.unwrap();
    assert_eq!(read_result(&mut server).await.unwrap(), 0);
}

#[tokio::test]
async fn dropping_the_proxy_ends_its_connections() {
    let (proxy, _up, mut client, mut server) = pair().await;
    drop(proxy);
    assert!(!matches!(read_result(&mut client).await, Ok(n) if n > 0));
    assert!(!matches!(read_result(&mut server).await, Ok(n) if n > 0));
}
