//! The connection machine in simulated time: two machines joined by a
//! byte pipe (or a datagram list) that the tests can cut, stall or drop.

use super::*;
use crate::liveness::{HeartbeatConfig, IdleTimeoutConfig, Policy};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn config() -> ConnectionConfig {
    ConnectionConfig {
        policy: Policy::Heartbeat(HeartbeatConfig::new(ms(100), ms(100), 2)),
        opening_timeout: ms(500),
        ..ConnectionConfig::default()
    }
}

/// Client and server over a stream, with their own wire buffers.
struct Pair {
    now: Instant,
    client: Connection,
    server: Connection,
    to_server: BytesMut,
    to_client: BytesMut,
    /// Bytes are dropped both ways (a black hole).
    cut: bool,
    client_events: Vec<ConnectionEvent>,
    server_events: Vec<ConnectionEvent>,
}

impl Pair {
    fn new(client: ConnectionConfig, server: ConnectionConfig) -> Self {
        let now = Instant::now();
        Self {
            now,
            client: Connection::new(Side::Client, client, now).unwrap(),
            server: Connection::new(Side::Server, server, now).unwrap(),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            cut: false,
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// Moves bytes both ways until nothing moves.
    fn pump(&mut self) {
        for _ in 0..100 {
            let a = self.client.poll_transmit(self.now, &mut self.to_server);
            if self.cut {
                self.to_server.clear();
            }
            self.client.handle_written(self.now, 1, 0);
            self.server.handle_bytes(self.now, &mut self.to_server);
            let b = self.server.poll_transmit(self.now, &mut self.to_client);
            if self.cut {
                self.to_client.clear();
            }
            self.server.handle_written(self.now, 1, 0);
            self.client.handle_bytes(self.now, &mut self.to_client);
            self.drain();
            if !a && !b {
                return;
            }
        }
        panic!("the pair never went quiet");
    }

    fn drain(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    /// Advances to the earlier of both machines' deadlines (or `limit`).
    fn step(&mut self, limit: Instant) -> bool {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= limit => {
                self.now = self.now.max(t);
                self.client.handle_timeout(self.now);
                self.server.handle_timeout(self.now);
                self.pump();
                true
            }
            _ => {
                self.now = limit;
                false
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.step(until) {}
        self.pump();
    }
}

fn closed(events: &[ConnectionEvent]) -> Vec<&Cause> {
    events
        .iter()
        .filter_map(|e| match e {
            ConnectionEvent::Closed(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn connected(events: &[ConnectionEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ConnectionEvent::Connected { .. }))
        .count()
}

fn messages(events: &[ConnectionEvent]) -> Vec<Bytes> {
    events
        .iter()
        .filter_map(|e| match e {
            ConnectionEvent::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_client_is_connected_only_when_the_welcome_arrives() {
    let mut p = Pair::new(config(), config());
    p.client.send(Bytes::from_static(b"early")).unwrap();
    // The hello goes out, but nothing has answered: not connected, and the
    // queued message waits for the opening.
    p.client.poll_transmit(p.now, &mut p.to_server);
    p.drain();
    assert_eq!(connected(&p.client_events), 0);
    assert_eq!(p.client.pending(), 1);
    p.pump();
    assert_eq!(connected(&p.client_events), 1);
    assert_eq!(connected(&p.server_events), 1);
    assert_eq!(
        messages(&p.server_events),
        vec![Bytes::from_static(b"early")]
    );
    assert!(matches!(
        p.client_events[0],
        ConnectionEvent::Connected { version: 1, .. }
    ));
}

#[test]
fn capabilities_are_the_bits_both_sides_set() {
    let mut c = config();
    c.capabilities = 0b1011;
    let mut s = config();
    s.capabilities = 0b0110;
    let mut p = Pair::new(c, s);
    p.pump();
    assert_eq!(p.client.capabilities(), 0b0010);
    assert_eq!(p.server.capabilities(), 0b0010);
}

#[test]
fn a_server_that_never_answers_is_a_connect_timeout_not_a_connection() {
    let mut p = Pair::new(config(), config());
    p.cut = true; // the kernel accepted, nobody reads: the storm case
    p.run_for(ms(2000));
    assert_eq!(connected(&p.client_events), 0);
    let ends = closed(&p.client_events);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].reason, DisconnectReason::ConnectTimeout);
    assert!(
        ends[0].detail.as_str().contains("no welcome"),
        "{}",
        ends[0]
    );
    // Exactly at the opening timeout, in simulated time.
    assert!(p.client.poll_timeout().is_none());
}

#[test]
fn both_sides_measure_the_round_trip() {
    let mut p = Pair::new(config(), config());
    p.pump();
    p.run_for(ms(350));
    assert!(p.client.rtt().is_some(), "client pinged and got a pong");
    assert!(p.server.rtt().is_some(), "server pinged and got a pong");
    assert!(closed(&p.client_events).is_empty());
    assert!(closed(&p.server_events).is_empty());
}

#[test]
fn a_black_hole_is_detected_within_the_bound_on_both_sides() {
    let mut p = Pair::new(config(), config());
    p.pump();
    let start = p.now;
    p.cut = true;
    let until = start + ms(2000);
    while closed(&p.client_events).is_empty() && p.step(until) {}
    let took = p.now - start;
    let bound = p.client.detection_bound();
    assert!(took <= bound, "detected after {took:?}, bound {bound:?}");
    assert_eq!(closed(&p.server_events).len(), 1, "the server noticed too");
    assert_eq!(
        closed(&p.client_events)[0].reason,
        DisconnectReason::Timeout
    );
    assert!(closed(&p.client_events)[0]
        .detail
        .as_str()
        .starts_with("nothing received for"));
}

#[test]
fn a_peer_that_stops_reading_is_found_by_the_write_stall() {
    let mut c = config();
    c.write_stall = Some(ms(300));
    let mut p = Pair::new(c, config());
    p.pump();
    let start = p.now;
    p.client.send(Bytes::from(vec![1u8; 1000])).unwrap();
    let mut buf = BytesMut::new();
    p.client.poll_transmit(p.now, &mut buf);
    // The socket takes nothing, over and over.
    p.client.handle_written(p.now, 0, buf.len());
    loop {
        let t = p.client.poll_timeout().unwrap();
        p.now = t;
        p.client.handle_timeout(t);
        // The server keeps talking, so the heartbeat alone would not end it.
        p.client.handle_bytes(t, &mut {
            let mut b = BytesMut::new();
            codec::encode(&Frame::Ping(1), 64, &mut b).unwrap();
            b
        });
        p.client.handle_written(t, 0, buf.len());
        if p.client.is_closed() {
            break;
        }
    }
    let mut ends = Vec::new();
    while let Some(e) = p.client.poll_event() {
        ends.push(e);
    }
    let cause = closed(&ends)[0].clone();
    assert_eq!(cause.reason, DisconnectReason::Timeout);
    assert!(cause.detail.as_str().contains("stopped reading"), "{cause}");
    assert_eq!(p.now - start, ms(300));
}

#[test]
fn progress_moves_the_stall_deadline() {
    let mut c = config();
    c.write_stall = Some(ms(300));
    let now = Instant::now();
    let mut conn = Connection::new(Side::Client, c, now).unwrap();
    conn.handle_written(now, 0, 10);
    conn.handle_written(now + ms(200), 5, 5);
    conn.handle_timeout(now + ms(400));
    assert!(!conn.is_closed(), "5 bytes went out at 200 ms");
    conn.handle_timeout(now + ms(500));
    assert!(conn.is_closed());
}

#[test]
fn a_full_receive_queue_stops_reading_until_polled() {
    let mut s = config();
    s.recv_queue = 2;
    let mut p = Pair::new(config(), s);
    p.pump();
    for i in 0..5u8 {
        p.client.send(Bytes::from(vec![i])).unwrap();
    }
    p.client.poll_transmit(p.now, &mut p.to_server);
    p.server.handle_bytes(p.now, &mut p.to_server);
    assert!(!p.server.wants_read());
    assert!(!p.to_server.is_empty(), "the rest stays in the buffer");
    let mut got = Vec::new();
    while got.len() < 5 {
        match p.server.poll_event() {
            Some(ConnectionEvent::Message(m)) => got.push(m[0]),
            Some(other) => panic!("{other:?}"),
            None => p.server.handle_bytes(p.now, &mut p.to_server),
        }
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4], "in order, none lost");
}

#[test]
fn sends_are_bounded_and_checked() {
    let mut c = config();
    c.send_queue = 2;
    c.max_frame = 4;
    let now = Instant::now();
    let mut conn = Connection::new(Side::Client, c, now).unwrap();
    assert_eq!(
        conn.send(Bytes::from_static(b"12345")),
        Err(ConnSendError::TooLarge { len: 5, max: 4 })
    );
    conn.send(Bytes::from_static(b"a")).unwrap();
    conn.send(Bytes::from_static(b"b")).unwrap();
    assert_eq!(
        conn.send(Bytes::from_static(b"c")),
        Err(ConnSendError::Full)
    );
    conn.close(now);
    assert_eq!(
        conn.send(Bytes::from_static(b"d")),
        Err(ConnSendError::Closed)
    );
    // Closed while opening: the queued messages are handed back, not lost.
    assert_eq!(conn.take_unsent().len(), 2);
}

#[test]
fn an_orderly_close_writes_what_was_queued_first() {
    let mut p = Pair::new(config(), config());
    p.pump();
    p.client.send(Bytes::from_static(b"last words")).unwrap();
    p.client.close(p.now);
    assert!(!p.client.is_closed(), "still writing");
    p.pump();
    assert_eq!(
        messages(&p.server_events),
        vec![Bytes::from_static(b"last words")]
    );
    let ends = closed(&p.client_events);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].reason, DisconnectReason::ClosedLocally);
    // The transport's end afterwards changes nothing: reported once.
    p.client.handle_closed(Cause::from(DisconnectReason::Reset));
    p.client.close(p.now);
    p.drain();
    assert_eq!(closed(&p.client_events).len(), 1);
}

#[test]
fn protocol_violations_end_the_connection_once() {
    let now = Instant::now();
    // Data before the hello.
    let mut server = Connection::new(Side::Server, config(), now).unwrap();
    let mut buf = BytesMut::new();
    codec::encode(&Frame::Data(Bytes::from_static(b"x")), 64, &mut buf).unwrap();
    server.handle_bytes(now, &mut buf);
    assert!(server.is_closed());
    // Another version.
    let mut server = Connection::new(Side::Server, config(), now).unwrap();
    let hello = Hello {
        version: 9,
        capabilities: 0,
        extra: Bytes::new(),
    };
    codec::encode(&Frame::Hello(hello), 64, &mut buf).unwrap();
    server.handle_bytes(now, &mut buf);
    match server.poll_event() {
        Some(ConnectionEvent::Closed(c)) => {
            assert_eq!(c.reason, DisconnectReason::ProtocolError);
            assert!(c.detail.as_str().contains("version 9"), "{c}");
        }
        other => panic!("{other:?}"),
    }
    // Garbage.
    let mut client = Connection::new(Side::Client, config(), now).unwrap();
    let mut junk = BytesMut::from(&b"HTTP/1.1 400 Bad Request\r\n"[..]);
    client.handle_bytes(now, &mut junk);
    assert!(matches!(
        client.poll_event(),
        Some(ConnectionEvent::Closed(Cause {
            reason: DisconnectReason::ProtocolError,
            ..
        }))
    ));
    assert_eq!(client.poll_event(), None);
}

#[test]
fn ignorable_frames_are_skipped_and_count_as_traffic() {
    let mut p = Pair::new(config(), config());
    p.pump();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0xc0, 0, 0, 0, 1, 42]);
    codec::encode(&Frame::Data(Bytes::from_static(b"after")), 64, &mut buf).unwrap();
    p.server.handle_bytes(p.now, &mut buf);
    p.drain();
    assert_eq!(
        messages(&p.server_events),
        vec![Bytes::from_static(b"after")]
    );
    assert!(closed(&p.server_events).is_empty());
}

#[test]
fn a_raw_opening_is_connected_at_once_and_sends_no_hello() {
    let mut c = config();
    c.opening = Opening::Raw;
    let now = Instant::now();
    let mut conn = Connection::new(Side::Client, c, now).unwrap();
    assert!(conn.is_open());
    conn.send(Bytes::from_static(b"x")).unwrap();
    let mut buf = BytesMut::new();
    conn.poll_transmit(now, &mut buf);
    assert_eq!(
        codec::decode(&mut buf, 64).unwrap(),
        Some(Frame::Data(Bytes::from_static(b"x")))
    );
}

#[test]
fn an_idle_timeout_server_never_pings() {
    let mut s = config();
    s.policy = Policy::IdleTimeout(IdleTimeoutConfig {
        keepalive: ms(200),
        factor: 1.5,
    });
    let now = Instant::now();
    let mut server = Connection::new(Side::Server, s, now).unwrap();
    let mut buf = BytesMut::new();
    codec::encode(&Frame::Hello(Hello::new(0)), 64, &mut buf).unwrap();
    server.handle_bytes(now, &mut buf);
    let mut out = BytesMut::new();
    server.poll_transmit(now, &mut out);
    server.handle_written(now, out.len(), 0);
    out.clear();
    let mut t = now;
    while !server.is_closed() {
        t = server.poll_timeout().unwrap();
        server.handle_timeout(t);
        assert!(
            !server.poll_transmit(t, &mut out),
            "no ping from an idle-timeout server"
        );
    }
    assert_eq!(t - now, ms(300));
}

#[test]
fn a_client_that_only_listens_still_keeps_an_idle_timeout_server_satisfied() {
    // The server judges the client only by what it receives; the client
    // hears a steady stream, so its own liveness never asks for a ping.
    // Having sent nothing for an interval, it pings anyway.
    let mut s = config();
    s.policy = Policy::IdleTimeout(IdleTimeoutConfig {
        keepalive: ms(100),
        factor: 1.5,
    });
    let mut p = Pair::new(config(), s);
    p.pump();
    assert_eq!(connected(&p.client_events), 1);
    for i in 0..100u64 {
        p.server
            .send(Bytes::from(i.to_be_bytes().to_vec()))
            .unwrap();
        p.run_for(ms(20));
    }
    assert_eq!(closed(&p.server_events), Vec::<&Cause>::new());
    assert_eq!(closed(&p.client_events), Vec::<&Cause>::new());
    assert_eq!(messages(&p.client_events).len(), 100);
    // The client's own probe never fired (it always heard the server), and
    // the answers to its keepalives measure nothing.
    assert!(p.client.rtt().is_none());
}

#[test]
fn over_datagrams_a_lost_hello_is_repeated_and_early_data_kept() {
    let now = Instant::now();
    let mut client = Connection::new_datagram(Side::Client, config(), now).unwrap();
    let mut server = Connection::new_datagram(Side::Server, config(), now).unwrap();
    let mut d = BytesMut::new();
    assert!(client.poll_datagram(now, &mut d));
    d.clear(); // lost
    let t = client.poll_timeout().unwrap();
    assert!(t - now <= HELLO_RETRY);
    client.handle_timeout(t);
    assert!(client.poll_datagram(t, &mut d));
    server.handle_datagram(t, d.split().freeze());
    server.send(Bytes::from_static(b"first")).unwrap();
    // The welcome and the data leave in that order, and arrive reversed.
    assert!(server.poll_datagram(t, &mut d));
    let welcome = d.split().freeze();
    assert!(server.poll_datagram(t, &mut d));
    let data = d.split().freeze();
    client.handle_datagram(t, data);
    client.handle_datagram(t, welcome.clone());
    // A duplicate welcome changes nothing.
    client.handle_datagram(t, welcome);
    let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
    assert_eq!(connected(&events), 1);
    assert_eq!(messages(&events), vec![Bytes::from_static(b"first")]);
    assert!(closed(&events).is_empty());
}

#[test]
fn an_idle_connection_holds_no_buffers() {
    let mut p = Pair::new(config(), config());
    p.client.send(Bytes::from(vec![7u8; 100_000])).unwrap();
    p.pump();
    assert_eq!(messages(&p.server_events).len(), 1);
    // What was read was handed on; the big buffers were given back.
    assert!(p.to_server.capacity() <= TRANSMIT_BUDGET);
    assert_eq!(
        p.server.events.capacity(),
        p.server.events.capacity().min(64)
    );
}

#[test]
fn a_full_receive_queue_drops_datagrams_instead_of_growing() {
    let mut c = config();
    c.opening = Opening::Raw;
    c.recv_queue = 2;
    let now = Instant::now();
    let mut conn = Connection::new_datagram(Side::Client, c, now).unwrap();
    let mut d = BytesMut::new();
    for i in 0..5u8 {
        codec::encode(&Frame::Data(Bytes::from(vec![i])), 64, &mut d).unwrap();
        conn.handle_datagram(now, d.split().freeze());
    }
    assert!(!conn.wants_read());
    let events: Vec<_> = std::iter::from_fn(|| conn.poll_event()).collect();
    assert_eq!(
        messages(&events),
        vec![Bytes::from_static(&[0]), Bytes::from_static(&[1])],
        "two waited; the rest were dropped, as the network drops them"
    );
    assert!(conn.wants_read());
    codec::encode(&Frame::Data(Bytes::from_static(b"next")), 64, &mut d).unwrap();
    conn.handle_datagram(now, d.split().freeze());
    assert_eq!(
        conn.poll_event(),
        Some(ConnectionEvent::Message(Bytes::from_static(b"next")))
    );
}

#[test]
fn an_idle_connection_gives_its_queue_memory_back_when_time_passes() {
    let mut p = Pair::new(config(), config());
    p.pump();
    assert_eq!(connected(&p.client_events), 1);
    for i in 0..200u32 {
        p.client
            .send(Bytes::from(i.to_be_bytes().to_vec()))
            .unwrap();
    }
    p.pump();
    assert_eq!(messages(&p.server_events).len(), 200);
    assert!(p.server.events.capacity() > 0, "the burst used the queue");
    // Idle for a few heartbeats: a deadline that fires after one with no
    // message between releases what is empty; pings keep flowing.
    p.run_for(ms(350));
    assert!(closed(&p.client_events).is_empty() && closed(&p.server_events).is_empty());
    for side in [&p.client, &p.server] {
        assert_eq!(side.events.capacity(), 0);
        assert_eq!(side.send.queue_capacity(), 0);
        assert_eq!(side.early.capacity(), 0);
    }
}

#[test]
fn a_raw_side_refuses_the_opening_alike_on_streams_and_datagrams() {
    let mut raw = config();
    raw.opening = Opening::Raw;
    let now = Instant::now();
    for datagrams in [false, true] {
        let new = if datagrams {
            Connection::new_datagram
        } else {
            Connection::new
        };
        let mut client = new(Side::Client, config(), now).unwrap();
        let mut server = new(Side::Server, raw, now).unwrap();
        let mut wire = BytesMut::new();
        if datagrams {
            assert!(client.poll_datagram(now, &mut wire), "the hello");
            server.handle_datagram(now, wire.split().freeze());
        } else {
            client.poll_transmit(now, &mut wire);
            server.handle_bytes(now, &mut wire);
        }
        let events: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
        let causes = closed(&events);
        assert_eq!(causes.len(), 1, "datagrams {datagrams}: {events:?}");
        assert_eq!(causes[0].reason, DisconnectReason::ProtocolError);
        assert!(causes[0].detail.to_string().contains("opening: raw"));
        let mut out = BytesMut::new();
        let answered = if datagrams {
            server.poll_datagram(now, &mut out)
        } else {
            server.poll_transmit(now, &mut out)
        };
        assert!(
            !answered || !matches!(codec::decode(&mut out, 64), Ok(Some(Frame::Welcome(_)))),
            "datagrams {datagrams}: no welcome from a raw side"
        );
    }
}
