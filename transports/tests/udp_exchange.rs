//! The UDP transport under the supervised client and server: exchange,
//! quiet sessions, black holes, and the attacks the session header stops
//! (spoofed heartbeats, replays, forged "unknown session" signals, a wrong
//! PSK). A relay written here sits between client and server where a test
//! needs to drop, duplicate or inject datagrams.
#![cfg(feature = "udp")]

mod common;

use bytes::Bytes;
use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tether_core::codec::Frame;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{Acceptor, Client, Server, ServerEvent};
use tether_transports::endpoint::{self, Endpoint, EndpointError, TransportOptions};
use tether_transports::udp::{
    UdpAcceptor, UdpConnector, UdpOptions, UdpSendError, UdpStats, DEFAULT_MAX_PAYLOAD,
};
use tether_transports::Reconnect;
use tether_transports::{Link, LinkExt};
use tokio::net::UdpSocket;

/// Real-time slack over a configured bound (see s2_heartbeat.rs).
const SLACK: Duration = Duration::from_millis(1500);

fn options() -> UdpOptions {
    UdpOptions {
        handshake_timeout: Some(Duration::from_millis(500)),
        probe_interval: Duration::from_millis(50),
        ..UdpOptions::with_psk(*b"tether udp test pre-shared key!!")
    }
}

/// An echo server on a kernel-chosen port, with its acceptor's counters.
async fn start_echo() -> (EchoServer, Arc<UdpStats>) {
    let acceptor = UdpAcceptor::bind("127.0.0.1:0".parse().unwrap(), options())
        .await
        .unwrap();
    let stats = acceptor.stats();
    let server = EchoServer::spawn(Server::spawn(acceptor, fast_server()).unwrap());
    (server, stats)
}

/// A supervised client of loopback `port`, with its connector's counters.
fn client_of(port: u16, options: UdpOptions) -> (Client, Arc<UdpStats>) {
    let connector = UdpConnector::new("127.0.0.1", port, options).unwrap();
    let stats = connector.stats();
    (Client::spawn(connector, fast_client()).unwrap(), stats)
}

/// Client -> relay -> echo server, connected, one message echoed.
struct Rig {
    server: EchoServer,
    server_stats: Arc<UdpStats>,
    relay: Relay,
    client: Client,
    stats: Arc<UdpStats>,
    seen: Vec<Lifecycle>,
}

impl Rig {
    async fn start() -> Self {
        let (server, server_stats) = start_echo().await;
        let relay = Relay::start(server.addr).await;
        let (mut client, stats) = client_of(relay.addr.port(), options());
        let mut seen = vec![];
        wait_connected(&mut client, &mut seen).await;
        echo(&mut client, &mut seen, b"before").await;
        Self {
            server,
            server_stats,
            relay,
            client,
            stats,
            seen,
        }
    }
}

/// A UDP relay between one client and one server: forwards, black-holes,
/// duplicates, records what the server sent, and injects datagrams.
struct Relay {
    addr: SocketAddr,
    socket: Arc<UdpSocket>,
    client: Arc<Mutex<Option<SocketAddr>>>,
    black_hole: Arc<AtomicBool>,
    duplicate: Arc<AtomicBool>,
    from_server: Arc<Mutex<Vec<Vec<u8>>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(server: SocketAddr) -> Self {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let client = Arc::new(Mutex::new(None));
        let black_hole = Arc::new(AtomicBool::new(false));
        let duplicate = Arc::new(AtomicBool::new(false));
        let from_server = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (socket, client) = (socket.clone(), client.clone());
            let (black_hole, duplicate) = (black_hole.clone(), duplicate.clone());
            let from_server = from_server.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                loop {
                    let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                        continue;
                    };
                    let to = if from == server {
                        from_server.lock().unwrap().push(buf[..n].to_vec());
                        match *client.lock().unwrap() {
                            Some(c) => c,
                            None => continue,
                        }
                    } else {
                        *client.lock().unwrap() = Some(from);
                        server
                    };
                    if black_hole.load(Ordering::SeqCst) {
                        continue;
                    }
                    let copies = if duplicate.load(Ordering::SeqCst) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let _ = socket.send_to(&buf[..n], to).await;
                    }
                }
            })
        };
        Self {
            addr,
            socket,
            client,
            black_hole,
            duplicate,
            from_server,
            _task: task,
        }
    }

    /// Sends `datagram` to the client as if the server had sent it.
    async fn to_client(&self, datagram: &[u8]) {
        let client = self.client.lock().unwrap().expect("client seen");
        self.socket.send_to(datagram, client).await.unwrap();
    }

    /// The session id of the datagrams seen so far (bytes 2..10).
    fn session_id(&self) -> [u8; 8] {
        let seen = self.from_server.lock().unwrap();
        seen.last().expect("server packets seen")[2..10]
            .try_into()
            .unwrap()
    }
}

/// A datagram in the documented layout with an arbitrary (wrong) MAC.
fn forged(kind: u8, session: [u8; 8], seq: u64, body: &[u8]) -> Vec<u8> {
    let mut p = vec![1, kind];
    p.extend_from_slice(&session);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(body);
    if kind != 5 {
        p.extend_from_slice(&[0x42; 16]);
    }
    p
}

/// A codec frame body: ping (2) or pong (3) with `value`.
fn control_frame(kind: u8, value: u64) -> Vec<u8> {
    let mut f = vec![kind, 0, 0, 0, 8];
    f.extend_from_slice(&value.to_be_bytes());
    f
}

#[tokio::test]
async fn supervised_client_and_server_exchange_messages() {
    let (mut server, server_stats) = start_echo().await;
    let (mut client, _) = client_of(server.addr.port(), options());
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    for i in 0..20u8 {
        echo(&mut client, &mut seen, &vec![i; i as usize * 50]).await;
    }
    echo(&mut client, &mut seen, &vec![7; DEFAULT_MAX_PAYLOAD]).await;
    echo(&mut client, &mut seen, b"").await;
    assert_eq!(server_stats.sessions(), 1);

    // An orderly close reaches the server as PeerClosed; the session is gone.
    client.close();
    let mut server_seen = vec![];
    let (_, reason) = wait_closed(&mut server, &mut server_seen, Duration::from_secs(5)).await;
    assert_eq!(reason, DisconnectReason::PeerClosed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server_stats.sessions(), 0);
    assert_eq!(server_stats.forged() + server_stats.replayed(), 0);
    server_seen.extend(server.drain());
    let messages = server_seen
        .iter()
        .filter(|e| matches!(e, ServerEvent::Message { .. }))
        .count();
    assert_eq!(server_accepts(&server_seen), 1, "{server_seen:?}");
    assert_eq!(server_closes(&server_seen), [reason], "{server_seen:?}");
    assert_eq!(messages, 22, "{server_seen:?}");
}

#[tokio::test]
async fn server_close_reaches_the_client_as_peer_closed() {
    let acceptor = UdpAcceptor::bind("127.0.0.1:0".parse().unwrap(), options())
        .await
        .unwrap();
    let mut server = Server::spawn(acceptor, fast_server()).unwrap();
    let (mut client, _) = client_of(server.local_addr().port(), options());
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    let id = wait_accepted(&mut server, &mut vec![]).await;
    server.close(id).unwrap();
    wait_disconnected(&mut client, &mut seen, Duration::from_secs(5)).await;
    assert_eq!(disconnects(&seen), [(1, DisconnectReason::PeerClosed)]);
    // And it reconnects.
    wait_connected(&mut client, &mut seen).await;
    client.close();
}

#[tokio::test]
async fn a_quiet_session_stays_alive_for_many_bounds() {
    let (mut server, server_stats) = start_echo().await;
    let (mut client, _) = client_of(server.addr.port(), options());
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    let bound = fast_heartbeat().detection_bound();
    drain(&mut client, &mut seen, bound * 8).await;
    assert_eq!(disconnects(&seen), [], "{seen:?}");
    echo(&mut client, &mut seen, b"still here").await;
    let server_seen = server.drain();
    assert_eq!(server_closes(&server_seen), [], "{server_seen:?}");
    assert_eq!(server_stats.forged() + server_stats.replayed(), 0);
    client.close();
}

#[tokio::test]
async fn a_black_hole_is_a_timeout_within_the_bound() {
    let mut rig = Rig::start().await;
    rig.relay.black_hole.store(true, Ordering::SeqCst);
    let started = Instant::now();
    wait_disconnected(&mut rig.client, &mut rig.seen, Duration::from_secs(5)).await;
    let took = started.elapsed();
    let bound = fast_heartbeat().detection_bound();
    assert_eq!(disconnects(&rig.seen), [(1, DisconnectReason::Timeout)]);
    assert!(took <= bound + SLACK, "took {took:?}, bound {bound:?}");
    eprintln!("black hole detected after {took:?} (bound {bound:?})");
    // The server, also cut off, drops the session with Timeout too.
    let (_, reason) = wait_closed(&mut rig.server, &mut vec![], bound + SLACK).await;
    assert_eq!(reason, DisconnectReason::Timeout);
    rig.client.close();
}

#[tokio::test]
async fn spoofed_heartbeats_do_not_keep_a_dead_session_alive() {
    // The server stays up (behind the black hole) until the end.
    let Rig {
        server: _server,
        relay,
        mut client,
        stats,
        mut seen,
        ..
    } = Rig::start().await;
    // Let a few genuine heartbeats pass, to have some to replay.
    drain(&mut client, &mut seen, Duration::from_millis(400)).await;

    // The server goes dark; a spoofer who sees the traffic keeps sending
    // pings, pongs and data with the right session id, and replays every
    // genuine packet the server ever sent.
    relay.black_hole.store(true, Ordering::SeqCst);
    let session = relay.session_id();
    let recorded = relay.from_server.lock().unwrap().clone();
    assert!(recorded.len() >= 3, "{}", recorded.len());
    let started = Instant::now();
    let relay = Arc::new(relay);
    let spoofer = {
        let relay = relay.clone();
        tokio::spawn(async move {
            for seq in 1_000u64.. {
                relay
                    .to_client(&forged(3, session, seq, &control_frame(2, seq)))
                    .await;
                relay
                    .to_client(&forged(3, session, seq, &control_frame(3, seq)))
                    .await;
                for packet in &recorded {
                    relay.to_client(packet).await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    wait_disconnected(&mut client, &mut seen, Duration::from_secs(5)).await;
    let took = started.elapsed();
    spoofer.abort();
    let bound = fast_heartbeat().detection_bound();
    assert_eq!(disconnects(&seen), [(1, DisconnectReason::Timeout)]);
    assert!(took <= bound + SLACK, "took {took:?}, bound {bound:?}");
    assert!(stats.forged() >= 4, "forged {}", stats.forged());
    assert!(stats.replayed() >= 3, "replayed {}", stats.replayed());
    client.close();
}

#[tokio::test]
async fn replayed_packets_are_dropped() {
    let mut rig = Rig::start().await;
    // Every datagram is delivered twice, both ways.
    rig.relay.duplicate.store(true, Ordering::SeqCst);
    let msgs: Vec<Bytes> = (0..5u8).map(|i| Bytes::from(vec![i; 3])).collect();
    for m in &msgs {
        rig.client.handle().send(m.clone()).await.unwrap();
    }
    // Each exactly once, in order.
    for m in &msgs {
        expect_message(&mut rig.client, &mut rig.seen, m).await;
    }
    // Everything the server ever sent, once more, much later.
    let recorded = rig.relay.from_server.lock().unwrap().clone();
    for packet in &recorded {
        rig.relay.to_client(packet).await;
    }
    drain(&mut rig.client, &mut rig.seen, Duration::from_millis(300)).await;
    assert!(rig.client.try_next_event().is_none());
    assert_eq!(disconnects(&rig.seen), [], "{:?}", rig.seen);
    let sent = msgs.len() as u64;
    assert!(
        rig.stats.replayed() >= sent + recorded.len() as u64 - 1,
        "client dropped {} replays",
        rig.stats.replayed()
    );
    let server_msgs = rig
        .server
        .drain()
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::Message { .. }))
        .count();
    // Each message once, after the "before" of the rig.
    assert_eq!(
        server_msgs,
        msgs.len() + 1,
        "the server saw each message once"
    );
    assert!(rig.server_stats.replayed() >= sent);
    rig.client.close();
}

#[tokio::test]
async fn forged_unknown_session_signals_are_ignored() {
    let mut rig = Rig::start().await;
    let session = rig.relay.session_id();
    for i in 0..50u8 {
        rig.relay.to_client(&forged(5, session, 0, &[i; 16])).await;
    }
    echo(&mut rig.client, &mut rig.seen, b"after").await;
    drain(&mut rig.client, &mut rig.seen, Duration::from_millis(200)).await;
    assert_eq!(disconnects(&rig.seen), [], "{:?}", rig.seen);
    assert_eq!(rig.stats.resets_ignored(), 50);
    assert_eq!(rig.stats.resets_accepted(), 0);
    rig.client.close();
}

#[tokio::test]
async fn a_wrong_psk_fails_the_attempt_with_connect_timeout() {
    let (mut server, server_stats) = start_echo().await;
    let other = UdpOptions {
        psk: b"another pre-shared key, 32 bytes".to_vec(),
        ..options()
    };
    let (mut client, _) = client_of(server.addr.port(), other);
    let mut seen = vec![];
    let reason = wait_connect_failed(&mut client, &mut seen).await;
    assert_eq!(reason, DisconnectReason::ConnectTimeout, "{seen:?}");
    let (_, detail) = seen.last().unwrap().cause().unwrap();
    assert!(
        detail.as_str().contains("no authenticated answer")
            && detail.as_str().contains("(wrong key or no server)"),
        "{detail}"
    );
    client.close();
    assert!(server_stats.forged() >= 1, "the hellos were counted");
    assert_eq!(server_stats.sessions(), 0);
    assert!(server.drain().is_empty(), "no session was ever accepted");
}

#[tokio::test]
async fn oversized_messages_are_refused_one_by_one() {
    let big = UdpOptions {
        max_payload: 65_000,
        ..options()
    };
    let mut acceptor = UdpAcceptor::bind("127.0.0.1:0".parse().unwrap(), big.clone())
        .await
        .unwrap();
    let port = acceptor.local_addr().unwrap().port();
    let connector = UdpConnector::new("127.0.0.1", port, options()).unwrap();
    let (client, server) = tokio::join!(connector.connect_link(), acceptor.accept_link());
    let (mut client, (mut server, _)) = (client.unwrap(), server.unwrap());

    let too_big = Bytes::from(vec![1; DEFAULT_MAX_PAYLOAD + 1]);
    assert_eq!(
        client.send_frame(Frame::Data(too_big.clone())).await,
        Err(UdpSendError::TooLarge {
            len: DEFAULT_MAX_PAYLOAD + 1,
            max: DEFAULT_MAX_PAYLOAD
        })
    );
    // Through the `Link` trait it is dropped and counted, not fatal.
    client.send(Frame::Data(too_big)).await.unwrap();
    assert_eq!(connector.stats().oversized(), 2);
    client
        .send(Frame::Data(Bytes::from_static(b"ok")))
        .await
        .unwrap();
    assert_eq!(
        server.recv().await.unwrap(),
        Frame::Data(Bytes::from_static(b"ok"))
    );
    // A side configured for 65000 bytes (loopback) sends them; the other
    // side receives whatever fits in a datagram.
    let huge = Bytes::from(vec![9; 65_000]);
    server.send(Frame::Data(huge.clone())).await.unwrap();
    assert_eq!(client.recv().await.unwrap(), Frame::Data(huge));
    client.close().await;
    assert_eq!(server.recv().await, Err(DisconnectReason::PeerClosed));
}

#[tokio::test]
async fn bad_options_are_clear_errors() {
    let e: Endpoint = "udp://127.0.0.1:0".parse().unwrap();
    let err = match endpoint::connector(&e, &TransportOptions::default()) {
        Err(err) => err,
        Ok(_) => panic!("a connector without a PSK"),
    };
    assert!(matches!(err, EndpointError::BadOptions("udp", _)), "{err}");
    assert!(err.to_string().contains("udp.psk"), "{err}");
    let err = match endpoint::acceptor(&e, &TransportOptions::default()).await {
        Err(err) => err,
        Ok(_) => panic!("an acceptor without a PSK"),
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("missing"), "{err}");
    let short = UdpOptions::with_psk(b"short".to_vec());
    let err = UdpConnector::new("127.0.0.1", 1, short).unwrap_err();
    assert!(err.to_string().contains("too short"), "{err}");

    // Through the endpoint functions with a PSK, it works end to end.
    let options = TransportOptions {
        udp: self::options(),
        ..TransportOptions::default()
    };
    let acceptor = endpoint::acceptor(&e, &options).await.unwrap();
    let server = Server::spawn(acceptor, fast_server()).unwrap();
    let url: Endpoint = format!("udp://127.0.0.1:{}", server.local_addr().port())
        .parse()
        .unwrap();
    let connector = endpoint::connector(&url, &options).unwrap();
    assert_eq!(connector.peer(), url.to_string());
    let mut client = Client::spawn(connector, fast_client()).unwrap();
    let mut seen = vec![];
    wait_connected(&mut client, &mut seen).await;
    client.close();
}

#[tokio::test]
async fn without_a_handshake_timeout_the_connect_timeout_rules() {
    // The documented rule: an attempt lasts the connect timeout
    // (`min_connect_timeout`), on UDP as on every other transport.
    let (server, _) = start_echo().await;
    let connect_timeout = Duration::from_millis(1200);
    let wrong = UdpOptions {
        psk: b"another pre-shared key, 32 bytes".to_vec(),
        handshake_timeout: None,
        ..options()
    };
    let connector = UdpConnector::new("127.0.0.1", server.addr.port(), wrong).unwrap();
    let mut config = fast_client();
    config.backoff = config.backoff.with_min_connect_timeout(connect_timeout);
    let mut client = Client::spawn(connector, config).unwrap();
    let mut seen = vec![];
    let started = Instant::now();
    let reason = wait_connect_failed(&mut client, &mut seen).await;
    let took = started.elapsed();
    client.close();
    assert_eq!(reason, DisconnectReason::ConnectTimeout, "{seen:?}");
    assert!(took >= connect_timeout, "gave up after {took:?}");
    let (_, detail) = seen.last().unwrap().cause().unwrap();
    assert!(
        detail.as_str().contains("(wrong key or no server)"),
        "{detail}"
    );
    assert!(detail.as_str().contains("1.2 s"), "{detail}");
}
