//! The connection machine: everything tether does on one established
//! connection, whatever carries its bytes, with injected time.
//!
//! A [`Connection`] owns the frame codec, the opening hello / welcome
//! exchange (version and capability bits), the ping / pong exchange with
//! round-trip times on both sides, the liveness rule, the write-stall
//! deadline, and the application's bounded send and receive queues. It
//! opens no socket and reads no clock; a driver feeds it and carries out
//! what it asks, in the shape of quinn-proto's `Connection`:
//!
//! * getters (`&self`): [`Connection::is_open`], [`Connection::rtt`],
//!   [`Connection::wants_read`], ...;
//! * handlers of what the network and the clock did, `handle_*`:
//!   [`Connection::handle_bytes`] (stream transports),
//!   [`Connection::handle_datagram`] (one frame per datagram),
//!   [`Connection::handle_written`], [`Connection::handle_closed`],
//!   [`Connection::handle_timeout`];
//! * commands of the application: [`Connection::send`],
//!   [`Connection::close`];
//! * outputs, `poll_*`, drained after every input:
//!   [`Connection::poll_transmit`] (bytes for a stream) or
//!   [`Connection::poll_datagram`] (one datagram), then
//!   [`Connection::poll_timeout`], then [`Connection::poll_event`].
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use std::time::Instant;
//! use tether_core::connection::{Connection, ConnectionConfig, ConnectionEvent, Side};
//!
//! let now = Instant::now();
//! let cfg = ConnectionConfig::default();
//! let mut client = Connection::new(Side::Client, cfg, now).unwrap();
//! let mut server = Connection::new(Side::Server, cfg, now).unwrap();
//! client.send(Bytes::from_static(b"hi")).unwrap();
//!
//! // Shuttle bytes until both sides are quiet (a driver does this with a socket).
//! let mut wire = BytesMut::new();
//! for _ in 0..3 {
//!     client.poll_transmit(now, &mut wire);
//!     server.handle_bytes(now, &mut wire);
//!     server.poll_transmit(now, &mut wire);
//!     client.handle_bytes(now, &mut wire);
//! }
//! assert!(matches!(client.poll_event(), Some(ConnectionEvent::Connected { .. })));
//! assert!(matches!(server.poll_event(), Some(ConnectionEvent::Connected { .. })));
//! assert_eq!(server.poll_event(), Some(ConnectionEvent::Message(Bytes::from_static(b"hi"))));
//! ```

mod config;
mod event;
mod send_buffer;
#[cfg(test)]
mod tests;

pub use config::{ConnectionConfig, Opening, Side};
pub use event::{ConnSendError, ConnectionEvent};

use crate::cause::human;
use crate::codec::{self, Frame, Hello, VERSION};
use crate::liveness::{Liveness, LivenessAction, Monitor, Policy};
use crate::release::ReleaseIfEmpty;
use crate::{Cause, ConfigError, DisconnectReason};
use bytes::{Bytes, BytesMut};
use send_buffer::SendBuffer;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes [`Connection::poll_transmit`] appends in one call, about: enough
/// for one large write, small enough to keep a reader's turn coming.
pub const TRANSMIT_BUDGET: usize = 64 * 1024;

/// Pongs kept waiting at most: a peer that pings faster than we write
/// needs only the latest answers.
const MAX_PONGS: usize = 8;

/// Slots a queue keeps once a burst is over: an idle connection holds
/// little, and bursts just over it do not pay for a new buffer each time.
const IDLE_SLOTS: usize = 64;

/// The payload of a ping sent because this side was silent (not one the
/// monitor sent to probe the peer, so its pong measures no round trip).
const KEEPALIVE_PING: u64 = 0;

/// First wait before a datagram client repeats its hello (doubling to 1 s).
const HELLO_RETRY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the peer's hello (server) or welcome (client).
    Opening { deadline: Instant },
    /// Connected.
    Open,
    /// Closed locally; writing out what was queued.
    Closing,
    /// Ended (the `Closed` event is out).
    Closed,
}

/// One established connection (see the module docs).
#[derive(Debug)]
pub struct Connection {
    side: Side,
    config: ConnectionConfig,
    phase: Phase,
    monitor: Monitor,
    /// The hello (client) or welcome (server) still to send.
    opening_due: bool,
    /// Datagram client: when to repeat the hello, and the next wait.
    hello_retry: Option<(Instant, Duration)>,
    /// Datagram transport (one frame per datagram) rather than a stream.
    datagrams: bool,
    pongs: VecDeque<u64>,
    ping: Option<u64>,
    send: SendBuffer,
    events: VecDeque<ConnectionEvent>,
    /// `Message` events not yet polled.
    queued: usize,
    /// Datagram client: data that overtook the welcome, delivered after it.
    early: Vec<Bytes>,
    /// When a write that makes no progress means the peer stopped reading.
    stall: Option<Instant>,
    /// When this side last handed a frame to the transport.
    sent_at: Instant,
    rtt: Option<Duration>,
    /// A message was sent or received since the last deadline fired.
    busy: bool,
    peer_version: u16,
    capabilities: u64,
}

impl Connection {
    /// A connection whose transport just connected (client) or was
    /// accepted (server) at `now`.
    pub fn new(side: Side, config: ConnectionConfig, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let monitor = Monitor::new(config.policy, now)?;
        let mut c = Self {
            side,
            config,
            phase: Phase::Opening {
                deadline: now + config.opening_timeout,
            },
            monitor,
            opening_due: side == Side::Client,
            hello_retry: None,
            datagrams: false,
            pongs: VecDeque::new(),
            ping: None,
            send: SendBuffer::new(config.send_queue),
            events: VecDeque::new(),
            queued: 0,
            early: Vec::new(),
            stall: None,
            sent_at: now,
            rtt: None,
            busy: false,
            peer_version: VERSION,
            capabilities: 0,
        };
        if config.opening == Opening::Raw {
            c.opening_due = false;
            c.open(now, VERSION, 0, Bytes::new());
        }
        Ok(c)
    }

    /// The same, for a datagram transport (one frame per datagram, which
    /// may be lost or reordered): a client repeats its hello until the
    /// welcome arrives, a server answers every hello, and data that
    /// overtakes the welcome is kept for after it.
    pub fn new_datagram(
        side: Side,
        config: ConnectionConfig,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let mut c = Self::new(side, config, now)?;
        c.datagrams = true;
        if side == Side::Client && c.opening_due {
            c.hello_retry = Some((now + HELLO_RETRY, HELLO_RETRY));
        }
        Ok(c)
    }

    // ---- getters ----

    /// Which end this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The settings.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// True between `Connected` and `Closed`.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// True once `Closed` was emitted (it may still wait in the events).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The last measured round-trip time (a ping and its pong).
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The capability bits both sides set (0 before `Connected`).
    pub fn capabilities(&self) -> u64 {
        self.capabilities
    }

    /// The peer's protocol version (ours before `Connected`).
    pub fn peer_version(&self) -> u16 {
        self.peer_version
    }

    /// Messages queued by `send` and not yet handed to the transport.
    pub fn pending(&self) -> usize {
        self.send.len()
    }

    /// Takes the messages `send` queued that never reached the transport
    /// (after `Closed`, for the next connection: nothing is dropped
    /// silently).
    pub fn take_unsent(&mut self) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(self.send.len());
        while let Some(m) = self.send.pop() {
            out.push(m);
        }
        out
    }

    /// Worst case from the last received byte to the dead verdict.
    pub fn detection_bound(&self) -> Duration {
        self.monitor.detection_bound()
    }

    /// False while the application has `recv_queue` messages unpolled (or
    /// the connection is closed): the driver stops reading from the
    /// transport until [`Connection::poll_event`] makes room, and then
    /// calls [`Connection::handle_bytes`] again (with what its buffer
    /// still holds).
    pub fn wants_read(&self) -> bool {
        self.phase != Phase::Closed && self.queued < self.config.recv_queue
    }

    /// True when [`Connection::poll_transmit`] would produce bytes.
    pub fn has_transmit(&self) -> bool {
        if self.phase == Phase::Closed {
            return false;
        }
        self.opening_due
            || !self.pongs.is_empty()
            || self.ping.is_some()
            || (self.sends_data() && !self.send.is_empty())
    }

    // ---- handlers ----

    /// Takes every whole frame out of `buf` (bytes read from a stream
    /// transport); a partial frame stays there for the next call. Stops
    /// early while [`Connection::wants_read`] is false.
    pub fn handle_bytes(&mut self, now: Instant, buf: &mut BytesMut) {
        while self.wants_read() {
            match codec::decode(buf, self.config.max_frame) {
                Ok(Some(frame)) => self.handle_frame(now, frame),
                Ok(None) => break,
                Err(e) => {
                    self.fail(Cause::new(
                        DisconnectReason::ProtocolError,
                        format!("the peer sent a bad frame: {e}"),
                    ));
                    buf.clear();
                }
            }
        }
        if buf.is_empty() && buf.capacity() > TRANSMIT_BUDGET {
            // Keep an idle connection small.
            *buf = BytesMut::new();
        }
    }

    /// Takes one datagram (one frame) from a datagram transport. A
    /// malformed datagram ends the connection as a protocol error. While
    /// [`Connection::wants_read`] is false the datagram is dropped, as a
    /// full socket buffer would: at most `recv_queue` messages wait.
    pub fn handle_datagram(&mut self, now: Instant, datagram: Bytes) {
        if !self.wants_read() {
            return;
        }
        match codec::decode_datagram(datagram, self.config.max_frame) {
            Ok(frame) => self.handle_frame(now, frame),
            Err(e) => self.fail(Cause::new(
                DisconnectReason::ProtocolError,
                format!("the peer sent a bad datagram: {e}"),
            )),
        }
    }

    /// After a write attempt: `written` bytes went out and `remaining` are
    /// still waiting in the driver's buffer. Progress moves the
    /// write-stall deadline; none leaves it where it is.
    pub fn handle_written(&mut self, now: Instant, written: usize, remaining: usize) {
        if remaining == 0 {
            self.stall = None;
        } else if written > 0 || self.stall.is_none() {
            self.stall = Some(now + self.config.stall_bound());
        }
    }

    /// The transport ended (end of stream, reset, an I/O error): reported
    /// once as `Closed(cause)` unless the connection had ended already.
    pub fn handle_closed(&mut self, cause: Cause) {
        if self.phase == Phase::Closing && cause.reason == DisconnectReason::PeerClosed {
            // The peer answered our close with its own.
            self.finish(Cause::closed_by_application());
            return;
        }
        self.fail(cause);
    }

    /// Time passed to `now`: opening deadline, liveness, write stall.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Closed => return,
            Phase::Opening { deadline } if now >= deadline => {
                let what = match self.side {
                    Side::Client => "no welcome from the server",
                    Side::Server => "no hello from the client",
                };
                self.fail(Cause::new(
                    DisconnectReason::ConnectTimeout,
                    format!(
                        "{what} within {} (is the peer a tether peer?)",
                        human(self.config.opening_timeout)
                    ),
                ));
                return;
            }
            _ => {}
        }
        if let Some(at) = self.stall {
            if now >= at {
                self.fail(Cause::write_stall(self.config.stall_bound()));
                return;
            }
        }
        if let Some((at, wait)) = self.hello_retry {
            if now >= at {
                self.opening_due = true;
                let next = (wait * 2).min(Duration::from_secs(1));
                self.hello_retry = Some((now + next, next));
            }
        }
        if matches!(self.phase, Phase::Open | Phase::Closing) {
            if self.keepalive_due(now) {
                // Heard from lately, but silent ourselves: a peer that
                // judges us by what it receives (an idle timeout) must
                // hear something. Its pong counts as traffic here too.
                self.ping = Some(KEEPALIVE_PING);
            }
            self.monitor.handle_timeout(now);
            while let Some(action) = self.monitor.poll_action() {
                match action {
                    LivenessAction::SendPing { payload } => self.ping = Some(payload),
                    LivenessAction::Dead { silent_for, .. } => {
                        self.fail(Cause::silent(silent_for, self.monitor.detection_bound()));
                        return;
                    }
                }
            }
        }
        if !std::mem::take(&mut self.busy) {
            self.release_idle();
        }
    }

    /// Gives back the memory of every queue that is empty. Run when a
    /// deadline fires with no message sent or received since the one
    /// before, so an idle connection holds only the machine itself and a
    /// busy one never pays for its queues twice.
    fn release_idle(&mut self) {
        self.pongs.release_if_empty();
        self.events.release_if_empty();
        self.early.release_if_empty();
        self.send.release_idle();
    }

    // ---- commands ----

    /// Queues one application message. It goes out once the opening is
    /// done, in order with every other.
    pub fn send(&mut self, msg: Bytes) -> Result<(), ConnSendError> {
        if matches!(self.phase, Phase::Closing | Phase::Closed) {
            return Err(ConnSendError::Closed);
        }
        if msg.len() > self.config.max_frame {
            return Err(ConnSendError::TooLarge {
                len: msg.len(),
                max: self.config.max_frame,
            });
        }
        if self.send.is_full() {
            return Err(ConnSendError::Full);
        }
        self.send.push(msg);
        self.busy = true;
        Ok(())
    }

    /// Closes in an orderly way: what was queued is still transmitted, then
    /// `Closed` (reason `ClosedLocally`) follows and the driver closes the
    /// transport. Idempotent.
    pub fn close(&mut self, _now: Instant) {
        match self.phase {
            Phase::Closed | Phase::Closing => {}
            Phase::Opening { .. } => self.finish(Cause::closed_by_application()),
            Phase::Open => {
                self.phase = Phase::Closing;
                if self.send.is_empty() {
                    self.finish(Cause::closed_by_application());
                }
            }
        }
    }

    // ---- outputs ----

    /// Appends the next bytes to write to `buf` (a stream transport): the
    /// hello or welcome, pongs, a ping, then queued messages up to about
    /// [`TRANSMIT_BUDGET`] bytes. Returns true if anything was appended.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut BytesMut) -> bool {
        let start = buf.len();
        while let Some(frame) = self.next_frame(buf.len() - start) {
            // Frames are checked when queued: encoding cannot fail.
            let _ = codec::encode(&frame, self.config.max_frame, buf);
            self.sent_at = now;
        }
        self.after_transmit(now, buf.len() > start)
    }

    /// Writes the next datagram (one frame) into `buf`, which is cleared
    /// first. Returns false when there is nothing to send.
    pub fn poll_datagram(&mut self, now: Instant, buf: &mut BytesMut) -> bool {
        buf.clear();
        let Some(frame) = self.next_frame(0) else {
            return self.after_transmit(now, false);
        };
        let _ = codec::encode(&frame, self.config.max_frame, buf);
        self.sent_at = now;
        // A datagram is written whole or not at all: no stall to track.
        self.after_transmit(now, false);
        true
    }

    /// The next frame to send, for a transport that does its own framing.
    pub fn poll_frame(&mut self, now: Instant) -> Option<Frame> {
        let frame = self.next_frame(0);
        if frame.is_some() {
            self.sent_at = now;
        }
        self.after_transmit(now, false);
        frame
    }

    /// When [`Connection::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let opening = match self.phase {
            Phase::Closed => return None,
            Phase::Opening { deadline } => Some(deadline),
            Phase::Open | Phase::Closing => self.monitor.poll_timeout(),
        };
        [
            opening,
            self.stall,
            self.hello_retry.map(|(at, _)| at),
            self.keepalive_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ConnectionEvent> {
        let event = self.events.pop_front()?;
        if matches!(event, ConnectionEvent::Message(_)) {
            self.queued -= 1;
        }
        if self.events.is_empty() && self.events.capacity() > IDLE_SLOTS {
            self.events.shrink_to(IDLE_SLOTS);
        }
        Some(event)
    }

    // ---- inside ----

    /// With a heartbeat, when this side must send something because it
    /// has sent nothing for an interval (whatever it heard meanwhile).
    fn keepalive_at(&self) -> Option<Instant> {
        match (&self.phase, self.config.policy) {
            (Phase::Open | Phase::Closing, Policy::Heartbeat(hb)) if self.ping.is_none() => {
                Some(self.sent_at + hb.interval)
            }
            _ => None,
        }
    }

    fn keepalive_due(&self, now: Instant) -> bool {
        self.keepalive_at().is_some_and(|at| now >= at)
    }

    fn sends_data(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Closing)
    }

    /// The next frame to transmit, given `used` bytes of this call's budget.
    fn next_frame(&mut self, used: usize) -> Option<Frame> {
        if self.phase == Phase::Closed {
            return None;
        }
        if self.opening_due {
            self.opening_due = false;
            let hello = Hello::new(self.config.capabilities);
            return Some(match self.side {
                Side::Client => Frame::Hello(hello),
                Side::Server => Frame::Welcome(hello),
            });
        }
        if let Some(p) = self.pongs.pop_front() {
            return Some(Frame::Pong(p));
        }
        if let Some(p) = self.ping.take() {
            return Some(Frame::Ping(p));
        }
        if !self.sends_data() {
            return None;
        }
        let next = self.send.front_len()?;
        if used > 0 && used + next > TRANSMIT_BUDGET {
            return None;
        }
        self.send.pop().map(Frame::Data)
    }

    fn after_transmit(&mut self, now: Instant, appended: bool) -> bool {
        if appended && self.stall.is_none() {
            self.stall = Some(now + self.config.stall_bound());
        }
        if self.phase == Phase::Closing && self.send.is_empty() {
            self.finish(Cause::closed_by_application());
        }
        appended
    }

    /// Takes one frame from a transport that does its own framing (a link
    /// that hands over decoded frames).
    pub fn handle_frame(&mut self, now: Instant, frame: Frame) {
        if self.phase == Phase::Closed {
            return;
        }
        if matches!(self.phase, Phase::Open | Phase::Closing) {
            self.monitor.handle_received(now);
        }
        match frame {
            Frame::Data(msg) => match self.phase {
                Phase::Open | Phase::Closing => self.deliver(msg),
                Phase::Opening { .. } if self.datagrams && self.side == Side::Client => {
                    if self.early.len() < self.config.recv_queue {
                        self.early.push(msg);
                    }
                }
                _ => self.fail(Cause::new(
                    DisconnectReason::ProtocolError,
                    "the peer sent data before the opening exchange",
                )),
            },
            Frame::Ping(p) => {
                if self.pongs.len() == MAX_PONGS {
                    self.pongs.pop_front();
                }
                self.pongs.push_back(p);
            }
            Frame::Pong(p) => {
                if let Some(rtt) = self.monitor.handle_pong(now, p) {
                    self.rtt = Some(rtt);
                }
            }
            Frame::Hello(h) => self.on_opening(now, Side::Server, h),
            Frame::Welcome(h) => self.on_opening(now, Side::Client, h),
            Frame::Skipped { .. } => {}
        }
    }

    /// A hello (which only a server takes) or welcome (only a client).
    fn on_opening(&mut self, now: Instant, taker: Side, h: Hello) {
        let what = match taker {
            Side::Server => "a hello",
            Side::Client => "a welcome",
        };
        if self.side != taker {
            return self.fail(Cause::new(
                DisconnectReason::ProtocolError,
                format!("the peer sent {what}, which only the other side may send"),
            ));
        }
        if self.config.opening == Opening::Raw {
            // The same on every transport: a raw side never answers the
            // opening (over datagrams it once did, as for a lost welcome).
            return self.fail(Cause::new(
                DisconnectReason::ProtocolError,
                format!(
                    "the peer sent {what}, but this side runs without the opening exchange \
                     (opening: raw); set the same opening on both ends"
                ),
            ));
        }
        match self.phase {
            Phase::Opening { .. } => {
                if h.version != VERSION {
                    return self.fail(Cause::new(
                        DisconnectReason::ProtocolError,
                        format!(
                            "the peer speaks protocol version {}, this side {VERSION}",
                            h.version
                        ),
                    ));
                }
                if self.side == Side::Server {
                    self.opening_due = true;
                }
                self.hello_retry = None;
                let caps = h.capabilities & self.config.capabilities;
                self.open(now, h.version, caps, h.extra);
                for msg in std::mem::take(&mut self.early) {
                    self.deliver(msg);
                }
            }
            // A repeated hello over datagrams: the welcome was lost.
            _ if self.datagrams && self.side == Side::Server => self.opening_due = true,
            _ if self.datagrams => {}
            _ => self.fail(Cause::new(
                DisconnectReason::ProtocolError,
                "the peer repeated the opening exchange",
            )),
        }
    }

    fn open(&mut self, now: Instant, version: u16, capabilities: u64, extra: Bytes) {
        self.phase = Phase::Open;
        self.peer_version = version;
        self.capabilities = capabilities;
        self.monitor.reset(now);
        self.events.push_back(ConnectionEvent::Connected {
            version,
            capabilities,
            extra,
        });
    }

    fn deliver(&mut self, msg: Bytes) {
        self.queued += 1;
        self.busy = true;
        self.events.push_back(ConnectionEvent::Message(msg));
    }

    /// Ends the connection with `cause` (once).
    fn fail(&mut self, cause: Cause) {
        if self.phase != Phase::Closed {
            self.finish(cause);
        }
    }

    fn finish(&mut self, cause: Cause) {
        self.phase = Phase::Closed;
        self.stall = None;
        self.hello_retry = None;
        self.opening_due = false;
        self.pongs.clear();
        self.ping = None;
        self.early.clear();
        self.events.push_back(ConnectionEvent::Closed(cause));
    }
}
