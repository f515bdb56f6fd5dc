//! The fuzzing harness of the connection machine
//! ([`tether_core::connection::Connection`]), shared by the targets in
//! `fuzz_targets/`.
//!
//! An [`Input`] is a configuration and a list of operations: a peer that
//! sends raw bytes or well-formed frames (hellos, welcomes, data, pings,
//! pongs, skippable and oversized frames), the application that sends and
//! closes, a driver that writes some of what the machine asks, the
//! transport that ends, and time that passes by arbitrary steps. [`run`]
//! plays it like a driver that keeps the machine's rules (it reads only
//! while `wants_read`, writes what it polled) and checks, with `assert!`,
//! after every step:
//!
//! * nothing panics;
//! * no allocation made inside the machine is larger than [`alloc_limit`]
//!   (a constant times the frame limit plus the transmit budget, whatever
//!   the input declares or repeats), and at most `recv_queue` messages wait
//!   for the application;
//! * events come in order: at most one `Connected`, messages only after
//!   it, exactly one `Closed` once the machine says it is closed, nothing
//!   after it; every `Closed` has a reason of the right class for what
//!   ended it (a bad frame: `ProtocolError`; time: `Timeout` or
//!   `ConnectTimeout`; the application: `ClosedLocally`; the transport:
//!   its own cause) and a detail;
//! * a bad frame is never passed over: while the machine is open and
//!   reading, what is left in its read buffer is at most part of a frame;
//! * what the machine writes decodes, its data is what the application
//!   sent, in order, and `take_unsent` hands back exactly the rest; pongs
//!   answer pings the peer sent; `has_transmit` tells the truth;
//! * after `handle_timeout` the next deadline is later (no busy loop).

use arbitrary::Arbitrary;
use bytes::{Buf, Bytes, BytesMut};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tether_core::codec::{self, Frame, HEADER_LEN, MAX_HELLO, VERSION};
use tether_core::connection::{
    ConnSendError, Connection, ConnectionConfig, ConnectionEvent, Opening, Side, TRANSMIT_BUDGET,
};
use tether_core::liveness::{HeartbeatConfig, IdleTimeoutConfig, Policy};
use tether_core::{Cause, DisconnectReason};

// ---- allocations inside the machine ----

/// The system allocator, noting the largest request made while armed.
struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    if ARMED.load(Ordering::Relaxed) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` (one call into the machine) and returns the largest single
/// allocation it made.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.store(0, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
    let out = f();
    ARMED.store(false, Ordering::Relaxed);
    (out, LARGEST.load(Ordering::Relaxed))
}

/// The largest allocation the machine may make in one call with
/// `max_frame`: the read buffer holds at most one partial frame and one
/// read (the decoder reserves the rest of the frame, bounded by the frame
/// limit from its header alone), the write buffer one transmit budget and
/// one frame past it, and a growing buffer may double.
pub fn alloc_limit(max_frame: usize) -> usize {
    let frame = HEADER_LEN + max_frame.max(MAX_HELLO);
    4 * (frame + 2 * TRANSMIT_BUDGET) + 256 * 1024
}

// ---- input ----

/// Which transport carries the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// A byte stream: `handle_bytes` and `poll_transmit`.
    Stream,
    /// Datagrams: `handle_datagram` and `poll_datagram`.
    Datagram,
}

/// One fuzz case: the connection's settings, then what happens.
#[derive(Arbitrary, Debug)]
pub struct Input {
    server: bool,
    raw_opening: bool,
    idle_timeout: bool,
    interval_ms: u8,
    timeout_ms: u8,
    max_missed: u8,
    factor_tenths: u8,
    opening_ms: u16,
    stall_ms: Option<u16>,
    max_frame: u16,
    big_frames: bool,
    send_queue: u8,
    recv_queue: u8,
    capabilities: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The peer sends these bytes (one datagram over datagrams).
    Bytes { bytes: Vec<u8>, chunk: u16 },
    /// The peer sends a frame; over a stream the driver reads it in
    /// `chunk`-byte reads, over datagrams `cut` may shorten it.
    Frame {
        frame: PeerFrame,
        chunk: u16,
        cut: Option<u16>,
    },
    /// The peer answers the machine's last ping.
    EchoPing,
    /// The application sends a message of this many bytes.
    Send(u16),
    /// Time passes, then the timer fires.
    Advance(u16),
    /// Time jumps to the machine's next deadline.
    Timeout,
    /// The driver polls what to write and writes `write` bytes of it (over
    /// datagrams: up to `write % 16 + 1` datagrams).
    Transmit { write: u16 },
    /// The application takes every event.
    Poll,
    /// The transport ends.
    Closed(u8),
    /// The application closes.
    Close,
    /// The driver takes back what was never written.
    TakeUnsent,
}

#[derive(Arbitrary, Debug)]
enum PeerFrame {
    Data(u16),
    Ping(u64),
    Pong(u64),
    Hello {
        welcome: bool,
        other_version: Option<u16>,
        capabilities: u8,
        extra: u16,
    },
    Skipped {
        kind: u8,
        len: u16,
    },
    Reserved(u8),
}

const READ_CHUNK_MAX: usize = 64 * 1024;

fn config(input: &Input) -> ConnectionConfig {
    let ms = |v: u64| Duration::from_millis(v);
    let policy = if input.idle_timeout {
        Policy::IdleTimeout(IdleTimeoutConfig {
            keepalive: ms(1 + u64::from(input.interval_ms)),
            factor: 1.0 + f64::from(input.factor_tenths % 40) / 10.0,
        })
    } else {
        Policy::Heartbeat(HeartbeatConfig::new(
            ms(1 + u64::from(input.interval_ms)),
            ms(1 + u64::from(input.timeout_ms)),
            1 + u32::from(input.max_missed % 4),
        ))
    };
    ConnectionConfig {
        policy,
        opening: if input.raw_opening {
            Opening::Raw
        } else {
            Opening::Hello
        },
        opening_timeout: ms(1 + u64::from(input.opening_ms)),
        max_frame: if input.big_frames {
            1 << 20
        } else {
            1 + usize::from(input.max_frame % 4096)
        },
        send_queue: 1 + usize::from(input.send_queue % 16),
        recv_queue: 1 + usize::from(input.recv_queue % 16),
        write_stall: input.stall_ms.map(|v| ms(1 + u64::from(v))),
        capabilities: u64::from(input.capabilities),
    }
}

fn wire(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| (i + seed) as u8).collect()
}

/// The bytes of `frame` (lengths are taken modulo a little over the limit,
/// so that some are one byte too long).
fn encode_peer(frame: &PeerFrame, max_frame: usize, last_ping: Option<u64>, n: usize) -> Vec<u8> {
    let over = |len: u16| usize::from(len) % (max_frame + 2);
    match *frame {
        PeerFrame::Data(len) => wire(0x01, &pattern(over(len), n)),
        PeerFrame::Ping(p) => wire(0x02, &p.to_be_bytes()),
        PeerFrame::Pong(p) => wire(0x03, &last_ping.unwrap_or(p).to_be_bytes()),
        PeerFrame::Hello {
            welcome,
            other_version,
            capabilities,
            extra,
        } => {
            let mut payload = other_version.unwrap_or(VERSION).to_be_bytes().to_vec();
            payload.extend_from_slice(&u64::from(capabilities).to_be_bytes());
            let extra = usize::from(extra) % (MAX_HELLO + 2);
            payload.extend_from_slice(&pattern(extra.saturating_sub(10), n));
            wire(if welcome { 0x05 } else { 0x04 }, &payload)
        }
        PeerFrame::Skipped { kind, len } => wire(kind | 0x80, &pattern(over(len), n)),
        PeerFrame::Reserved(kind) => wire(0x06 + kind % 0x7a, &[]),
    }
}

// ---- the run ----

/// Which reasons may end the connection, given what ended it.
#[derive(Debug, Clone)]
enum Expect {
    Any(&'static [DisconnectReason]),
    Exactly(Cause),
}

struct Harness {
    carrier: Carrier,
    side: Side,
    cfg: ConnectionConfig,
    conn: Connection,
    now: Instant,
    limit: usize,
    /// Bytes the peer sent that the driver has not read yet (stream).
    socket: BytesMut,
    /// The driver's read buffer (stream).
    read: BytesMut,
    /// Everything read so far, decoded on the side: the data frames the
    /// machine must deliver, in order (stream).
    shadow: BytesMut,
    shadow_broken: bool,
    expected_messages: VecDeque<Bytes>,
    /// What the machine asked to write and the driver has not written.
    write: BytesMut,
    /// Messages `send` accepted and the machine has not written yet.
    unsent: VecDeque<Bytes>,
    /// Pings the peer sent; the machine's last ping.
    peer_pings: HashSet<u64>,
    last_ping: Option<u64>,
    openings_out: usize,
    ever_open: bool,
    closed_by_app: bool,
    connected_seen: bool,
    messages_seen: bool,
    closed_seen: bool,
    expect: Option<Expect>,
    sent_count: usize,
}

impl Harness {
    fn call<T>(&mut self, f: impl FnOnce(&mut Connection, Instant) -> T) -> T {
        let now = self.now;
        let conn = &mut self.conn;
        let (out, largest) = measured(|| f(conn, now));
        assert!(
            largest <= self.limit,
            "one allocation of {largest} bytes, over the limit of {} (max_frame {})",
            self.limit,
            self.cfg.max_frame
        );
        out
    }

    /// Runs one step and notes what may have ended the connection in it.
    fn step(&mut self, why: Expect, f: impl FnOnce(&mut Self)) {
        let was_closed = self.conn.is_closed();
        f(self);
        if self.conn.is_open() {
            self.ever_open = true;
        }
        if !was_closed && self.conn.is_closed() {
            assert!(self.expect.is_none());
            self.expect = Some(why);
        }
        if self.conn.is_closed() {
            assert!(!self.conn.wants_read());
            assert!(!self.conn.has_transmit());
            assert_eq!(self.conn.poll_timeout(), None);
        }
    }

    fn peer_bytes(&mut self, bytes: Vec<u8>, chunk: u16, cut: Option<u16>) {
        match self.carrier {
            Carrier::Stream => {
                self.socket.extend_from_slice(&bytes);
                self.read_socket(chunk);
            }
            Carrier::Datagram => {
                let mut d = bytes;
                if let Some(cut) = cut {
                    d.truncate(usize::from(cut) % (d.len() + 1));
                }
                let d = Bytes::from(d);
                let decoded = codec::decode_datagram(d.clone(), self.cfg.max_frame);
                if let Ok(Frame::Ping(p)) = decoded {
                    self.peer_pings.insert(p);
                }
                let good = decoded.is_ok();
                let live = !self.conn.is_closed();
                self.call(|c, now| c.handle_datagram(now, d));
                if live && !good && self.conn.wants_read() {
                    panic!("a bad datagram was taken without ending the connection");
                }
            }
        }
    }

    /// The driver reads what the socket holds, `chunk` bytes at a time,
    /// while the machine wants to read.
    fn read_socket(&mut self, chunk: u16) {
        let chunk = 1 + usize::from(chunk) % READ_CHUNK_MAX;
        loop {
            if self.conn.wants_read() && !self.socket.is_empty() {
                let n = chunk.min(self.socket.len());
                let piece = self.socket.split_to(n);
                self.read.extend_from_slice(&piece);
                self.shadow_read(&piece);
            } else if !self.conn.wants_read() || self.read.is_empty() {
                return;
            }
            let mut read = std::mem::take(&mut self.read);
            self.call(|c, now| c.handle_bytes(now, &mut read));
            self.read = read;
            if !self.conn.is_closed() && self.conn.wants_read() {
                let mut rest = self.read.clone();
                match codec::decode(&mut rest, self.cfg.max_frame) {
                    Ok(None) => {}
                    other => panic!("left in the read buffer while reading: {other:?}"),
                }
            }
            if self.socket.is_empty() {
                return;
            }
        }
    }

    fn shadow_read(&mut self, piece: &[u8]) {
        if self.shadow_broken {
            return;
        }
        self.shadow.extend_from_slice(piece);
        loop {
            match codec::decode(&mut self.shadow, self.cfg.max_frame) {
                Ok(Some(Frame::Data(m))) => self.expected_messages.push_back(m),
                Ok(Some(Frame::Ping(p))) => {
                    self.peer_pings.insert(p);
                }
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(_) => {
                    self.shadow_broken = true;
                    self.shadow = BytesMut::new();
                    return;
                }
            }
        }
    }

    /// What the machine wrote, as the peer decodes it.
    fn check_out(&mut self, frame: Frame) {
        match frame.clone() {
            Frame::Data(m) => {
                assert!(self.ever_open, "data before the opening");
                let want = self.unsent.pop_front().expect("data nobody sent");
                assert_eq!(m, want, "data out of order");
            }
            Frame::Ping(p) => self.last_ping = Some(p),
            Frame::Pong(p) => assert!(self.peer_pings.contains(&p), "a pong for no ping"),
            // A raw datagram server still answers a hello (a lost welcome
            // looks the same); nothing else opens a raw connection.
            Frame::Welcome(_)
                if self.cfg.opening == Opening::Raw && self.carrier == Carrier::Datagram => {}
            Frame::Hello(_) | Frame::Welcome(_) if self.cfg.opening == Opening::Raw => {
                panic!("an opening frame on a raw connection: {frame:?}")
            }
            Frame::Hello(h) => {
                assert_eq!(self.side, Side::Client);
                assert_eq!(h.version, VERSION);
                self.openings_out += 1;
            }
            Frame::Welcome(h) => {
                assert_eq!(self.side, Side::Server);
                assert_eq!(h.version, VERSION);
                self.openings_out += 1;
            }
            Frame::Skipped { kind } => panic!("the machine wrote an unknown kind {kind}"),
        }
        if self.carrier == Carrier::Stream {
            assert!(self.openings_out <= 1, "the opening was sent twice");
        }
    }

    fn transmit(&mut self, write: u16) {
        match self.carrier {
            Carrier::Stream => {
                if self.write.len() <= TRANSMIT_BUDGET {
                    let promised = self.conn.has_transmit();
                    let start = self.write.len();
                    let mut buf = std::mem::take(&mut self.write);
                    let any = self.call(|c, now| c.poll_transmit(now, &mut buf));
                    self.write = buf;
                    assert_eq!(any, self.write.len() > start);
                    assert_eq!(any, promised, "has_transmit said otherwise");
                    let mut out = BytesMut::from(&self.write[start..]);
                    while let Some(frame) =
                        codec::decode(&mut out, self.cfg.max_frame).expect("bad frame out")
                    {
                        self.check_out(frame);
                    }
                    assert!(out.is_empty(), "a partial frame out");
                }
                let n = usize::from(write).min(self.write.len());
                self.write.advance(n);
                let (left, now) = (self.write.len(), self.now);
                self.conn.handle_written(now, n, left);
            }
            Carrier::Datagram => {
                for _ in 0..=write % 16 {
                    let promised = self.conn.has_transmit();
                    let mut buf = BytesMut::new();
                    let any = self.call(|c, now| c.poll_datagram(now, &mut buf));
                    assert_eq!(any, promised, "has_transmit said otherwise");
                    if !any {
                        break;
                    }
                    let frame = codec::decode_datagram(buf.freeze(), self.cfg.max_frame)
                        .expect("bad datagram out");
                    self.check_out(frame);
                }
            }
        }
    }

    fn send(&mut self, len: u16) {
        let len = usize::from(len) % (self.cfg.max_frame + 2);
        let msg = Bytes::from(pattern(len, self.sent_count));
        self.sent_count += 1;
        let pending = self.conn.pending();
        let closed = self.conn.is_closed() || self.closed_by_app;
        match self.call(|c, _| c.send(msg.clone())) {
            Ok(()) => {
                assert!(!closed && len <= self.cfg.max_frame && pending < self.cfg.send_queue);
                self.unsent.push_back(msg);
            }
            Err(ConnSendError::Closed) => assert!(closed),
            Err(ConnSendError::TooLarge { len: l, max }) => {
                assert!(!closed && l == len && max == self.cfg.max_frame && len > max)
            }
            Err(ConnSendError::Full) => assert!(!closed && pending == self.cfg.send_queue),
        }
        assert!(self.conn.pending() <= self.cfg.send_queue);
    }

    fn timeout(&mut self, at: Instant) {
        self.now = self.now.max(at);
        self.call(|c, now| c.handle_timeout(now));
        if let Some(next) = self.conn.poll_timeout() {
            assert!(next > self.now, "the deadline did not move: a busy loop");
        }
    }

    /// The application takes every event; since the last time at most
    /// `recv_queue` messages can have piled up.
    fn poll(&mut self) {
        let mut messages = 0;
        while let Some(event) = self.conn.poll_event() {
            assert!(!self.closed_seen, "an event after Closed: {event:?}");
            match event {
                ConnectionEvent::Connected {
                    version,
                    capabilities,
                    ..
                } => {
                    assert!(!self.connected_seen && !self.messages_seen);
                    assert_eq!(version, VERSION);
                    assert_eq!(capabilities & !self.cfg.capabilities, 0);
                    self.connected_seen = true;
                }
                ConnectionEvent::Message(m) => {
                    assert!(self.connected_seen, "a message before Connected");
                    self.messages_seen = true;
                    messages += 1;
                    if self.carrier == Carrier::Stream {
                        let want = self.expected_messages.pop_front();
                        assert_eq!(Some(m), want, "messages out of order");
                    }
                }
                ConnectionEvent::Closed(cause) => {
                    self.closed_seen = true;
                    assert!(self.conn.is_closed());
                    assert!(!cause.detail.is_empty(), "Closed without words: {cause:?}");
                    match self.expect.take().expect("Closed, but nothing ended it") {
                        Expect::Any(reasons) => assert!(
                            reasons.contains(&cause.reason),
                            "{cause:?} is not one of {reasons:?}"
                        ),
                        Expect::Exactly(want) => assert_eq!(cause, want),
                    }
                }
            }
        }
        assert!(
            messages <= self.cfg.recv_queue,
            "{messages} messages waited, over the receive queue of {}",
            self.cfg.recv_queue
        );
        assert_eq!(self.closed_seen, self.conn.is_closed());
    }
}

const FROM_PEER: Expect = Expect::Any(&[DisconnectReason::ProtocolError]);
const FROM_TIME: Expect =
    Expect::Any(&[DisconnectReason::Timeout, DisconnectReason::ConnectTimeout]);
const FROM_APP: Expect = Expect::Any(&[DisconnectReason::ClosedLocally]);
const NOTHING: Expect = Expect::Any(&[]);

/// Plays `input` on a fresh connection over `carrier` and checks the
/// machine's promises (see the crate docs).
pub fn run(carrier: Carrier, input: Input) {
    let cfg = config(&input);
    let side = if input.server {
        Side::Server
    } else {
        Side::Client
    };
    let now = Instant::now();
    let conn = match carrier {
        Carrier::Stream => Connection::new(side, cfg, now),
        Carrier::Datagram => Connection::new_datagram(side, cfg, now),
    }
    .expect("the harness builds valid settings");
    let mut h = Harness {
        carrier,
        side,
        cfg,
        conn,
        now,
        limit: alloc_limit(cfg.max_frame),
        socket: BytesMut::new(),
        read: BytesMut::new(),
        shadow: BytesMut::new(),
        shadow_broken: false,
        expected_messages: VecDeque::new(),
        write: BytesMut::new(),
        unsent: VecDeque::new(),
        peer_pings: HashSet::new(),
        last_ping: None,
        openings_out: 0,
        ever_open: cfg.opening == Opening::Raw,
        closed_by_app: false,
        connected_seen: false,
        messages_seen: false,
        closed_seen: false,
        expect: None,
        sent_count: 0,
    };
    for (n, op) in input.ops.into_iter().enumerate() {
        match op {
            Op::Bytes { bytes, chunk } => h.step(FROM_PEER, |h| h.peer_bytes(bytes, chunk, None)),
            Op::Frame { frame, chunk, cut } => {
                let bytes = encode_peer(&frame, cfg.max_frame, None, n);
                h.step(FROM_PEER, |h| h.peer_bytes(bytes, chunk, cut));
            }
            Op::EchoPing => {
                let frame = PeerFrame::Pong(h.last_ping.unwrap_or(0));
                let bytes = encode_peer(&frame, cfg.max_frame, h.last_ping, n);
                h.step(FROM_PEER, |h| h.peer_bytes(bytes, u16::MAX, None));
            }
            Op::Send(len) => h.step(NOTHING, |h| h.send(len)),
            Op::Advance(ms) => {
                let at = h.now + Duration::from_millis(u64::from(ms));
                h.step(FROM_TIME, |h| h.timeout(at));
            }
            Op::Timeout => {
                if let Some(at) = h.conn.poll_timeout() {
                    h.step(FROM_TIME, |h| h.timeout(at));
                }
            }
            Op::Transmit { write } => h.step(FROM_APP, |h| h.transmit(write)),
            Op::Poll => {
                h.poll();
                // Room was made: the driver reads again.
                if carrier == Carrier::Stream {
                    h.step(FROM_PEER, |h| h.read_socket(u16::MAX));
                }
            }
            Op::Closed(r) => {
                const REASONS: [DisconnectReason; 4] = [
                    DisconnectReason::PeerClosed,
                    DisconnectReason::Reset,
                    DisconnectReason::Io,
                    DisconnectReason::Timeout,
                ];
                let cause = Cause::new(REASONS[usize::from(r) % 4], "the transport ended");
                let closing = h.closed_by_app && !h.conn.is_closed();
                let why = if closing && cause.reason == DisconnectReason::PeerClosed {
                    FROM_APP
                } else {
                    Expect::Exactly(cause.clone())
                };
                h.step(why, |h| h.call(|c, _| c.handle_closed(cause)));
            }
            Op::Close => h.step(FROM_APP, |h| {
                if !h.conn.is_closed() {
                    h.closed_by_app = true;
                }
                h.call(|c, now| c.close(now));
            }),
            Op::TakeUnsent => {
                let back = h.call(|c, _| c.take_unsent());
                let want: Vec<Bytes> = h.unsent.drain(..).collect();
                assert_eq!(back, want, "take_unsent handed back something else");
                // Closing with nothing left to write ends at the next poll.
                h.step(FROM_APP, |h| h.transmit(0));
            }
        }
    }
    // The application closes; the driver writes everything out.
    h.step(FROM_APP, |h| {
        if !h.conn.is_closed() {
            h.closed_by_app = true;
        }
        h.call(|c, now| c.close(now));
    });
    for _ in 0..64 {
        if h.conn.is_closed() {
            break;
        }
        h.step(FROM_APP, |h| {
            h.write.clear();
            let (left, now) = (0, h.now);
            h.conn.handle_written(now, 0, left);
            h.transmit(u16::MAX);
        });
    }
    assert!(h.conn.is_closed(), "close did not end the connection");
    h.poll();
    assert!(h.closed_seen);
}
