//! Properties of a client and a server machine paired in simulated time,
//! over a stream or over datagrams, under random interleavings of sends,
//! transmits, partial deliveries, application reads and time, with at
//! most one fault (a black hole, with or without writes blocking; a
//! one-way cut; a reset of one side), orderly closes (one side or both),
//! for streams a rate-limited link, bounded write buffers and a short
//! write-stall bound, and for datagrams random loss (a lost hello or
//! welcome among it) and reordering:
//!
//! * each side's events follow the grammar: at most one `Connected`,
//!   messages only after it, at most one `Closed`, nothing after it,
//!   `Closed` exactly when the machine says it is closed, and never more
//!   messages waiting than the receive queue holds;
//! * what a side receives is what the other sent, in order, without
//!   duplicates: a prefix over a stream; over datagrams a subsequence (a
//!   subset when they were reordered); nothing is both delivered and
//!   handed back by `take_unsent`;
//! * with no fault everything arrives and neither side closes (over
//!   datagrams also after one lost datagram, when the settings leave
//!   room for a second ping and a repeated hello); after an orderly close
//!   everything the closing side sent arrives or is handed back;
//! * a side that stops receiving is closed within its detection bound
//!   (its opening timeout before the opening finished), and after any
//!   fault or close both sides end;
//! * a closed machine ignores late bytes, datagrams, ends of stream and
//!   timeouts, and has nothing to send.
//!
//! The simulated driver does what a real one does: it writes what
//! `poll_transmit` produced, reads only while the machine wants to, hands
//! bytes left in its buffer back after the application polled, calls
//! `handle_timeout` at `poll_timeout`, closes its transport after `Closed`
//! (the peer then reads the end of stream once it has taken every byte
//! before it) and, when time passes, the application reads its events.

use bytes::{Buf, Bytes, BytesMut};
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};
use tether_core::codec::HEADER_LEN;
use tether_core::connection::{ConnSendError, Connection, ConnectionConfig, ConnectionEvent, Side};
use tether_core::liveness::{HeartbeatConfig, IdleTimeoutConfig, Policy};
use tether_core::{Cause, DisconnectReason};

const CLIENT: usize = 0;
const SERVER: usize = 1;

#[derive(Debug, Clone)]
enum Op {
    /// The application of side `who` sends a message of `5 + extra` bytes.
    Send { who: usize, extra: usize },
    /// Side `who`'s driver asks the machine for what to write.
    Transmit { who: usize },
    /// Up to `amount` bytes (stream) or `1 + amount % 4` datagrams
    /// (datagrams) travel from `from` to the other side. For datagrams
    /// `pick` may take a later one first and `lose` may drop it, when the
    /// case is lossy.
    Deliver {
        from: usize,
        amount: usize,
        pick: usize,
        lose: bool,
    },
    /// The application of side `who` polls up to `max` events.
    Read { who: usize, max: usize },
    /// Simulated time passes (in microseconds), with a healthy driver.
    Advance { micros: u64 },
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Everything is dropped, both ways, from now on; when `stuck`, the
    /// sockets also stop taking bytes (their buffers are full).
    BlackHole { stuck: bool },
    /// Everything from `from` is dropped from now on.
    Cut { from: usize },
    /// Side `who`'s transport is reset.
    Reset { who: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, prop_oneof![8 => 0..64usize, 2 => 0..3000usize, 1 => 0..20_000usize])
            .prop_map(|(who, extra)| Op::Send { who, extra }),
        4 => (0..2usize).prop_map(|who| Op::Transmit { who }),
        5 => (0..2usize, 1..2000usize, 0..8usize, prop::bool::weighted(0.15))
            .prop_map(|(from, amount, pick, lose)| Op::Deliver { from, amount, pick, lose }),
        2 => (0..2usize, 1..6usize).prop_map(|(who, max)| Op::Read { who, max }),
        2 => prop_oneof![3 => 1..20_000u64, 1 => 1..400_000u64]
            .prop_map(|micros| Op::Advance { micros }),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        prop::bool::ANY.prop_map(|stuck| Fault::BlackHole { stuck }),
        (0..2usize).prop_map(|from| Fault::Cut { from }),
        (0..2usize).prop_map(|who| Fault::Reset { who }),
    ]
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[derive(Debug, Clone, Copy)]
struct Setup {
    interval: u64,
    timeout: u64,
    max_missed: u32,
    opening: u64,
    recv_queue: [usize; 2],
    send_queue: usize,
    /// Stream: the driver asks for more bytes only while its write buffer
    /// holds fewer than this.
    write_buf: usize,
    /// The server watches with an idle timeout (1.5 x the client's
    /// interval) instead of pinging (see `check_run` for what that does
    /// not promise).
    idle_server: bool,
    /// Stream: bytes a direction carries per millisecond while time
    /// passes (`None`: all at once); at least [`min_rate`].
    rate: Option<usize>,
    /// A write stall bound of its own, shorter than the heartbeat.
    write_stall: Option<u64>,
    /// Lossy datagrams: the first datagram from this side is lost (a
    /// hello or a welcome).
    lose_first: Option<usize>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        10..100u64,
        10..100u64,
        1..4u32,
        100..800u64,
        (1..6usize, 1..6usize),
        (2..40usize, 16..8192usize),
        prop::bool::weighted(0.3),
        (
            prop::option::weighted(0.6, 0..20_000usize),
            prop::option::weighted(0.5, 2..8u64),
            prop::option::weighted(0.3, 0..2usize),
        ),
    )
        .prop_map(
            |(
                interval,
                timeout,
                max_missed,
                opening,
                (rc, rs),
                (send_queue, write_buf),
                idle_server,
                (rate, write_stall, lose_first),
            )| Setup {
                interval,
                timeout,
                max_missed,
                opening,
                recv_queue: [rc, rs],
                send_queue,
                write_buf,
                idle_server,
                rate,
                write_stall,
                lose_first,
            },
        )
}

/// The slowest link the test calls healthy: a ping queued behind a full
/// write buffer and one transmit (64 KiB, or one message) still leaves
/// within the ping timeout.
fn min_rate(s: &Setup) -> usize {
    let backlog = s.write_buf + 64 * 1024 + 20_100;
    backlog / s.timeout as usize + 1
}

fn config(s: &Setup, who: usize) -> ConnectionConfig {
    let policy = if who == SERVER && s.idle_server {
        Policy::IdleTimeout(IdleTimeoutConfig::mqtt(ms(s.interval)))
    } else {
        Policy::Heartbeat(HeartbeatConfig::new(
            ms(s.interval),
            ms(s.timeout),
            s.max_missed,
        ))
    };
    ConnectionConfig {
        policy,
        opening_timeout: ms(s.opening),
        send_queue: s.send_queue,
        recv_queue: s.recv_queue[who],
        write_stall: s.write_stall.map(ms),
        ..ConnectionConfig::default()
    }
}

/// A message: the sender, its sequence number, then filler.
fn message(who: usize, seq: u32, extra: usize) -> Bytes {
    let mut v = Vec::with_capacity(5 + extra);
    v.push(who as u8);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend((0..extra).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seq as u8)));
    Bytes::from(v)
}

fn seq(m: &Bytes) -> u32 {
    u32::from_be_bytes([m[1], m[2], m[3], m[4]])
}

/// One end: the machine and what its driver and application keep.
struct End {
    conn: Connection,
    /// Stream: bytes transmitted and not yet written to the network.
    out: BytesMut,
    /// Datagrams sent and still in the network.
    flight: VecDeque<Bytes>,
    /// Stream: bytes read from the network, not yet taken by the machine.
    inbox: BytesMut,
    events: Vec<ConnectionEvent>,
    received: Vec<Bytes>,
    sent: Vec<Bytes>,
    next_seq: u32,
    close_called: bool,
    /// The driver saw `Closed` and closed its transport.
    gone: bool,
    /// The end of stream (or reset) reached the peer.
    fin_done: bool,
    closed_at: Option<Instant>,
    /// When the machine last took a frame.
    last_taken: Instant,
    /// Open when the fault came.
    open_at_fault: bool,
}

struct Sim {
    now: Instant,
    t0: Instant,
    datagrams: bool,
    lossy: bool,
    ends: [End; 2],
    /// Traffic from this side is dropped.
    cut: [bool; 2],
    /// Writes make no progress (with a black hole).
    stuck: bool,
    /// Datagrams from this side that were lost; whether one was taken
    /// out of order.
    lost: [u32; 2],
    reordered: [bool; 2],
    fault: Option<(Instant, Fault)>,
    closed_by: Option<usize>,
    dgram: BytesMut,
    write_buf: usize,
    rate: Option<usize>,
    /// The next datagram from this side is lost.
    drop_next: [bool; 2],
}

fn other(who: usize) -> usize {
    1 - who
}

impl Sim {
    fn new(s: &Setup, datagrams: bool, lossy: bool) -> Self {
        let t0 = Instant::now();
        let end = |who: usize| {
            let side = if who == CLIENT {
                Side::Client
            } else {
                Side::Server
            };
            let conn = if datagrams {
                Connection::new_datagram(side, config(s, who), t0)
            } else {
                Connection::new(side, config(s, who), t0)
            };
            End {
                conn: conn.unwrap(),
                out: BytesMut::new(),
                flight: VecDeque::new(),
                inbox: BytesMut::new(),
                events: Vec::new(),
                received: Vec::new(),
                sent: Vec::new(),
                next_seq: 0,
                close_called: false,
                gone: false,
                fin_done: false,
                closed_at: None,
                last_taken: t0,
                open_at_fault: false,
            }
        };
        Self {
            now: t0,
            t0,
            datagrams,
            lossy,
            ends: [end(CLIENT), end(SERVER)],
            cut: [false; 2],
            stuck: false,
            lost: [0; 2],
            reordered: [false; 2],
            fault: None,
            closed_by: None,
            dgram: BytesMut::new(),
            write_buf: s.write_buf,
            rate: s.rate.filter(|_| !datagrams).map(|r| r.max(min_rate(s))),
            drop_next: [0, 1].map(|who| lossy && s.lose_first == Some(who)),
        }
    }

    /// Notes what changed: a machine that closed has its transport closed
    /// by its driver; an end of stream reaches a peer that took every
    /// byte before it.
    fn refresh(&mut self) {
        for who in [CLIENT, SERVER] {
            let e = &mut self.ends[who];
            if e.conn.is_closed() && !e.gone {
                e.gone = true;
                e.closed_at = Some(self.now);
                e.inbox.clear();
            }
        }
        if self.datagrams {
            return;
        }
        for from in [CLIENT, SERVER] {
            let to = other(from);
            let ready =
                self.ends[from].gone && !self.ends[from].fin_done && self.ends[from].out.is_empty();
            if !ready {
                continue;
            }
            if self.cut[from] {
                self.ends[from].fin_done = true;
            } else if self.ends[to].gone {
                // A late end of stream: the machine ended already and
                // must not report it again.
                self.ends[from].fin_done = true;
                self.ends[to]
                    .conn
                    .handle_closed(Cause::from(DisconnectReason::PeerClosed));
            } else if self.ends[to].inbox.is_empty() {
                self.ends[from].fin_done = true;
                self.ends[to]
                    .conn
                    .handle_closed(Cause::from(DisconnectReason::PeerClosed));
                self.refresh();
                return;
            }
        }
    }

    /// The machine of `who` takes what its driver read. It must take every
    /// whole frame while it wants to read.
    fn take(&mut self, who: usize) -> bool {
        let now = self.now;
        let e = &mut self.ends[who];
        if e.gone || self.datagrams {
            return false;
        }
        let before = e.inbox.len();
        e.conn.handle_bytes(now, &mut e.inbox);
        let took = e.inbox.len() < before;
        if took {
            e.last_taken = now;
        }
        if e.conn.wants_read() && e.inbox.len() >= HEADER_LEN {
            let len = u32::from_be_bytes([e.inbox[1], e.inbox[2], e.inbox[3], e.inbox[4]]);
            assert!(
                e.inbox.len() < HEADER_LEN + len as usize,
                "a whole frame was left although the machine wants to read"
            );
        }
        took
    }

    fn send(&mut self, who: usize, extra: usize) {
        let e = &mut self.ends[who];
        let m = message(who, e.next_seq, extra);
        match e.conn.send(m.clone()) {
            Ok(()) => {
                assert!(
                    !e.conn.is_closed() && !e.close_called,
                    "a closed side took a message"
                );
                e.next_seq += 1;
                e.sent.push(m);
            }
            Err(ConnSendError::Full) => assert!(e.conn.pending() > 0),
            Err(ConnSendError::Closed) => {
                assert!(e.conn.is_closed() || e.close_called, "refused while open")
            }
            Err(err) => panic!("unexpected refusal: {err}"),
        }
    }

    fn transmit(&mut self, who: usize) -> bool {
        let now = self.now;
        let e = &mut self.ends[who];
        if e.gone {
            // A closed machine has nothing to send and no deadline.
            assert!(!e.conn.poll_transmit(now, &mut BytesMut::new()));
            assert!(!e.conn.poll_datagram(now, &mut self.dgram));
            assert_eq!(e.conn.poll_timeout(), None);
            return false;
        }
        if self.datagrams {
            let mut any = false;
            while e.conn.poll_datagram(now, &mut self.dgram) {
                e.flight.push_back(self.dgram.split().freeze());
                any = true;
            }
            any
        } else {
            e.out.len() < self.write_buf && e.conn.poll_transmit(now, &mut e.out)
        }
    }

    /// Moves up to `amount` bytes, or some datagrams, from `from` onward.
    fn deliver(&mut self, from: usize, amount: usize, pick: usize, lose: bool) -> bool {
        let now = self.now;
        let to = other(from);
        if self.datagrams {
            let mut moved = false;
            for _ in 0..=amount % 4 {
                if self.ends[from].flight.is_empty() {
                    break;
                }
                if self.cut[from] {
                    self.ends[from].flight.pop_front();
                    moved = true;
                    continue;
                }
                if self.ends[to].gone {
                    // Late datagrams for a closed machine change nothing.
                    let d = self.ends[from].flight.pop_front().unwrap();
                    self.ends[to].conn.handle_datagram(now, d);
                    moved = true;
                    continue;
                }
                if !self.ends[to].conn.wants_read() {
                    break;
                }
                let n = self.ends[from].flight.len();
                let at = if self.lossy && pick % 2 == 1 {
                    pick % n
                } else {
                    0
                };
                if at != 0 {
                    self.reordered[from] = true;
                }
                let d = self.ends[from].flight.remove(at).unwrap();
                moved = true;
                if self.lossy && (lose || std::mem::take(&mut self.drop_next[from])) {
                    self.lost[from] += 1;
                    continue;
                }
                let e = &mut self.ends[to];
                e.conn.handle_datagram(now, d);
                e.last_taken = now;
                self.refresh();
            }
            return moved;
        }
        let n = self.ends[from].out.len().min(amount);
        if n == 0 {
            return false;
        }
        if self.stuck {
            // The socket takes nothing: no progress, the stall deadline stays.
            if !self.ends[from].gone {
                let left = self.ends[from].out.len();
                self.ends[from].conn.handle_written(now, 0, left);
            }
            return false;
        }
        if self.cut[from] {
            // Written, and lost on the way.
            self.ends[from].out.advance(n);
        } else if self.ends[to].gone {
            // Bytes for a closed machine change nothing.
            let mut late = self.ends[from].out.split_to(n);
            self.ends[to].conn.handle_bytes(now, &mut late);
        } else if !self.ends[to].conn.wants_read() {
            // The reader is not reading: nothing moves.
            if !self.ends[from].gone {
                let left = self.ends[from].out.len();
                self.ends[from].conn.handle_written(now, 0, left);
            }
            return false;
        } else {
            let chunk = self.ends[from].out.split_to(n);
            self.ends[to].inbox.extend_from_slice(&chunk);
        }
        if !self.ends[from].gone {
            let left = self.ends[from].out.len();
            self.ends[from].conn.handle_written(now, n, left);
        }
        self.take(to);
        self.refresh();
        true
    }

    /// The application of `who` polls up to `max` events; the driver then
    /// hands back what its buffer still holds.
    fn read(&mut self, who: usize, max: usize) -> bool {
        let mut any = false;
        let mut messages = 0;
        for _ in 0..max {
            let Some(ev) = self.ends[who].conn.poll_event() else {
                // Everything waiting was polled: never more messages than
                // the receive queue holds.
                let limit = self.ends[who].conn.config().recv_queue;
                assert!(
                    messages <= limit,
                    "{messages} messages waited, limit {limit}"
                );
                break;
            };
            any = true;
            if let ConnectionEvent::Message(m) = &ev {
                self.ends[who].received.push(m.clone());
                messages += 1;
            }
            self.ends[who].events.push(ev);
        }
        any |= self.take(who);
        self.refresh();
        any
    }

    /// A healthy driver and application: transmit, deliver, read, until
    /// nothing moves.
    fn pump(&mut self) {
        // What each direction may still carry in this step.
        let mut budget = [self.rate.unwrap_or(usize::MAX); 2];
        for _ in 0..10_000 {
            let mut moved = false;
            for who in [CLIENT, SERVER] {
                moved |= self.transmit(who);
            }
            for from in [CLIENT, SERVER] {
                loop {
                    let before = self.ends[from].out.len();
                    if !self.deliver(from, budget[from], 0, false) {
                        break;
                    }
                    moved = true;
                    let carried = before.saturating_sub(self.ends[from].out.len());
                    budget[from] = budget[from].saturating_sub(carried);
                }
            }
            for who in [CLIENT, SERVER] {
                moved |= self.read(who, usize::MAX);
            }
            self.refresh();
            if !moved {
                self.check_quiet();
                return;
            }
        }
        panic!("the pair never went quiet");
    }

    /// With every event polled, the events agree with the machine.
    fn check_quiet(&self) {
        for e in &self.ends {
            let connected = e
                .events
                .iter()
                .any(|ev| matches!(ev, ConnectionEvent::Connected { .. }));
            let closed = closed_reason(e).is_some();
            assert_eq!(closed, e.conn.is_closed(), "Closed iff closed");
            if !closed && !e.close_called {
                assert_eq!(connected, e.conn.is_open(), "open iff Connected");
            }
        }
    }

    /// Time passes by `d`, the machines seeing every deadline on time.
    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        self.pump();
        for _ in 0..100_000 {
            // A slow link moves bytes every millisecond.
            let busy =
                self.rate.is_some() && !self.stuck && self.ends.iter().any(|e| !e.out.is_empty());
            let step = busy.then(|| self.now + ms(1));
            let next = self
                .ends
                .iter()
                .filter(|e| !e.gone)
                .filter_map(|e| e.conn.poll_timeout())
                .chain(step)
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for e in &mut self.ends {
                        // Spurious for one of them, or late for a closed
                        // one: harmless.
                        e.conn.handle_timeout(self.now);
                    }
                    self.refresh();
                    self.pump();
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("deadlines that never pass");
    }

    fn inject(&mut self, fault: Fault) {
        for e in &mut self.ends {
            e.open_at_fault = e.conn.is_open();
        }
        self.fault = Some((self.now, fault));
        match fault {
            Fault::BlackHole { stuck } => {
                self.cut = [true, true];
                self.stuck = stuck;
            }
            Fault::Cut { from } => self.cut[from] = true,
            Fault::Reset { who } => {
                let peer = other(who);
                let e = &mut self.ends[who];
                e.conn.handle_closed(Cause::from(DisconnectReason::Reset));
                e.out.clear();
                e.fin_done = true;
                if !self.datagrams && !self.cut[who] && !self.ends[peer].gone {
                    let p = &mut self.ends[peer];
                    p.inbox.clear();
                    p.out.clear();
                    p.conn.handle_closed(Cause::from(DisconnectReason::Reset));
                }
                self.refresh();
            }
        }
    }

    /// Side `who` closes in order (2: both at once).
    fn close_both_or(&mut self, who: usize) {
        if who == 2 {
            self.close(CLIENT);
            self.close(SERVER);
        } else {
            self.close(who);
        }
    }

    fn close(&mut self, who: usize) {
        let now = self.now;
        self.closed_by.get_or_insert(who);
        let e = &mut self.ends[who];
        e.close_called = true;
        e.conn.close(now);
        self.refresh();
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Send { who, extra } => self.send(who, extra),
            Op::Transmit { who } => {
                self.transmit(who);
            }
            Op::Deliver {
                from,
                amount,
                pick,
                lose,
            } => {
                self.deliver(from, amount, pick, lose);
            }
            Op::Read { who, max } => {
                self.read(who, max);
            }
            Op::Advance { micros } => self.advance(Duration::from_micros(micros)),
        }
        self.refresh();
    }

    /// The longer detection bound of the two.
    fn bound(&self) -> Duration {
        self.ends
            .iter()
            .map(|e| e.conn.detection_bound())
            .max()
            .unwrap()
    }
}

/// The grammar of one side's events, and that it agrees with the machine.
fn check_grammar(e: &End, name: &str) -> Result<(), TestCaseError> {
    let mut connected = false;
    let mut closed = false;
    for (i, ev) in e.events.iter().enumerate() {
        prop_assert!(!closed, "{}: event {} after Closed: {:?}", name, i, ev);
        match ev {
            ConnectionEvent::Connected { .. } => {
                prop_assert!(!connected, "{}: a second Connected", name);
                connected = true;
            }
            ConnectionEvent::Message(_) => {
                prop_assert!(connected, "{}: a message before Connected", name)
            }
            ConnectionEvent::Closed(c) => {
                prop_assert!(
                    c.reason != DisconnectReason::ProtocolError,
                    "{}: {}",
                    name,
                    c
                );
                closed = true;
            }
        }
    }
    prop_assert_eq!(closed, e.conn.is_closed(), "{}: Closed iff closed", name);
    if !closed && !e.close_called {
        prop_assert_eq!(connected, e.conn.is_open(), "{}: open iff Connected", name);
    }
    Ok(())
}

fn closed_reason(e: &End) -> Option<DisconnectReason> {
    e.events.iter().find_map(|ev| match ev {
        ConnectionEvent::Closed(c) => Some(c.reason),
        _ => None,
    })
}

/// What `to` received from `from`, against what `from` sent and handed
/// back.
fn check_delivery(
    sim: &Sim,
    from: usize,
    unsent: &[Bytes],
    may_drop: bool,
) -> Result<(), TestCaseError> {
    let sent = &sim.ends[from].sent;
    let got = &sim.ends[other(from)].received;
    let name = if from == CLIENT {
        "client → server"
    } else {
        "server → client"
    };
    let seqs: Vec<u32> = got.iter().map(seq).collect();
    let unique: HashSet<u32> = seqs.iter().copied().collect();
    prop_assert_eq!(unique.len(), seqs.len(), "{}: duplicates {:?}", name, seqs);
    for m in got {
        prop_assert_eq!(
            m[0] as usize,
            from,
            "{}: a message from the wrong side",
            name
        );
        let s = seq(m) as usize;
        prop_assert!(
            s < sent.len() && sent[s] == *m,
            "{}: not what was sent",
            name
        );
    }
    prop_assert!(sent.ends_with(unsent), "{}: unsent is not the tail", name);
    for m in unsent {
        prop_assert!(
            !unique.contains(&seq(m)),
            "{}: delivered and handed back",
            name
        );
    }
    let ordered = seqs.windows(2).all(|w| w[0] < w[1]);
    if !sim.datagrams || !sim.reordered[from] {
        prop_assert!(ordered, "{}: out of order {:?}", name, seqs);
    }
    if !sim.datagrams {
        prop_assert!(
            seqs.iter().enumerate().all(|(i, &s)| s as usize == i),
            "{}: not a prefix {:?}",
            name,
            seqs
        );
    }
    let clean = sim.fault.is_none() && sim.lost[from] == 0 && !sim.reordered[from] && !may_drop;
    // A receiver that closes takes nothing more.
    if clean && !sim.ends[other(from)].close_called {
        // Everything arrived, but what was handed back.
        prop_assert_eq!(
            got.len() + unsent.len(),
            sent.len(),
            "{}: lost without a fault (got {:?})",
            name,
            seqs
        );
    }
    Ok(())
}

fn check_run(
    s: Setup,
    datagrams: bool,
    lossy: bool,
    ops: Vec<Op>,
    fault: Option<(Index, Fault)>,
    close: Option<(Index, usize)>,
) -> Result<(), TestCaseError> {
    // Positions in the schedule (the last one: after every operation).
    let fault = fault.map(|(at, f)| (at.index(ops.len() + 1), f));
    let close = close.map(|(at, who)| (at.index(ops.len() + 1), who));
    let mut sim = Sim::new(&s, datagrams, lossy);
    for (i, op) in ops.iter().enumerate() {
        if let Some((at, f)) = fault {
            if at == i {
                sim.inject(f);
            }
        }
        if let Some((at, who)) = close {
            if at == i {
                sim.close_both_or(who);
            }
        }
        sim.run(op);
    }
    if let Some((at, f)) = fault {
        if at == ops.len() {
            sim.inject(f);
        }
    }
    if let Some((at, who)) = close {
        if at == ops.len() {
            sim.close_both_or(who);
        }
    }
    let bound = sim.bound();
    let ended = sim.fault.is_some() || sim.closed_by.is_some();
    // Long enough for every verdict, chained once (a side that ends makes
    // the other end).
    sim.advance(ms(s.opening) + bound * 3);
    // One lost datagram is survived when a second ping may still be
    // answered and a repeated hello still arrives in time (the first
    // repeat is 250 ms after the hello).
    let losses = sim.lost[CLIENT] + sim.lost[SERVER];
    let survivable = losses == 0 || (losses == 1 && s.max_missed >= 2 && s.opening >= 300);
    // An idle-timeout server can drop a live client: the client pings
    // only when it hears nothing, so one that only receives sends nothing
    // for longer than the server's 1.5 x keepalive. Survival is claimed
    // for heartbeats on both sides only.
    let healthy = !ended && survivable && !s.idle_server;
    if !ended {
        if healthy {
            for (who, name) in [(CLIENT, "client"), (SERVER, "server")] {
                let e = &sim.ends[who];
                prop_assert!(
                    !e.conn.is_closed(),
                    "{} ended without a fault: {:?}",
                    name,
                    closed_reason(e)
                );
                prop_assert!(e.conn.is_open(), "{} is not open", name);
                prop_assert_eq!(e.conn.pending(), 0, "{} still has messages queued", name);
                if !sim.reordered[other(who)] && sim.lost[other(who)] == 0 {
                    prop_assert_eq!(
                        &sim.ends[other(who)].sent,
                        &e.received,
                        "{} did not receive everything",
                        name
                    );
                }
            }
        }
        // End it in order: the client closes.
        sim.close(CLIENT);
        sim.advance(bound * 3);
    }
    for (who, name) in [(CLIENT, "client"), (SERVER, "server")] {
        let e = &sim.ends[who];
        prop_assert!(e.conn.is_closed(), "{} never ended", name);
        check_grammar(e, name)?;
    }
    if let Some((at, f)) = sim.fault {
        // A side that hears nothing more ends within its bound.
        let starving: Vec<usize> = match f {
            Fault::BlackHole { .. } => vec![CLIENT, SERVER],
            Fault::Cut { from } => vec![other(from)],
            Fault::Reset { .. } => vec![],
        };
        for who in starving {
            let e = &sim.ends[who];
            let bound = e.conn.detection_bound();
            let closed_at = e.closed_at.unwrap();
            let limit = if e.open_at_fault {
                at.max(e.last_taken) + bound
            } else {
                (sim.t0 + ms(s.opening)).max(at.max(e.last_taken) + bound)
            };
            prop_assert!(
                closed_at <= limit,
                "side {} ended {:?} after the fault, {:?} after its last frame (bound {:?}): {:?}",
                who,
                closed_at - at,
                closed_at - e.last_taken,
                bound,
                closed_reason(e)
            );
        }
    } else if healthy && losses == 0 {
        // The client closed in order at the end.
        prop_assert_eq!(
            closed_reason(&sim.ends[CLIENT]),
            Some(DisconnectReason::ClosedLocally)
        );
        let server_end = if datagrams {
            DisconnectReason::Timeout
        } else {
            DisconnectReason::PeerClosed
        };
        prop_assert_eq!(closed_reason(&sim.ends[SERVER]), Some(server_end));
    }
    let unsent = [
        sim.ends[CLIENT].conn.take_unsent(),
        sim.ends[SERVER].conn.take_unsent(),
    ];
    check_delivery(&sim, CLIENT, &unsent[CLIENT], s.idle_server)?;
    check_delivery(&sim, SERVER, &unsent[SERVER], s.idle_server)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_stream_pair_keeps_the_grammar_and_the_order(
        s in setup(),
        ops in prop::collection::vec(op(), 0..120),
        fault in prop::option::weighted(0.5, (any::<Index>(), fault())),
        close in prop::option::weighted(0.3, (any::<Index>(), 0..3usize)),
    ) {
        check_run(s, false, false, ops, fault, close)?;
    }

    #[test]
    fn a_datagram_pair_keeps_the_grammar_and_the_order(
        s in setup(),
        ops in prop::collection::vec(op(), 0..120),
        lossy in prop::bool::ANY,
        fault in prop::option::weighted(0.4, (any::<Index>(), fault())),
        close in prop::option::weighted(0.3, (any::<Index>(), 0..3usize)),
    ) {
        check_run(s, true, lossy, ops, fault, close)?;
    }
}
