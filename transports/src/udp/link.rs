//! `UdpLink`: one authenticated session over a UDP socket.

use super::keys::{self, SessionKeys};
use super::replay::ReplayWindow;
use super::stats::UdpStats;
use super::wire::{self, Kind, MAC_LEN, TOKEN_LEN};
use crate::codec::FrameCodec;
use crate::link::Link;
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use ring::hmac;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tether_core::codec::Frame;
use tether_core::DisconnectReason;
use thiserror::Error;
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio::time::Sleep;
use tokio_util::codec::{Decoder, Encoder};

/// Largest datagram read; received frames may be as large as fits.
pub(super) const RECV_BUF: usize = 65_536;

/// Why [`UdpLink::send_frame`] did not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum UdpSendError {
    /// The message is larger than `max_payload`; it was not sent and the
    /// link is still usable.
    #[error("message of {len} bytes exceeds the UDP maximum payload of {max}")]
    TooLarge {
        /// The message length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The link has ended, for this reason.
    #[error("the link has ended: {0}")]
    Ended(DisconnectReason),
}

/// A server's table of sessions, shared by its demultiplexer and links.
pub(super) type Sessions = Arc<Mutex<HashMap<u64, SessionEntry>>>;

/// What the demultiplexer knows of one session.
pub(super) struct SessionEntry {
    /// Where the session's datagrams go.
    pub tx: mpsc::Sender<(Bytes, SocketAddr)>,
    /// The hello's nonce: a retransmitted hello gets the same welcome.
    pub client_nonce: [u8; wire::NONCE_LEN],
    /// The welcome, resent for retransmitted hellos.
    pub welcome: Bytes,
}

/// Removes a server session from the table when its link goes away, so
/// that later packets of that session get an "unknown session" reply.
pub(super) struct SessionGuard {
    pub sessions: Sessions,
    pub id: u64,
    pub stats: Arc<UdpStats>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let removed = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
        if removed.is_some() {
            self.stats.session_closed();
        }
    }
}

enum Io {
    /// A client's connected socket, owned by this link.
    Client { socket: UdpSocket },
    /// A server's shared socket; the demultiplexer feeds `rx`.
    Server {
        socket: Arc<UdpSocket>,
        rx: mpsc::Receiver<(Bytes, SocketAddr)>,
        peer: SocketAddr,
        _guard: SessionGuard,
    },
}

/// The cryptographic state of one session, as seen by one side.
pub(super) struct SessionState {
    pub id: u64,
    pub send_key: hmac::Key,
    pub recv_key: hmac::Key,
    /// Client only: the token that proves the server lost the session.
    pub reset_token: Option<[u8; TOKEN_LEN]>,
}

impl SessionState {
    /// The client's view of a session with `keys`.
    pub(super) fn client(id: u64, keys: SessionKeys, token: [u8; TOKEN_LEN]) -> Self {
        Self {
            id,
            send_key: keys.c2s,
            recv_key: keys.s2c,
            reset_token: Some(token),
        }
    }

    /// The server's view of a session with `keys`.
    pub(super) fn server(id: u64, keys: SessionKeys) -> Self {
        Self {
            id,
            send_key: keys.s2c,
            recv_key: keys.c2s,
            reset_token: None,
        }
    }
}

/// What one received datagram means for the link.
enum Outcome {
    Deliver(Frame),
    End(DisconnectReason),
    /// Dropped (and counted where it matters).
    Drop,
}

/// An unanswered ping, retransmitted until anything authentic arrives.
#[derive(Clone, Copy)]
struct Probe {
    payload: u64,
    next: Instant,
}

/// One authenticated UDP session: frames out as MAC'd datagrams, datagrams in
/// verified against the MAC and the replay window.
pub struct UdpLink {
    io: Io,
    session: SessionState,
    send_seq: u64,
    window: ReplayWindow,
    codec: FrameCodec,
    max_payload: usize,
    probe: Option<Probe>,
    /// Made for the first probe, then reused.
    probe_timer: Option<Pin<Box<Sleep>>>,
    probe_interval: Duration,
    ended: Option<DisconnectReason>,
    stats: Arc<UdpStats>,
    peer_name: String,
    /// The packet being sent...
    out: Vec<u8>,
    /// ...true while it waits for the socket.
    unsent: bool,
    /// A frame's encoding, reused.
    body: BytesMut,
    /// Client only: the receive buffer (servers get datagrams by channel).
    buf: Box<[u8]>,
}

impl std::fmt::Debug for UdpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpLink")
            .field("peer", &self.peer_name)
            .field("session", &format_args!("{:016x}", self.session.id))
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl UdpLink {
    pub(super) fn client(
        socket: UdpSocket,
        session: SessionState,
        max_payload: usize,
        probe_interval: Duration,
        stats: Arc<UdpStats>,
        peer_name: String,
    ) -> Self {
        let mut link = Self::new(
            Io::Client { socket },
            session,
            max_payload,
            probe_interval,
            stats,
            peer_name,
        );
        link.buf = vec![0u8; RECV_BUF].into_boxed_slice();
        link
    }

    pub(super) fn server(
        socket: Arc<UdpSocket>,
        rx: mpsc::Receiver<(Bytes, SocketAddr)>,
        peer: SocketAddr,
        guard: SessionGuard,
        session: SessionState,
        max_payload: usize,
        probe_interval: Duration,
    ) -> Self {
        let stats = guard.stats.clone();
        let io = Io::Server {
            socket,
            rx,
            peer,
            _guard: guard,
        };
        let name = format!("udp://{peer}");
        Self::new(io, session, max_payload, probe_interval, stats, name)
    }

    fn new(
        io: Io,
        session: SessionState,
        max_payload: usize,
        probe_interval: Duration,
        stats: Arc<UdpStats>,
        peer_name: String,
    ) -> Self {
        Self {
            io,
            session,
            send_seq: 0,
            window: ReplayWindow::new(),
            // Receive whatever fits in a datagram: only sending is limited,
            // so peers with different `max_payload` still interoperate.
            codec: FrameCodec::new(RECV_BUF),
            max_payload,
            probe: None,
            probe_timer: None,
            probe_interval,
            ended: None,
            stats,
            peer_name,
            out: Vec::with_capacity(max_payload + wire::DATA_OVERHEAD),
            unsent: false,
            body: BytesMut::new(),
            buf: Box::default(),
        }
    }

    /// The session id (random, chosen by the client).
    pub fn session_id(&self) -> u64 {
        self.session.id
    }

    /// The largest application payload this link sends, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Sends one frame; unlike sending through [`Link`], a message over
    /// [`max_payload`](Self::max_payload) is reported as
    /// [`UdpSendError::TooLarge`] (the link stays usable).
    pub async fn send_frame(&mut self, frame: Frame) -> Result<(), UdpSendError> {
        poll_fn(|cx| self.poll_send_out(cx))
            .await
            .map_err(UdpSendError::Ended)?;
        self.start_frame(frame)?;
        poll_fn(|cx| self.poll_send_out(cx))
            .await
            .map_err(UdpSendError::Ended)
    }

    /// Builds the packet carrying `frame` in `out` (the previous one must
    /// have left: see `poll_send_out`).
    fn start_frame(&mut self, frame: Frame) -> Result<(), UdpSendError> {
        if let Some(reason) = self.ended {
            return Err(UdpSendError::Ended(reason));
        }
        if let Frame::Data(data) = &frame {
            if data.len() > self.max_payload {
                self.stats.add_oversized();
                return Err(UdpSendError::TooLarge {
                    len: data.len(),
                    max: self.max_payload,
                });
            }
        }
        if let Frame::Ping(payload) = frame {
            self.probe = Some(Probe {
                payload,
                next: Instant::now() + self.probe_interval,
            });
        }
        self.build_packet(Kind::Data, Some(frame))
            .map_err(UdpSendError::Ended)
    }

    /// Builds one authenticated packet (data or close) in `out`.
    fn build_packet(&mut self, kind: Kind, frame: Option<Frame>) -> Result<(), DisconnectReason> {
        debug_assert!(!self.unsent, "a packet is still waiting to be sent");
        self.send_seq += 1;
        self.out.clear();
        wire::put_header(&mut self.out, kind, self.session.id, self.send_seq);
        if let Some(frame) = frame {
            self.body.clear();
            self.codec
                .encode(frame, &mut self.body)
                .map_err(|_| DisconnectReason::ProtocolError)?;
            self.out.extend_from_slice(&self.body);
        }
        let tag = keys::mac(&self.session.send_key, &[&self.out]);
        self.out.extend_from_slice(&tag);
        self.unsent = true;
        Ok(())
    }

    /// Sends the packet waiting in `out`, if any.
    fn poll_send_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DisconnectReason>> {
        if !self.unsent {
            return Poll::Ready(Ok(()));
        }
        let sent = match &self.io {
            Io::Client { socket, .. } => ready!(socket.poll_send(cx, &self.out)),
            Io::Server { socket, peer, .. } => ready!(socket.poll_send_to(cx, &self.out, *peer)),
        };
        self.unsent = false;
        Poll::Ready(match sent {
            Ok(_) => Ok(()),
            // A datagram lost to an ICMP error (or a full buffer) is just a
            // lost datagram: unauthenticated, so the heartbeat decides.
            Err(e) if is_soft(&e) => {
                self.stats.add_icmp_error();
                Ok(())
            }
            Err(e) => Err(DisconnectReason::from_io(&e)),
        })
    }

    /// Judges one datagram: authentic and new, or dropped.
    fn on_datagram(&mut self, datagram: &[u8]) -> Outcome {
        let Some(packet) = wire::parse(datagram) else {
            self.stats.add_malformed();
            return Outcome::Drop;
        };
        if packet.session != self.session.id {
            self.stats.add_malformed();
            return Outcome::Drop;
        }
        match packet.kind {
            Kind::Data | Kind::Close => {}
            Kind::UnknownSession => {
                return match &self.session.reset_token {
                    Some(token) if keys::ct_eq(token, packet.body) => {
                        self.stats.add_resets_accepted();
                        Outcome::End(DisconnectReason::Reset)
                    }
                    _ => {
                        self.stats.add_resets_ignored();
                        Outcome::Drop
                    }
                };
            }
            // A welcome resent for a retransmitted hello: harmless.
            Kind::Hello | Kind::Welcome => return Outcome::Drop,
        }
        debug_assert_eq!(packet.mac.len(), MAC_LEN);
        if !keys::verify(&self.session.recv_key, packet.signed, packet.mac) {
            self.stats.add_forged();
            return Outcome::Drop;
        }
        if !self.window.accept(packet.seq) {
            self.stats.add_replayed();
            return Outcome::Drop;
        }
        // Anything authentic answers an outstanding probe.
        self.probe = None;
        if packet.kind == Kind::Close {
            return Outcome::End(DisconnectReason::PeerClosed);
        }
        let mut body = BytesMut::from(packet.body);
        match self.codec.decode(&mut body) {
            Ok(Some(frame)) if body.is_empty() => Outcome::Deliver(frame),
            // An authentic but broken frame is a peer bug, as on TCP.
            _ => Outcome::End(DisconnectReason::ProtocolError),
        }
    }

    /// Repeats an unanswered ping when its time has come. `Ready` only
    /// with the error that ended the link.
    fn poll_probe(&mut self, cx: &mut Context<'_>) -> Poll<DisconnectReason> {
        let Some(probe) = self.probe.as_mut() else {
            return Poll::Pending;
        };
        let timer = self
            .probe_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(probe.next)));
        if timer.deadline() != probe.next {
            timer.as_mut().reset(probe.next);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        probe.next = Instant::now() + self.probe_interval;
        let payload = probe.payload;
        // Re-arm for the next repeat (registers the waker).
        let next = probe.next;
        timer.as_mut().reset(next);
        let _ = timer.as_mut().poll(cx);
        // A packet still waiting to leave is sent first; the repeat can
        // wait for the next turn.
        if !self.unsent {
            if let Err(reason) = self.build_packet(Kind::Data, Some(Frame::Ping(payload))) {
                return Poll::Ready(reason);
            }
        }
        match self.poll_send_out(cx) {
            Poll::Ready(Err(reason)) => Poll::Ready(reason),
            _ => Poll::Pending,
        }
    }

    fn end(&mut self, reason: DisconnectReason) -> DisconnectReason {
        *self.ended.get_or_insert(reason)
    }
}

/// ICMP errors and transient buffer shortage: not a verdict on the peer.
fn is_soft(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused
            | K::ConnectionReset
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::WouldBlock
    ) || matches!(e.raw_os_error(), Some(105) | Some(113) | Some(101)) // ENOBUFS, EHOSTUNREACH, ENETUNREACH
}

impl Link for UdpLink {
    /// Cancel-safe: a datagram is judged entirely after it was received, so
    /// stopping between polls loses nothing.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, DisconnectReason>> {
        loop {
            if let Some(reason) = self.ended {
                return Poll::Ready(Err(reason));
            }
            if let Poll::Ready(reason) = self.poll_probe(cx) {
                return Poll::Ready(Err(self.end(reason)));
            }
            let outcome = match &mut self.io {
                Io::Client { socket } => {
                    let mut buf = ReadBuf::new(&mut self.buf);
                    match ready!(socket.poll_recv(cx, &mut buf)) {
                        Ok(()) => {
                            let n = buf.filled().len();
                            // Judged synchronously: nothing waits until restored.
                            let buf = std::mem::take(&mut self.buf);
                            let outcome = self.on_datagram(&buf[..n]);
                            self.buf = buf;
                            outcome
                        }
                        Err(e) if is_soft(&e) => {
                            // e.g. port unreachable while a server restarts:
                            // unauthenticated, so only counted.
                            self.stats.add_icmp_error();
                            Outcome::Drop
                        }
                        Err(e) => Outcome::End(DisconnectReason::from_io(&e)),
                    }
                }
                Io::Server { rx, .. } => match ready!(rx.poll_recv(cx)) {
                    // The acceptor is gone: nothing will arrive again.
                    None => Outcome::End(DisconnectReason::ClosedLocally),
                    Some((datagram, from)) => {
                        let outcome = self.on_datagram(&datagram);
                        if !matches!(outcome, Outcome::Drop) {
                            self.follow_peer(from);
                        }
                        outcome
                    }
                },
            };
            match outcome {
                Outcome::Deliver(frame) => return Poll::Ready(Ok(frame)),
                Outcome::End(reason) => return Poll::Ready(Err(self.end(reason))),
                Outcome::Drop => {}
            }
        }
    }

    /// Sends each frame as one datagram. A message over `max_payload` is
    /// refused without ending the link: it is dropped, logged and counted
    /// in [`UdpStats::oversized`] (use [`UdpLink::send_frame`] to get the
    /// error instead).
    fn poll_transmit(
        &mut self,
        cx: &mut Context<'_>,
        frames: &mut VecDeque<Frame>,
        _inbox: &mut VecDeque<Frame>,
    ) -> Poll<Result<(), DisconnectReason>> {
        loop {
            if let Err(reason) = ready!(self.poll_send_out(cx)) {
                return Poll::Ready(Err(self.end(reason)));
            }
            let Some(frame) = frames.pop_front() else {
                return Poll::Ready(Ok(()));
            };
            match self.start_frame(frame) {
                Ok(()) => {}
                Err(UdpSendError::TooLarge { len, max }) => {
                    tracing::warn!(len, max, peer = %self.peer_name, "UDP message too large; dropped");
                }
                Err(UdpSendError::Ended(reason)) => return Poll::Ready(Err(reason)),
            }
        }
    }

    /// Sends an authenticated close packet (the peer sees `PeerClosed`) and
    /// forgets the session.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.ended.is_none() {
                let close = async {
                    poll_fn(|cx| self.poll_send_out(cx)).await?;
                    self.build_packet(Kind::Close, None)?;
                    poll_fn(|cx| self.poll_send_out(cx)).await
                };
                let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
                self.end(DisconnectReason::ClosedLocally);
            }
            if let Io::Server { rx, .. } = &mut self.io {
                rx.close();
            }
        })
    }

    fn datagrams(&self) -> bool {
        true
    }

    fn peer(&self) -> String {
        self.peer_name.clone()
    }
}

impl UdpLink {
    /// A server follows its client to a new address (NAT rebinding) once a
    /// packet from there proved authentic.
    fn follow_peer(&mut self, from: SocketAddr) {
        if let Io::Server { peer, .. } = &mut self.io {
            if *peer != from {
                tracing::debug!(old = %peer, new = %from, "UDP peer moved");
                *peer = from;
            }
        }
    }
}
