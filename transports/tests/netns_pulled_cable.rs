//! Kernel-level liveness proven on a real (virtual) wire: two network
//! namespaces joined by a veth pair, whose cable is pulled with nftables
//! drop rules (scenario S3, and S2 for the supervised client).
//!
//! * kernel keepalive finds a silent dead peer on an idle socket;
//! * TCP_USER_TIMEOUT finds a half-open link while data is in flight,
//!   where keepalive alone does not (the control);
//! * the supervised client's heartbeat finds the pulled cable within its
//!   bound and reconnects once the cable is back.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). Without them each test
//! prints `SKIPPED: <reason>` and passes, unless `TETHER_REQUIRE_NETNS=1`
//! makes that a failure. Each test builds its own pair of namespaces
//! (`tether-<pid>-<n>-a/b`), deleted on drop even when the test fails.
#![cfg(all(target_os = "linux", feature = "fault"))]

mod common;

use common::{
    assert_exactly_once, drain, echo, fast_client, fast_server, wait_connected, wait_disconnected,
    wait_for, EchoServer,
};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tether_core::codec::{Frame, DEFAULT_MAX_FRAME};
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Client, ClientConfig, Server};
use tether_transports::fault::netns::{NetnsError, NetnsPair};
use tether_transports::link::LinkExt;
use tether_transports::tcp::{Keepalive, TcpAcceptor, TcpConnector, TcpLink, TcpOptions};
use tether_transports::Reconnect;
use tokio::time::{timeout, Instant};

/// Real-time bounds are generous: the point is the order of magnitude (a
/// few seconds instead of two hours, or never).
const SLACK: Duration = Duration::from_secs(3);

/// Keepalive as short as Linux allows: probe after 1 s idle, every 1 s,
/// give up after 2 unanswered probes (detection bound 3 s).
const KEEPALIVE: Keepalive = Keepalive {
    idle: Duration::from_secs(1),
    interval: Duration::from_secs(1),
    count: 2,
};

fn lab() -> Option<NetnsPair> {
    match NetnsPair::create() {
        Ok(lab) => Some(lab),
        Err(NetnsError::Unavailable(why)) if std::env::var_os("TETHER_REQUIRE_NETNS").is_none() => {
            eprintln!("SKIPPED: {why}");
            None
        }
        Err(e) => panic!("could not build the namespace lab: {e}"),
    }
}

/// A listener in namespace `b` (a socket keeps the namespace it was made in).
fn listen_in_b(lab: &NetnsPair) -> std::net::TcpListener {
    let addr = SocketAddr::new(lab.b().addr(), 0);
    lab.b()
        .run(|| std::net::TcpListener::bind(addr))
        .expect("enter namespace b")
        .expect("bind in namespace b")
}

/// Accepts the connection already made to `listener` (no waiting: the
/// handshake is done) and hands it to the current runtime.
fn accept(listener: &std::net::TcpListener) -> tokio::net::TcpStream {
    let (stream, _) = listener.accept().expect("accept");
    stream.set_nonblocking(true).unwrap();
    tokio::net::TcpStream::from_std(stream).unwrap()
}

fn connector(to: SocketAddr, options: TcpOptions) -> TcpConnector {
    TcpConnector::new(to.ip().to_string(), to.port(), options)
}

#[test]
fn keepalive_detects_a_silent_dead_peer_on_an_idle_socket() {
    let Some(lab) = lab() else { return };
    let listener = listen_in_b(&lab);
    let to = listener.local_addr().unwrap();
    let options = TcpOptions {
        keepalive: Some(KEEPALIVE),
        user_timeout: None,
        nodelay: true,
    };
    let (verdict, took) = lab
        .a()
        .block_on(|| async {
            let mut client = connector(to, options).connect().await.expect("dial");
            let mut server = TcpLink::new(accept(&listener), DEFAULT_MAX_FRAME, "server".into());
            // The path works: one frame across the veth.
            server.send(Frame::Data("hello".into())).await.unwrap();
            assert_eq!(client.recv().await, Ok(Frame::Data("hello".into())));

            lab.pull_cable().expect("pull the cable");
            let pulled = Instant::now();
            // No application heartbeat: only the kernel's probes can tell.
            let verdict = timeout(KEEPALIVE.detection_bound() + SLACK * 3, client.recv())
                .await
                .expect("keepalive never gave up");
            drop(server);
            (verdict, pulled.elapsed())
        })
        .expect("enter namespace a");
    eprintln!(
        "keepalive (idle 1 s, interval 1 s, 2 probes): dead peer found after {took:?} \
         (bound {:?})",
        KEEPALIVE.detection_bound()
    );
    assert_eq!(
        verdict,
        Err(DisconnectReason::Timeout),
        "ETIMEDOUT is a timeout"
    );
    assert!(
        took >= KEEPALIVE.idle,
        "gave up before the first probe: {took:?}"
    );
    assert!(
        took <= KEEPALIVE.detection_bound() + SLACK,
        "keepalive took {took:?}"
    );
}

/// What happened while a client streamed data into a pulled cable.
struct Streamed {
    /// The first error and when it came (after the pull), if any.
    failure: Option<(DisconnectReason, Duration)>,
    /// Bytes the kernel accepted after the pull (never acknowledged).
    written: usize,
}

/// Connects with `options`, pulls the cable, then writes 1 KiB every 10 ms
/// for at most `observe`, reading at the same time.
fn stream_into_pulled_cable(lab: &NetnsPair, options: TcpOptions, observe: Duration) -> Streamed {
    let listener = listen_in_b(lab);
    let to = listener.local_addr().unwrap();
    lab.a()
        .block_on(|| async {
            let stream = connector(to, options).connect_stream().await.expect("dial");
            let server = accept(&listener);
            lab.pull_cable().expect("pull the cable");
            let pulled = Instant::now();
            let mut written = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let chunk = [0x5au8; 1024];
            let mut buf = [0u8; 1024];
            let streaming = async {
                loop {
                    tokio::select! {
                        _ = stream.readable() => match stream.try_read(&mut buf) {
                            Ok(0) => return DisconnectReason::PeerClosed,
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) => return DisconnectReason::from_io(&e),
                        },
                        _ = tick.tick() => match stream.try_write(&chunk) {
                            Ok(n) => written += n,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) => return DisconnectReason::from_io(&e),
                        },
                    }
                }
            };
            let failure = timeout(observe, streaming)
                .await
                .ok()
                .map(|reason| (reason, pulled.elapsed()));
            drop(server);
            Streamed { failure, written }
        })
        .expect("enter namespace a")
}

#[test]
fn user_timeout_detects_a_half_open_link_with_data_in_flight() {
    let Some(lab) = lab() else { return };
    let user_timeout = Duration::from_secs(2);
    let options = TcpOptions {
        keepalive: Some(KEEPALIVE),
        user_timeout: Some(user_timeout),
        nodelay: true,
    };
    let streamed = stream_into_pulled_cable(&lab, options, user_timeout + SLACK * 3);
    let (reason, took) = streamed.failure.expect("TCP_USER_TIMEOUT never fired");
    eprintln!(
        "TCP_USER_TIMEOUT 2 s: half-open link found after {took:?} while writing \
         ({} bytes unacknowledged)",
        streamed.written
    );
    assert_eq!(reason, DisconnectReason::Timeout);
    assert!(streamed.written > 0, "no data was in flight");
    assert!(took >= user_timeout / 2, "gave up too early: {took:?}");
    assert!(took <= user_timeout + SLACK, "user timeout took {took:?}");
}

#[test]
fn keepalive_alone_misses_a_half_open_link_with_data_in_flight() {
    let Some(lab) = lab() else { return };
    // The control: the same keepalive that finds an idle dead peer within
    // 3 s, no user timeout. Unacknowledged data keeps the kernel in
    // retransmission (minutes), where keepalive never probes.
    let options = TcpOptions {
        keepalive: Some(KEEPALIVE),
        user_timeout: None,
        nodelay: true,
    };
    let observe = Duration::from_secs(5);
    assert!(observe > KEEPALIVE.detection_bound() + Duration::from_secs(1));
    let streamed = stream_into_pulled_cable(&lab, options, observe);
    eprintln!(
        "keepalive only, writing: no verdict within {observe:?} ({} bytes unacknowledged), \
         failure = {:?}",
        streamed.written, streamed.failure
    );
    assert!(streamed.written > 0, "no data was in flight");
    assert_eq!(
        streamed.failure, None,
        "keepalive is not expected to fire while data is unacknowledged"
    );
}

/// An echo server in namespace `b` with the fast heartbeat; sends its port,
/// runs until `stop` fires or is dropped.
async fn echo_server(
    addr: IpAddr,
    port: std::sync::mpsc::Sender<u16>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let acceptor = TcpAcceptor::bind(SocketAddr::new(addr, 0), TcpOptions::default())
        .await
        .expect("bind in namespace b");
    // Its task runs on this thread's runtime while we wait for `stop`.
    let server = EchoServer::spawn(Server::spawn(acceptor, fast_server()).unwrap());
    port.send(server.addr.port()).unwrap();
    let _ = stop.await;
}

#[test]
fn supervised_client_detects_a_pulled_cable_and_reconnects_when_plugged() {
    let Some(lab) = lab() else { return };
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_addr = lab.b().addr();
    std::thread::scope(|s| {
        // Dropped (also by a panic below) before the scope joins: stops the server.
        let stop_tx = stop_tx;
        let server = s.spawn(|| {
            lab.b()
                .block_on(|| echo_server(server_addr, port_tx, stop_rx))
                .expect("enter namespace b")
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server did not start");
        let to = SocketAddr::new(server_addr, port);
        lab.a()
            .block_on(|| async {
                let fast = fast_client();
                let config = ClientConfig {
                    // A dial into the pulled cable is abandoned after 1 s.
                    backoff: fast
                        .backoff
                        .clone()
                        .with_min_connect_timeout(Duration::from_secs(1)),
                    ..fast
                };
                let bound = config.heartbeat.detection_bound();
                let mut client =
                    Client::spawn(connector(to, TcpOptions::default()), config).unwrap();
                let mut seen = vec![];
                wait_connected(&mut client, &mut seen).await;
                echo(&mut client, &mut seen, b"before").await;

                lab.pull_cable().expect("pull the cable");
                let pulled = Instant::now();
                let lost = wait_disconnected(&mut client, &mut seen, bound + SLACK).await;
                let detected = pulled.elapsed();
                assert_eq!(lost, (1, DisconnectReason::Timeout), "{seen:?}");

                // While the cable is out, no attempt may succeed.
                let before = seen.len();
                drain(&mut client, &mut seen, Duration::from_millis(1500)).await;
                assert!(
                    !seen[before..]
                        .iter()
                        .any(|e| matches!(e, Lifecycle::Connected { .. })),
                    "connected through a pulled cable: {seen:?}"
                );

                lab.plug_cable().expect("plug the cable");
                let plugged = Instant::now();
                wait_for(&mut client, &mut seen, Duration::from_secs(15), |e| {
                    matches!(e, Lifecycle::Connected { .. })
                })
                .await;
                let reconnected = plugged.elapsed();
                echo(&mut client, &mut seen, b"after").await;
                eprintln!(
                    "supervised client (heartbeat bound {bound:?}): pulled cable found after \
                     {detected:?}, reconnected {reconnected:?} after the cable was plugged"
                );
                client.close();
                drain(&mut client, &mut seen, Duration::from_millis(200)).await;
                assert_exactly_once(&seen);
            })
            .expect("enter namespace a");
        drop(stop_tx);
        server.join().expect("server thread");
    });
}
