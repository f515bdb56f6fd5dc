//! Heap allocations of the connection machine on its steady paths, counted
//! by a global allocator: after a warm-up, sending, transmitting, taking
//! bytes (or datagrams) and polling the events allocates nothing per
//! message beyond the application's own `Bytes` (which the test builds
//! before counting), amortized below 0.1 allocations per message.
//!
//! The counter is per thread, so tests running alongside do not disturb
//! it; only the measured loop runs while it counts.

use bytes::{Bytes, BytesMut};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};
use tether_core::connection::{Connection, ConnectionConfig, ConnectionEvent, Side};
use tether_core::liveness::{HeartbeatConfig, Policy};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counting touches only const-initialized thread-locals without
// destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
    ALLOCS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let r = f();
    COUNTING.with(|on| on.set(false));
    (ALLOCS.with(Cell::get), r)
}

fn config() -> ConnectionConfig {
    ConnectionConfig {
        policy: Policy::Heartbeat(HeartbeatConfig::new(
            Duration::from_millis(200),
            Duration::from_millis(200),
            3,
        )),
        send_queue: 4096,
        recv_queue: 4096,
        ..ConnectionConfig::default()
    }
}

/// `n` messages of varied sizes (up to `max` bytes), all slices of one
/// buffer: built once, before counting.
fn messages(n: usize, max: usize, seed: u8) -> Vec<Bytes> {
    let sizes: Vec<usize> = (0..n)
        .map(|i| (i * 37 + seed as usize) % (max + 1))
        .collect();
    let total: usize = sizes.iter().sum();
    let pattern: Vec<u8> = (0..=250u8).map(|b| b.wrapping_add(seed)).collect();
    let mut pool = Vec::with_capacity(total + pattern.len());
    while pool.len() < total {
        pool.extend_from_slice(&pattern);
    }
    let pool = Bytes::from(pool);
    let mut at = 0;
    sizes
        .iter()
        .map(|&len| {
            let m = pool.slice(at..at + len);
            at += len;
            m
        })
        .collect()
}

/// One end of the pair with what a driver keeps: the outgoing bytes not
/// yet written, the read buffer, and the messages still to send and to
/// expect.
struct End {
    conn: Connection,
    out: BytesMut,
    inbox: BytesMut,
    to_send: std::vec::IntoIter<Bytes>,
    expect: std::vec::IntoIter<Bytes>,
    received: usize,
}

impl End {
    fn new(conn: Connection, to_send: Vec<Bytes>, expect: Vec<Bytes>) -> Self {
        Self {
            conn,
            out: BytesMut::with_capacity(64 * 1024),
            inbox: BytesMut::with_capacity(64 * 1024),
            to_send: to_send.into_iter(),
            expect: expect.into_iter(),
            received: 0,
        }
    }

    fn send_burst(&mut self, burst: usize) {
        for _ in 0..burst {
            let m = self.to_send.next().expect("enough messages were built");
            self.conn.send(m).unwrap();
        }
    }

    /// Polls every event; messages must be the expected ones, in order.
    fn drain(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            match e {
                ConnectionEvent::Message(m) => {
                    let want = self.expect.next().expect("no more than was sent");
                    assert!(m == want, "message {} differs", self.received);
                    self.received += 1;
                }
                ConnectionEvent::Connected { .. } => {}
                ConnectionEvent::Closed(c) => panic!("closed: {c}"),
            }
        }
    }

    fn timeout(&mut self, now: Instant) {
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
        }
    }
}

/// A stream "write": everything `from` transmits reaches `to`'s read
/// buffer (a socket that takes it all).
fn write_stream(now: Instant, from: &mut End, to: &mut End) -> bool {
    let any = from.conn.poll_transmit(now, &mut from.out);
    if any {
        to.inbox.extend_from_slice(&from.out);
        from.conn.handle_written(now, from.out.len(), 0);
        from.out.clear();
    }
    any
}

/// A datagram "send": each datagram lands in the peer's receive buffer
/// and is handed over as its own `Bytes`, as a driver reading a socket
/// into one buffer does.
fn write_datagrams(now: Instant, from: &mut End, to: &mut End) -> bool {
    let mut any = false;
    while from.conn.poll_datagram(now, &mut from.out) {
        any = true;
        to.inbox.extend_from_slice(&from.out);
        let datagram = to.inbox.split().freeze();
        to.conn.handle_datagram(now, datagram);
    }
    any
}

/// Moves everything both ways until the pair is quiet.
fn pump(now: Instant, a: &mut End, b: &mut End, datagrams: bool) {
    loop {
        let moved = if datagrams {
            write_datagrams(now, a, b) | write_datagrams(now, b, a)
        } else {
            let moved = write_stream(now, a, b) | write_stream(now, b, a);
            a.conn.handle_bytes(now, &mut a.inbox);
            b.conn.handle_bytes(now, &mut b.inbox);
            moved
        };
        a.drain();
        b.drain();
        if !moved {
            return;
        }
    }
}

/// Runs `rounds` rounds of a burst each way, time moving 1 ms a round
/// and every tenth round a pause long enough for a ping and its pong.
fn rounds(
    now: &mut Instant,
    a: &mut End,
    b: &mut End,
    datagrams: bool,
    rounds: usize,
    burst: usize,
) {
    for r in 0..rounds {
        a.send_burst(burst);
        b.send_burst(burst);
        pump(*now, a, b, datagrams);
        *now += Duration::from_millis(if r % 10 == 9 { 250 } else { 1 });
        a.timeout(*now);
        b.timeout(*now);
        pump(*now, a, b, datagrams);
    }
}

/// Allocations per message on the steady path, for bursts of `burst`
/// messages of up to `max` bytes each way.
fn allocs_per_message(datagrams: bool, burst: usize, max: usize) -> f64 {
    const WARM: usize = 20;
    let measured = (10_000 / burst).max(20);
    let n = (WARM + measured) * burst;
    let t0 = Instant::now();
    let mut now = t0;
    let new = if datagrams {
        Connection::new_datagram
    } else {
        Connection::new
    };
    let from_client = messages(n, max, 1);
    let from_server = messages(n, max, 2);
    let mut client = End::new(
        new(Side::Client, config(), now).unwrap(),
        from_client.clone(),
        from_server.clone(),
    );
    let mut server = End::new(
        new(Side::Server, config(), now).unwrap(),
        from_server,
        from_client,
    );
    pump(now, &mut client, &mut server, datagrams);
    assert!(client.conn.is_open() && server.conn.is_open());
    rounds(&mut now, &mut client, &mut server, datagrams, WARM, burst);
    let (allocs, ()) = count(|| {
        rounds(
            &mut now,
            &mut client,
            &mut server,
            datagrams,
            measured,
            burst,
        );
    });
    let delivered = 2 * measured * burst;
    assert_eq!(client.received + server.received, 2 * n, "all delivered");
    assert!(
        client.conn.rtt().is_some() && server.conn.rtt().is_some(),
        "pings and pongs were part of the measured traffic"
    );
    let per = allocs as f64 / delivered as f64;
    eprintln!(
        "{} burst {burst:>4}, up to {max:>5} bytes: {allocs} allocations for {delivered} messages ({per:.4} per message)",
        if datagrams { "datagram" } else { "stream  " }
    );
    per
}

const BURSTS: [usize; 5] = [1, 8, 65, 100, 1000];

#[test]
fn the_stream_path_allocates_nothing_per_message() {
    let mut worst: f64 = 0.0;
    for burst in BURSTS {
        for max in [64, 1500, 9000] {
            worst = worst.max(allocs_per_message(false, burst, max));
        }
    }
    assert!(worst < 0.1, "{worst} allocations per message");
}

#[test]
fn the_datagram_path_allocates_nothing_per_message() {
    let mut worst: f64 = 0.0;
    for burst in BURSTS {
        for max in [64, 1200] {
            worst = worst.max(allocs_per_message(true, burst, max));
        }
    }
    assert!(worst < 0.1, "{worst} allocations per message");
}

#[test]
fn the_counter_sees_allocations() {
    // The measurement could not pass by counting nothing.
    let (n, v) = count(|| Vec::<u8>::with_capacity(10));
    drop(v);
    assert_eq!(n, 1);
}
